"""Admin for account managers: tenants, people, keys, allowlists, audit (read-only).

The admin site is django-otp's OTPAdminSite: staff need a verified second factor.
"""
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django_otp.admin import OTPAdminSite

from accounts import services
from accounts.models import ApiKey, AuditEvent, Invitation, IpAllowlistEntry, Membership, Tenant, User

admin.site.__class__ = OTPAdminSite
admin.site.site_header = "smsportal administration"
admin.site.site_title = "smsportal admin"


def _actor(request) -> services.Actor:
    ip = getattr(request, "client_ip", None)
    return services.Actor(user=request.user, ip=str(ip) if ip else None)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "account_manager", "data_region", "require_2fa", "created_at"]
    list_filter = ["status", "data_region", "require_2fa"]
    search_fields = ["name", "slug"]
    readonly_fields = ["status", "created_at"]
    fields = ["name", "slug", "status", "account_manager", "data_region", "require_2fa", "created_at"]
    inlines = [MembershipInline]
    actions = ["suspend", "reactivate"]

    @admin.action(description="Suspend selected tenants (API refused, portal read-only)")
    def suspend(self, request, queryset):
        for tenant in queryset:
            services.tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, actor=_actor(request))
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request, queryset):
        for tenant in queryset:
            services.tenant_set_status(tenant=tenant, status=Tenant.Status.ACTIVE, actor=_actor(request))
        self.message_user(request, f"Reactivated {queryset.count()} tenant(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__slug", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "tenant__slug"]
    readonly_fields = ["public_id", "token_hash", "invited_by", "created_at", "accepted_at"]
    exclude = ["token_hash"]

    def has_add_permission(self, request):
        return False


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Never shows a secret (only its prefix and last four characters); keys are created by tenants."""

    list_display = ["name", "tenant", "prefix_display", "mode", "status", "created_at", "last_used_at"]
    list_filter = ["mode", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_id", "public_id", "tenant__slug"]
    fields = ["tenant", "name", "public_id", "prefix_display", "mode", "scopes", "created_by", "created_at",
              "last_used_at", "expires_at", "revoked_at"]
    readonly_fields = ["tenant", "public_id", "prefix_display", "mode", "scopes", "created_by", "created_at",
                       "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="Key")
    def prefix_display(self, obj):
        return f"{obj.prefix}_…{obj.last4}"

    def has_add_permission(self, request):
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for api_key in queryset.select_related("tenant"):
            services.api_key_revoke(tenant=api_key.tenant, api_key=api_key, actor=_actor(request))
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(IpAllowlistEntry)
class IpAllowlistEntryAdmin(admin.ModelAdmin):
    list_display = ["cidr", "tenant", "api_key", "note", "created_at"]
    search_fields = ["cidr", "note", "tenant__slug"]
    readonly_fields = ["public_id", "created_by", "created_at"]
    autocomplete_fields = ["tenant"]

    def save_model(self, request, obj, form, change):
        obj.cidr = services.normalize_cidr(obj.cidr)
        super().save_model(request, obj, form, change)
        services.audit_record(action="ip_allowlist.changed" if change else "ip_allowlist.added", actor=_actor(request),
                              tenant=obj.tenant, target=obj, changes={"cidr": obj.cidr, "note": obj.note})

    def delete_model(self, request, obj):
        services.ip_allowlist_remove(tenant=obj.tenant, entry=obj, actor=_actor(request))


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "action", "tenant", "actor_label", "target_type", "target_id", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "actor_label", "target_id", "tenant__slug"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
