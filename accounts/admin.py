"""Admin for account managers: tenants, people, keys, allowlists, invitations and the audit trail.

Every write that the portal or API audits goes through the same service here,
so the admin is not a side door: tenant status, memberships (with the
last-owner rule), keys, allowlist entries and invitations. Audit events are
read-only. The site is django-otp's OTPAdminSite (staff need a verified second
factor) with the portal's sign-in lockout.
"""
from __future__ import annotations

import functools

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.utils import timezone
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from accounts import errors, services
from accounts.models import ApiKey, AuditEvent, Invitation, IpAllowlistEntry, Membership, Tenant, User
from accounts.portal.decorators import actor_for
from accounts.roles import Role
from smsportal.tenancy import all_tenants

# Staff act for a tenant with an owner's authority (they may grant or remove the
# owner role), but the services still refuse to leave a tenant without an owner.
STAFF_ROLE = Role.OWNER
LAST_OWNER_MESSAGE = "A tenant must keep at least one owner. Make someone else an owner first."


class LockoutAdminAuthenticationForm(OTPAdminAuthenticationForm):
    """Password + OTP, counted against the same lockout as the portal sign-in (by email + address, and by email)."""

    def clean(self):
        email = (self.cleaned_data.get("username") or "").strip().lower()
        ip = services.ip_text(getattr(self.request, "client_ip", None))
        if email and services.login_locked(email=email, ip=ip):
            raise ValidationError("Too many failed sign-in attempts. Try again later.", code="locked")
        try:
            cleaned = super().clean()
        except ValidationError:
            if email and self.user_cache is None:  # the password was wrong, not just the OTP step
                services.login_failed(email=email, ip=ip)
            raise
        services.login_succeeded(user=self.user_cache, ip=ip)
        return cleaned


class SmsportalAdminSite(OTPAdminSite):
    login_form = LockoutAdminAuthenticationForm

    def admin_view(self, view, cacheable=False):
        return super().admin_view(_every_tenant(view), cacheable)


def _every_tenant(view):
    """Staff see every tenant: each admin view, its forms and its template run under all_tenants()
    (the scoped managers filter by no tenant; a service called for one tenant still scopes itself).
    The response is rendered inside, since a TemplateResponse evaluates its querysets late."""

    @functools.wraps(view)
    def run(request, *args, **kwargs):
        # unscoped: the admin site: staff see every tenant
        with all_tenants():
            response = view(request, *args, **kwargs)
            if callable(getattr(response, "render", None)) and not response.is_rendered:
                response.render()
        return response

    return run


# Swap the class of the default site rather than replacing the instance: apps
# that registered before us (auth, django-otp, celery beat) keep their admins,
# and the site keeps its name, so reverse("admin:...") works.
admin.site.__class__ = SmsportalAdminSite
admin.site.site_header = "smsportal administration"
admin.site.site_title = "smsportal admin"


def _adopt(obj, saved) -> None:
    """Make the admin's unsaved instance the row a service created, so the admin can redirect to it."""
    obj.pk = saved.pk
    obj.refresh_from_db()


# --- People --------------------------------------------------------------------------


class UserMembershipInline(admin.TabularInline):
    """Which tenants a person belongs to; read-only here (memberships are managed from the tenant)."""

    model = Membership
    fk_name = "user"
    extra = 0
    fields = ["tenant", "role", "created_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
    inlines = [UserMembershipInline]


# --- Tenants and memberships -------------------------------------------------------------


class MembershipInlineForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["user", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            # A membership belongs to one person: to move it, remove it and add another.
            self.fields["user"].disabled = True


class MembershipInlineFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [f for f in self.forms if f.cleaned_data and not self._should_delete_form(f)]
        owners_after = sum(1 for f in kept if f.cleaned_data.get("role") == Role.OWNER)
        owners_before = sum(1 for f in self.initial_forms if f.initial.get("role") == Role.OWNER)
        adding_tenant = self.instance._state.adding
        if owners_after == 0 and (owners_before or adding_tenant):
            raise ValidationError("A tenant needs an owner." if adding_tenant else LAST_OWNER_MESSAGE)


class MembershipInline(admin.TabularInline):
    """Saved through the membership services (see TenantAdmin.save_formset), never formset.save()."""

    model = Membership
    form = MembershipInlineForm
    formset = MembershipInlineFormSet
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["created_at"]
    autocomplete_fields = ["user"]
    show_change_link = True


class TenantAdminForm(forms.ModelForm):
    class Meta:
        model = Tenant
        fields = ["name", "slug", "account_manager", "data_region", "require_2fa", "help_reply", "shared_senders_allowed"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "account_manager" in self.fields:
            # limit_choices_to on the model says staff; inactive staff manage nobody.
            self.fields["account_manager"].queryset = User.objects.filter(is_staff=True, is_active=True).order_by("email")


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    form = TenantAdminForm
    list_display = ["name", "slug", "status", "account_manager", "member_count", "data_region", "require_2fa",
                    "created_at"]
    list_filter = ["status", "data_region", "require_2fa", ("account_manager", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["account_manager"]
    search_fields = ["name", "slug", "account_manager__email", "memberships__user__email"]
    search_help_text = "Name, slug, account manager's or member's email"
    readonly_fields = ["status", "created_at"]
    fields = ["name", "slug", "status", "account_manager", "data_region", "require_2fa", "help_reply",
              "shared_senders_allowed", "created_at"]
    inlines = [MembershipInline]
    actions = ["suspend", "reactivate"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("memberships", distinct=True))

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj) -> int:
        return obj.member_count

    def get_readonly_fields(self, request, obj=None):
        # The slug names the tenant in audit events and URLs: fixed once created.
        return [*self.readonly_fields, "slug"] if obj is not None else self.readonly_fields

    def get_changeform_initial_data(self, request):
        return {"account_manager": request.user.pk, **super().get_changeform_initial_data(request)}

    def has_delete_permission(self, request, obj=None):
        # Tenants are suspended, not deleted: their audit trail must outlive them.
        return False

    def save_model(self, request, obj, form, change):
        actor = actor_for(request)
        if not change:
            super().save_model(request, obj, form, change)
            services.audit_record(action="tenant.created", actor=actor, tenant=obj, target=obj,
                                  changes={"name": obj.name, "data_region": obj.data_region})
            return
        before = Tenant.objects.get(pk=obj.pk)
        help_reply, obj.help_reply = obj.help_reply, before.help_reply  # saved by its service below
        super().save_model(request, obj, form, change)
        if "require_2fa" in form.changed_data:
            services.tenant_set_require_2fa(tenant=obj, required=obj.require_2fa, actor=actor)
        if "help_reply" in form.changed_data:
            services.tenant_set_help_reply(tenant=obj, help_reply=help_reply, actor=actor)
        changed = [f for f in form.changed_data if f not in ("require_2fa", "help_reply")]
        if changed:
            changes = {f: [_plain(getattr(before, f)), _plain(getattr(obj, f))] for f in changed}
            services.audit_record(action="tenant.updated", actor=actor, tenant=obj, target=obj, changes=changes)

    def save_formset(self, request, form, formset, change):
        if formset.model is not Membership:
            return super().save_formset(request, form, formset, change)
        _save_memberships(self, request, form.instance, formset)

    @admin.action(description="Suspend selected tenants (API refused, portal read-only)", permissions=["change"])
    def suspend(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.SUSPENDED, "Suspended")

    @admin.action(description="Reactivate selected tenants", permissions=["change"])
    def reactivate(self, request, queryset):
        self._set_status(request, queryset, Tenant.Status.ACTIVE, "Reactivated")

    def _set_status(self, request, queryset, status: str, verb: str) -> None:
        changed = 0
        for tenant in queryset:
            if tenant.status != status:
                services.tenant_set_status(tenant=tenant, status=status, actor=actor_for(request))
                changed += 1
        self.message_user(request, f"{verb} {changed} tenant(s).", messages.SUCCESS)


def _plain(value):
    """An audit-friendly (JSON) form of a field value."""
    return value if isinstance(value, str | bool | int | None) else str(value)


def _save_memberships(model_admin, request, tenant: Tenant, formset) -> None:
    """Add first, then change roles, then remove, so that "make B owner, demote A" works in one save.

    Each step is its own service call; one refused (a race the form could not
    see) becomes an error message and the others stand.
    """
    actor = actor_for(request)
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    deleted = [f for f in formset.initial_forms if f in formset.deleted_forms]
    edited = [f for f in formset.forms if f not in formset.deleted_forms and f.has_changed()]
    for f in edited:
        if f.instance.pk is None:
            added = _try(model_admin, request, services.membership_add, tenant=tenant, user=f.cleaned_data["user"],
                         role=f.cleaned_data["role"], actor=actor)
            if added:
                formset.new_objects.append(added)
    # Promotions to owner before demotions, so the tenant never passes through "no owner".
    for f in sorted(edited, key=lambda f: f.cleaned_data["role"] != Role.OWNER):
        if f.instance.pk is not None and "role" in f.changed_data:
            changed = _try(model_admin, request, services.membership_change_role, tenant=tenant,
                           membership=f.instance, role=f.cleaned_data["role"], actor=actor, actor_role=STAFF_ROLE)
            if changed:
                formset.changed_objects.append((changed, ["role"]))
    for f in deleted:
        if _try(model_admin, request, services.membership_remove, tenant=tenant, membership=f.instance, actor=actor,
                actor_role=STAFF_ROLE) is not False:
            formset.deleted_objects.append(f.instance)


def _try(model_admin, request, service, **kwargs):
    """Run a service; a domain error (a race the form could not see) becomes a message and False."""
    try:
        return service(**kwargs)
    except errors.DomainError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return False


class MembershipAdminForm(forms.ModelForm):
    class Meta:
        model = Membership
        fields = ["tenant", "user", "role"]

    def clean_role(self):
        role = self.cleaned_data["role"]
        m = self.instance
        if m.pk and m.role == Role.OWNER and role != Role.OWNER and _is_last_owner(m):
            raise ValidationError(LAST_OWNER_MESSAGE)
        return role


def _is_last_owner(membership: Membership) -> bool:
    return (
        membership.role == Role.OWNER
        and not Membership.objects.filter(tenant_id=membership.tenant_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Adds, role changes and removals go through the services (audited; the last owner stays)."""

    form = MembershipAdminForm
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "tenant"]
    search_fields = ["user__email", "tenant__slug", "tenant__name"]
    autocomplete_fields = ["user", "tenant"]
    readonly_fields = ["public_id", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant", "user"] if obj is not None else self.readonly_fields

    def get_actions(self, request):
        # No bulk delete: each removal is checked against the last-owner rule on its own page.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request, obj=None):
        if obj is not None and _is_last_owner(obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        actor = actor_for(request)
        if not change:
            _adopt(obj, services.membership_add(tenant=obj.tenant, user=obj.user, role=obj.role, actor=actor))
        elif "role" in form.changed_data:
            _try(self, request, services.membership_change_role, tenant=obj.tenant, membership=obj, role=obj.role,
                 actor=actor, actor_role=STAFF_ROLE)

    def delete_model(self, request, obj):
        if _try(self, request, services.membership_remove, tenant=obj.tenant, membership=obj, actor=actor_for(request),
                actor_role=STAFF_ROLE) is False:
            request._membership_kept = True

    def response_delete(self, request, obj_display, obj_id):
        if getattr(request, "_membership_kept", False):
            return self.response_post_save_change(request, None)
        return super().response_delete(request, obj_display, obj_id)


# --- Invitations -------------------------------------------------------------------------


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """View and revoke; invitations are sent from the portal. The token is stored hashed and never shown."""

    list_display = ["email", "tenant", "role", "state", "invited_by", "created_at", "expires_at"]
    list_filter = ["role", ("accepted_at", admin.EmptyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["tenant", "invited_by"]
    search_fields = ["email", "tenant__slug", "tenant__name", "public_id"]
    fields = ["public_id", "tenant", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at",
              "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, obj) -> str:
        if obj.accepted_at:
            return "accepted"
        if obj.revoked_at:
            return "revoked"
        return "pending" if obj.is_pending else "expired"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_invitation")

    @admin.action(description="Revoke selected invitations", permissions=["revoke"])
    def revoke(self, request, queryset):
        for invitation in queryset.select_related("tenant"):
            services.invitation_revoke(tenant=invitation.tenant, invitation=invitation, actor=actor_for(request))
        self.message_user(request, f"Revoked {queryset.count()} invitation(s).", messages.SUCCESS)


# --- API keys and allowlists ---------------------------------------------------------------


class ApiKeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=now))
        if self.value() == "revoked":
            return queryset.exclude(revoked_at=None)
        if self.value() == "expired":
            return queryset.filter(revoked_at=None, expires_at__lte=now)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """View and revoke. Never shows a secret or its hash: only the prefix and the last four characters."""

    list_display = ["name", "tenant", "prefix_display", "mode", "status", "created_at", "last_used_at"]
    list_filter = [ApiKeyStatusFilter, "mode"]
    list_select_related = ["tenant"]
    search_fields = ["name", "key_id", "public_id", "tenant__slug", "tenant__name"]
    # An explicit list (and no "__all__") keeps secret_hash out of every form and page.
    fields = ["tenant", "name", "public_id", "prefix_display", "mode", "scopes", "created_by", "created_at",
              "last_used_at", "expires_at", "revoked_at", "daily_spend_cap"]
    exclude = ["secret_hash"]
    actions = ["revoke"]

    @admin.display(description="Key")
    def prefix_display(self, obj) -> str:
        return f"{obj.prefix}_…{obj.last4}"

    def has_add_permission(self, request):
        return False  # keys are created by tenants, who see the secret once

    def has_change_permission(self, request, obj=None):
        return False  # changing scopes or expiry behind the tenant's back is not a support task

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the audit trail refers to the key

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_apikey")

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke(self, request, queryset):
        revoked = 0
        for api_key in queryset.select_related("tenant"):
            if api_key.revoked_at is None:
                services.api_key_revoke(tenant=api_key.tenant, api_key=api_key, actor=actor_for(request))
                revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


class IpAllowlistEntryForm(forms.ModelForm):
    class Meta:
        model = IpAllowlistEntry
        # `api_key` is added by IpAllowlistEntryAdmin.fields when the admin builds the form for a request:
        # its choices (every tenant's keys, for staff) can only be read under the admin's all_tenants().
        fields = ["tenant", "cidr", "note"]

    def clean_cidr(self):
        try:
            return services.normalize_cidr(self.cleaned_data["cidr"])
        except errors.InvalidCidr as exc:
            raise ValidationError(exc.message, code=exc.code) from None

    def clean(self):
        cleaned = super().clean()
        tenant = cleaned.get("tenant") or getattr(self.instance, "tenant", None)
        api_key = cleaned.get("api_key")
        if tenant is not None and api_key is not None and api_key.tenant_id != tenant.pk:
            self.add_error("api_key", "This key belongs to another tenant.")
        return cleaned


@admin.register(IpAllowlistEntry)
class IpAllowlistEntryAdmin(admin.ModelAdmin):
    """Adds, changes and removals (one or many) go through the allowlist services, which audit them."""

    form = IpAllowlistEntryForm
    fields = ["tenant", "cidr", "api_key", "note", "public_id", "created_by", "created_at"]
    list_display = ["cidr", "tenant", "api_key", "note", "created_by", "created_at"]
    list_select_related = ["tenant", "api_key", "created_by"]
    search_fields = ["cidr", "note", "tenant__slug", "tenant__name"]
    readonly_fields = ["public_id", "created_by", "created_at"]
    autocomplete_fields = ["tenant", "api_key"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "tenant"] if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        actor = actor_for(request)
        if change:
            services.ip_allowlist_update(tenant=obj.tenant, entry=obj, cidr=obj.cidr, note=obj.note,
                                         api_key=obj.api_key, actor=actor)
        else:
            _adopt(obj, services.ip_allowlist_add(tenant=obj.tenant, cidr=obj.cidr, api_key=obj.api_key,
                                                  note=obj.note, actor=actor))

    def delete_model(self, request, obj):
        services.ip_allowlist_remove(tenant=obj.tenant, entry=obj, actor=actor_for(request))

    def delete_queryset(self, request, queryset):
        for entry in queryset.select_related("tenant", "api_key"):
            services.ip_allowlist_remove(tenant=entry.tenant, entry=entry, actor=actor_for(request))


# --- Audit trail ------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: no add, change or delete, so no bulk delete action either."""

    list_display = ["created_at", "action", "tenant", "actor_label", "target_type", "target_id", "ip_address"]
    list_filter = ["action", "target_type"]
    list_select_related = ["tenant"]
    search_fields = ["action", "actor_label", "target_id", "tenant__slug", "ip_address"]
    date_hierarchy = "created_at"
    # The table only grows: skip the unfiltered COUNT(*) on every page.
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
