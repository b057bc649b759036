"""Admin for account managers: the number inventory, its history, leases and assignments."""
from numbers import services
from numbers.inbound import inbound_receive
from numbers.models import InboundMessage, NumberAssignment, NumberEvent, NumberLease, NumberUsage, PhoneNumber

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts.services.audit import Actor
from smsportal.errors import DomainError


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class NumberEventInline(_ReadOnlyInline):
    model = NumberEvent
    fields = ["created_at", "kind", "from_status", "to_status", "tenant", "detail", "actor"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]


class NumberLeaseInline(_ReadOnlyInline):
    model = NumberLease
    fields = ["public_id", "tenant", "started_at", "expires_at", "released_at", "release_reason"]
    readonly_fields = fields


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin):
    """Descriptions are editable; status and holder change only through the actions (services)."""

    list_display = ["number", "country", "type", "status", "holder", "carrier", "monthly_cost", "monthly_price",
                    "quarantined_until"]
    list_filter = ["status", "type", "country", "carrier"]
    search_fields = ["number", "=public_id", "holder__slug"]
    list_select_related = ["holder"]
    readonly_fields = ["public_id", "status", "holder", "quarantined_until", "created_at", "updated_at"]
    inlines = [NumberEventInline, NumberLeaseInline]
    actions = ["retire", "force_release"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # inventory is retired, never deleted
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        services.phone_number_upsert(actor=Actor(user=request.user), **{
            name: form.cleaned_data[name]
            for name in ["number", "country", "type", "capabilities", "carrier", "monthly_cost", "monthly_price"]
        })

    def _each(self, request, queryset, action, verb: str) -> None:
        done = 0
        for number in queryset:
            try:
                done += bool(action(number=number, actor=Actor(user=request.user)))
            except DomainError as error:
                self.message_user(request, f"{number}: {error.message}", messages.ERROR)
        self.message_user(request, f"{verb} {done} number(s).", messages.SUCCESS)

    @admin.action(description="Retire the selected numbers (only when no tenant holds them)")
    def retire(self, request, queryset):
        self._each(request, queryset, services.number_retire, "Retired")

    @admin.action(description="Force-release the selected numbers (they go to quarantine)")
    def force_release(self, request, queryset):
        self._each(request, queryset, services.number_force_release, "Released")


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(NumberLease)
class NumberLeaseAdmin(_ReadOnlyAdmin):
    """Lease history, read-only."""

    list_display = ["public_id", "number", "tenant", "started_at", "expires_at", "released_at", "release_reason"]
    list_filter = ["release_reason"]
    search_fields = ["=public_id", "number__number", "tenant__slug"]
    list_select_related = ["number", "tenant"]
    date_hierarchy = "started_at"


@admin.register(NumberAssignment)
class NumberAssignmentAdmin(_ReadOnlyAdmin):
    list_display = ["public_id", "number", "tenant", "started_at", "ended_at"]
    search_fields = ["=public_id", "number__number", "tenant__slug"]
    list_select_related = ["number", "tenant"]


@admin.register(NumberEvent)
class NumberEventAdmin(_ReadOnlyAdmin):
    list_display = ["created_at", "number", "kind", "from_status", "to_status", "tenant", "actor"]
    list_filter = ["kind"]
    search_fields = ["number__number", "tenant__slug"]
    list_select_related = ["number", "tenant"]


@admin.register(NumberUsage)
class NumberUsageAdmin(_ReadOnlyAdmin):
    list_display = ["day", "tenant", "number", "kind", "seconds", "holdings"]
    list_filter = ["kind"]
    date_hierarchy = "day"
    list_select_related = ["number", "tenant"]


class UnclaimedFilter(admin.SimpleListFilter):
    title = "claimed"
    parameter_name = "unclaimed"

    def lookups(self, request, model_admin):
        return [("yes", "Unclaimed (no tenant held the number)"), ("no", "Claimed by a tenant")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(tenant=None)
        if self.value() == "no":
            return queryset.exclude(tenant=None)
        return queryset


@admin.register(InboundMessage)
class InboundMessageAdmin(admin.ModelAdmin):
    """Inbound messages, read-only; unclaimed ones (tenant empty) are kept here for account managers."""

    list_display = ["public_id", "received_at", "to", "sender", "tenant", "code", "service", "keyword", "carrier"]
    list_filter = [UnclaimedFilter, "keyword", "carrier"]
    search_fields = ["=public_id", "to", "sender", "carrier_message_id", "tenant__slug"]
    list_select_related = ["tenant"]
    ordering = ["-received_at", "-id"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        inject = self.admin_site.admin_view(self.inject_view)
        return [path("inject/", inject, name="numbers_inboundmessage_inject"), *super().get_urls()]

    def inject_view(self, request):
        """Carrier simulator: inject an inbound message through the same service the connectors use."""
        if not request.user.has_perm("numbers.view_inboundmessage"):
            raise PermissionDenied
        form = InjectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            message = inbound_receive(to=data["to"], sender=data["sender"], text=data["text"], carrier="simulator",
                                      carrier_message_id=data["carrier_message_id"], received_at=timezone.now())
            self.message_user(request, f"Stored {message.public_id} for "
                                       f"{message.tenant.slug if message.tenant else 'no tenant (unclaimed)'}.")
            return redirect("admin:numbers_inboundmessage_changelist")
        context = {**self.admin_site.each_context(request), "title": "Inject an inbound message (simulator)",
                   "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/numbers/inboundmessage/inject.html", context)


class InjectForm(forms.Form):
    to = forms.RegexField(r"^\+?\d{3,15}$", help_text="The platform number (E.164).")
    sender = forms.RegexField(r"^\+[1-9]\d{6,14}$", label="From", help_text="E.164.")
    text = forms.CharField(widget=forms.Textarea, max_length=1600)
    carrier_message_id = forms.CharField(required=False, max_length=100, help_text="Empty: a new one.")
