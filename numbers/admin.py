"""Admin for account managers: the number inventory (CSV import and export), its history, leases,
assignments, pools, usage and inbound messages.

Nothing here edits a holding: statuses and holders change only through numbers.services (retire,
force-release), which write NumberEvents naming the staff member; every change made here also
writes an AuditEvent (to the tenant concerned when there is one).
"""
from __future__ import annotations

import csv
from decimal import Decimal
from numbers import services
from numbers.inbound import inbound_receive
from numbers.inventory import (
    CSV_COLUMNS,
    EXPORT_COLUMNS,
    MAX_IMPORT_ROWS,
    inventory_export_row,
    inventory_import,
    number_row_parse,
)
from numbers.models import (
    HELD,
    Capability,
    InboundMessage,
    NumberAssignment,
    NumberEvent,
    NumberLease,
    NumberPool,
    NumberPoolMember,
    NumberUsage,
    PhoneNumber,
)
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.http import StreamingHttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.portal.decorators import actor_for
from accounts.services import audit_record
from smsportal.errors import DomainError

if TYPE_CHECKING:
    from accounts.models import Tenant

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
# The change page of a number shows this many of the latest rows of each history; the rest is one
# link away (a number leased for OTPs collects thousands of leases).
HISTORY_ROWS = 50


def _audit(request, action: str, *, tenant: Tenant | None = None, target=None, changes: dict | None = None) -> None:
    audit_record(action=action, actor=actor_for(request), tenant=tenant, target=target, changes=changes)


def _plain(value):
    """An audit-friendly (JSON) form of a field value; money with its 4 stored places."""
    if isinstance(value, Decimal):
        return f"{value.quantize(Decimal('0.0001')):f}"
    return value if isinstance(value, str | bool | list | None) else str(value)


# --- Read-only building blocks --------------------------------------------------------------------


class _LatestFormSet(BaseInlineFormSet):
    """Only the newest HISTORY_ROWS rows of the inline (the inline's ordering is newest first)."""

    def get_queryset(self):
        if not hasattr(self, "_latest"):
            self._latest = super().get_queryset()[:HISTORY_ROWS]
        return self._latest


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    formset = _LatestFormSet

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """View only: history and holdings are written by the services, never by hand."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _EndedFilter(admin.SimpleListFilter):
    """Active (still held) or ended holdings, by the field that records the end."""

    title = "state"
    parameter_name = "state"
    end_field = ""

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("ended", "Ended")]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.filter(**{self.end_field: None})
        if self.value() == "ended":
            return queryset.exclude(**{self.end_field: None})
        return queryset


class LeaseStateFilter(_EndedFilter):
    end_field = "released_at"


class AssignmentStateFilter(_EndedFilter):
    end_field = "ended_at"


# --- Inventory ------------------------------------------------------------------------------------


class NumberEventInline(_ReadOnlyInline):
    model = NumberEvent
    verbose_name_plural = f"Number events (latest {HISTORY_ROWS})"
    fields = ["created_at", "kind", "from_status", "to_status", "tenant", "detail", "actor"]
    readonly_fields = fields
    ordering = ["-created_at", "-id"]


class NumberLeaseInline(_ReadOnlyInline):
    model = NumberLease
    verbose_name_plural = f"Leases (latest {HISTORY_ROWS})"
    fields = ["public_id", "tenant", "started_at", "expires_at", "released_at", "release_reason"]
    readonly_fields = fields
    ordering = ["-started_at", "-id"]
    show_change_link = True


class NumberAssignmentInline(_ReadOnlyInline):
    model = NumberAssignment
    verbose_name_plural = f"Assignments (latest {HISTORY_ROWS})"
    fields = ["public_id", "tenant", "started_at", "ended_at"]
    readonly_fields = fields
    ordering = ["-started_at", "-id"]
    show_change_link = True


class PhoneNumberForm(forms.ModelForm):
    """Checked like a CSV row (numbers/inventory.py), so the admin stores what an import would."""

    capabilities = forms.MultipleChoiceField(choices=Capability.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = PhoneNumber
        fields = ["number", "country", "type", "capabilities", "carrier", "monthly_cost", "monthly_price",
                  "shared_sender"]

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        if cleaned.get("shared_sender") and self.instance.status in HELD:
            self.add_error("shared_sender", "A tenant holds this number; release it before making it a shared sender.")
        row = {name: str(cleaned.get(name) or "") for name in CSV_COLUMNS}
        row["number"] = cleaned.get("number") or self.instance.number
        row["capabilities"] = "|".join(cleaned.get("capabilities") or [])
        try:
            self.parsed = number_row_parse(row)
        except DomainError as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)
            return cleaned
        if self.instance.pk is None and PhoneNumber.objects.filter(number=self.parsed["number"]).exists():
            self.add_error("number", f"{self.parsed['number']} is already in the inventory.")
        return cleaned


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin):
    """Descriptions are edited here or imported; status and holder change only through the actions (services)."""

    form = PhoneNumberForm
    change_list_template = "admin/numbers/phonenumber/change_list.html"
    list_display = ["number", "country", "type", "status", "holder", "shared_sender", "carrier", "monthly_cost",
                    "monthly_price", "quarantined_until"]
    list_filter = ["status", "type", "country", "carrier", "shared_sender"]
    search_fields = ["number", "=public_id", "holder__slug"]
    search_help_text = "Number, public id (exact) or holder's slug"
    list_select_related = ["holder"]
    readonly_fields = ["public_id", "status", "holder", "quarantined_until", "history", "created_at", "updated_at"]
    inlines = [NumberEventInline, NumberLeaseInline, NumberAssignmentInline]
    actions = ["retire", "force_release", "export_selected"]

    def get_readonly_fields(self, request, obj=None):
        # The number is the import's key: fixed once created (retire it and add another instead).
        return ["number", *self.readonly_fields] if obj is not None else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # a new number has no history

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # inventory is retired, never deleted
        return actions

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Full history")
    def history(self, obj) -> str:
        if obj.pk is None:
            return "-"
        links = [(reverse(f"admin:numbers_{model._meta.model_name}_changelist") + "?"
                  + urlencode({"number__id__exact": obj.pk}), model._meta.verbose_name_plural)
                 for model in (NumberEvent, NumberLease, NumberAssignment)]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    def save_model(self, request, obj, form, change):
        fields = [*form.parsed, "shared_sender"]
        before = {name: getattr(PhoneNumber.objects.get(pk=obj.pk), name) for name in fields} if change else {}
        with transaction.atomic():
            saved, _created = services.phone_number_upsert(actor=actor_for(request), **form.parsed)
            # Not a CSV column: the flag has its own service, which refuses a held number.
            services.number_shared_sender_set(number=saved, shared_sender=form.cleaned_data["shared_sender"])
            after = {**form.parsed, "shared_sender": saved.shared_sender}
            changes = {name: [_plain(before[name]) if change else None, _plain(value)]
                       for name, value in after.items() if not change or before[name] != value}
            _audit(request, "number.updated" if change else "number.created", target=saved, changes=changes)
        obj.pk = saved.pk
        obj.refresh_from_db()

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="numbers_phonenumber_import"),
            path("export/", self.admin_site.admin_view(self.export_view), name="numbers_phonenumber_export"),
            *super().get_urls(),
        ]

    # --- Actions: each number through its service, audited to the tenant concerned

    def _each(self, request, queryset, action, verb: str) -> None:
        done = 0
        for number in queryset:
            try:
                done += action(request, number)
            except DomainError as error:
                self.message_user(request, f"{number}: {error.message}", messages.ERROR)
        self.message_user(request, f"{verb} {done} number(s).", messages.SUCCESS)

    @admin.action(description="Retire the selected numbers (only when no tenant holds them)")
    def retire(self, request, queryset):
        self._each(request, queryset, self._retire_one, "Retired")

    @admin.action(description="Force-release the selected numbers (they go to quarantine)")
    def force_release(self, request, queryset):
        self._each(request, queryset, self._force_release_one, "Released")

    def _retire_one(self, request, number: PhoneNumber) -> bool:
        with transaction.atomic():
            if not services.number_retire(number=number, actor=actor_for(request)):
                return False
            _audit(request, "number.retired", target=number, changes={"number": number.number})
        return True

    def _force_release_one(self, request, number: PhoneNumber) -> bool:
        """The number's row lock (PostgreSQL; SQLite serializes writers) keeps the holder read here
        the one whose holding ends, so the audit event lands in that tenant's log."""
        with transaction.atomic():
            locked = PhoneNumber.objects.select_for_update(of=("self",)).select_related("holder").get(pk=number.pk)
            holder = locked.holder
            if not services.number_force_release(number=locked, actor=actor_for(request)):
                return False
            _audit(request, "number.force_released", tenant=holder, target=locked,
                   changes={"number": locked.number, "holder": holder.slug if holder else None})
        return True

    # --- CSV export and import

    @admin.action(description="Export the selected numbers as CSV")
    def export_selected(self, request, queryset):
        return self._export(request, queryset, scope="selected")

    def export_view(self, request):
        """The changelist as it is filtered and searched (same query string), as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return redirect(reverse("admin:numbers_phonenumber_changelist") + "?e=1")
        return self._export(request, changelist.queryset, scope=request.GET.urlencode() or "all")

    def _export(self, request, queryset, *, scope: str) -> StreamingHttpResponse:
        queryset = queryset.select_related("holder").order_by("number")
        _audit(request, "numbers.exported", changes={"scope": scope, "count": queryset.count()})
        writer = csv.writer(_Echo())
        rows = (writer.writerow(inventory_export_row(number)) for number in queryset.iterator(chunk_size=2000))
        response = StreamingHttpResponse(_chain(writer.writerow(EXPORT_COLUMNS), rows), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="numbers-{timezone.now():%Y%m%d-%H%M%S}.csv"'
        return response

    def import_view(self, request):
        """Upload form and summary; the import is all or nothing (numbers/inventory.py)."""
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            with transaction.atomic():
                result = inventory_import(text=form.cleaned_data["text"], actor=actor_for(request))
                if not result.errors:
                    _audit(request, "numbers.imported", changes={
                        "file": upload.name[:200], "created": result.created, "updated": result.updated,
                        "unchanged": result.unchanged})
        context = {**self.admin_site.each_context(request), "title": "Import numbers from CSV", "form": form,
                   "result": result, "opts": self.model._meta, "columns": ",".join(CSV_COLUMNS),
                   "export_columns": ",".join(EXPORT_COLUMNS), "max_rows": MAX_IMPORT_ROWS,
                   "max_megabytes": MAX_UPLOAD_BYTES // (1024 * 1024)}
        return TemplateResponse(request, "admin/numbers/phonenumber/import.html", context)


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a streaming response."""

    def write(self, value: str) -> str:
        return value


def _chain(first: str, rest):
    yield first
    yield from rest


class ImportForm(forms.Form):
    file = forms.FileField(help_text=f"A CSV file, UTF-8 (a byte-order mark is fine), at most "
                                     f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.")
        try:
            self.cleaned_data["text"] = upload.read(MAX_UPLOAD_BYTES + 1).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text; save it as CSV UTF-8.") from None
        return upload


# --- Holdings and history (read-only) -------------------------------------------------------------


@admin.register(NumberLease)
class NumberLeaseAdmin(_ReadOnlyAdmin):
    """Lease history."""

    list_display = ["public_id", "number", "tenant", "started_at", "expires_at", "released_at", "release_reason"]
    list_filter = [LeaseStateFilter, "release_reason"]
    search_fields = ["=public_id", "number__number", "tenant__slug"]
    search_help_text = "Lease id (exact), number or tenant's slug"
    list_select_related = ["number", "tenant"]
    date_hierarchy = "started_at"


@admin.register(NumberAssignment)
class NumberAssignmentAdmin(_ReadOnlyAdmin):
    list_display = ["public_id", "number", "tenant", "started_at", "ended_at"]
    list_filter = [AssignmentStateFilter]
    search_fields = ["=public_id", "number__number", "tenant__slug"]
    search_help_text = "Assignment id (exact), number or tenant's slug"
    list_select_related = ["number", "tenant"]
    date_hierarchy = "started_at"


@admin.register(NumberEvent)
class NumberEventAdmin(_ReadOnlyAdmin):
    list_display = ["created_at", "number", "kind", "from_status", "to_status", "tenant", "actor"]
    list_filter = ["kind"]
    search_fields = ["number__number", "tenant__slug", "actor"]
    list_select_related = ["number", "tenant"]
    ordering = ["-created_at", "-id"]
    # The table only grows: skip the unfiltered COUNT(*) on every page.
    show_full_result_count = False


@admin.register(NumberUsage)
class NumberUsageAdmin(_ReadOnlyAdmin):
    list_display = ["day", "tenant", "number", "kind", "seconds", "holdings"]
    list_filter = ["kind", "day"]
    search_fields = ["number__number", "tenant__slug"]
    date_hierarchy = "day"
    list_select_related = ["number", "tenant"]
    ordering = ["-day", "tenant", "number"]


class NumberPoolMemberInline(_ReadOnlyInline):
    model = NumberPoolMember
    verbose_name_plural = f"Members (first {HISTORY_ROWS})"
    fields = ["number", "added_at"]
    readonly_fields = fields
    ordering = ["number__number"]


@admin.register(NumberPool)
class NumberPoolAdmin(_ReadOnlyAdmin):
    """Pools are the tenant's own (portal and API); shown here for support."""

    list_display = ["name", "tenant", "member_count", "sticky_sender", "geo_match", "created_at"]
    list_filter = ["sticky_sender", "geo_match"]
    search_fields = ["name", "=public_id", "tenant__slug"]
    list_select_related = ["tenant"]
    inlines = [NumberPoolMemberInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members", distinct=True))

    @admin.display(description="Members", ordering="member_count")
    def member_count(self, obj) -> int:
        return obj.member_count


# --- Inbound messages -----------------------------------------------------------------------------


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
class InboundMessageAdmin(_ReadOnlyAdmin):
    """Inbound messages, read-only; unclaimed ones (tenant empty) are kept here for account managers."""

    change_list_template = "admin/numbers/inboundmessage/change_list.html"
    list_display = ["public_id", "received_at", "to", "sender", "tenant", "code", "service", "keyword", "carrier"]
    list_filter = [UnclaimedFilter, "keyword", "carrier"]
    search_fields = ["=public_id", "to", "sender", "carrier_message_id", "tenant__slug"]
    list_select_related = ["tenant"]
    ordering = ["-received_at", "-id"]

    def get_urls(self):
        inject = self.admin_site.admin_view(self.inject_view)
        return [path("inject/", inject, name="numbers_inboundmessage_inject"), *super().get_urls()]

    def inject_view(self, request):
        """Carrier simulator: inject an inbound message through the same service the connectors use."""
        # Injecting writes (a message, keyword events, webhooks): more than viewing the list.
        if not request.user.has_perm("numbers.add_inboundmessage"):
            raise PermissionDenied
        form = InjectForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            with transaction.atomic():
                message = inbound_receive(to=data["to"], sender=data["sender"], text=data["text"],
                                          carrier="simulator", carrier_message_id=data["carrier_message_id"],
                                          received_at=timezone.now())
                _audit(request, "inbound.injected", tenant=message.tenant, target=message,
                       changes={"to": message.to, "sender": message.sender,
                                "carrier_message_id": message.carrier_message_id})
            self.message_user(request, format_html(
                "Stored {} for {}.", message.public_id,
                message.tenant.slug if message.tenant else "no tenant (unclaimed)"))
            return redirect("admin:numbers_inboundmessage_changelist")
        context = {**self.admin_site.each_context(request), "title": "Inject an inbound message (simulator)",
                   "form": form, "opts": self.model._meta}
        return TemplateResponse(request, "admin/numbers/inboundmessage/inject.html", context)


class InjectForm(forms.Form):
    to = forms.RegexField(r"^\+?\d{3,15}$", help_text="The platform number (E.164).")
    sender = forms.RegexField(r"^\+[1-9]\d{6,14}$", label="From", help_text="E.164.")
    text = forms.CharField(widget=forms.Textarea, max_length=1600)
    carrier_message_id = forms.CharField(required=False, max_length=100, help_text="Empty: a new one.")
