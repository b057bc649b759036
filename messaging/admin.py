"""Admin for account managers: messages (read-only, with their route attempts, price, carrier cost and margin),
the margins by tenant and country for a period (with a CSV export), templates, and routing
(messaging/routing/admin.py: carriers, routes and rate decks, circuits, quality, tenant policies)."""
import csv
import io
from datetime import UTC, date, datetime, timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone

from messaging.models import Message, MessageEvent, MessageTemplate, SimulatorSubmission
from messaging.routing.admin import MessageAttemptInline  # also registers the routing models
from messaging.routing.margins import (
    NO_ROUTE,
    MarginRow,
    margins_by_tenant_country,
    margins_totals,
    message_margin,
    messages_with_carrier_cost,
)

# Margins show carrier costs: staff who may see messages and their route attempts (where the costs are).
MARGIN_PERMISSIONS = ("messaging.view_message", "messaging.view_messageattempt")
MARGIN_COLUMNS = ("tenant", "country", "currency", "messages", "segments", "revenue", "carrier_cost", "margin",
                  "margin_percent", "cost_currencies", "estimated")


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    fields = ["sequence", "status", "source", "detail", "error_code", "carrier_error_code", "created_at"]
    readonly_fields = fields
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only: every change of a message goes through the pipeline, never through a form."""

    list_display = ["public_id", "tenant", "to", "sender", "message_type", "status", "mode", "segments",
                    "price", "currency", "carrier_cost", "margin", "created_at"]
    list_filter = ["status", "message_type", "mode", "billed", "carrier"]
    search_fields = ["=public_id", "=to", "=carrier_message_id", "=client_reference", "tenant__slug"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]
    inlines = [MessageEventInline, MessageAttemptInline]
    show_full_result_count = False
    change_list_template = "admin/messaging/message/change_list.html"

    def get_queryset(self, request):
        return messages_with_carrier_cost(super().get_queryset(request))

    def get_readonly_fields(self, request, obj=None):
        return [*(f.name for f in Message._meta.fields), "carrier_cost", "margin"]

    @admin.display(description="Carrier cost")
    def carrier_cost(self, obj: Message) -> str:
        figures = message_margin(message=obj)
        return "—" if figures.cost is None else f"{figures.cost:.6f} {figures.cost_currency}".strip()

    @admin.display(description="Margin")
    def margin(self, obj: Message) -> str:
        figures = message_margin(message=obj)
        if figures.margin is None:
            return "—" if figures.cost is None or obj.price is None else "n/a"
        return f"{'≈ ' if figures.estimated else ''}{figures.margin:.6f} {obj.currency}"

    def get_urls(self):
        return [path("margins/", self.admin_site.admin_view(self.margins_view), name="messaging_message_margins"),
                *super().get_urls()]

    def margins_view(self, request):
        """Margin by tenant and country for a month or a from/to period (GET); `?export=csv` downloads it."""
        if not request.user.has_perms(MARGIN_PERMISSIONS):
            raise PermissionDenied
        form = MarginPeriodForm(request.GET or None)
        start, end = form.period() if form.is_bound and form.is_valid() else MarginPeriodForm.this_month()
        rows = margins_by_tenant_country(start=start, end=end) if not form.errors else []
        if request.GET.get("export") == "csv" and not form.errors:
            return _margins_csv(rows, start=start, end=end)
        context = {**self.admin_site.each_context(request), "form": form, "rows": rows,
                   "totals": margins_totals(rows), "start": start, "end": end - timedelta(days=1),
                   "query": request.GET.urlencode(), "title": "Margins by tenant and country",
                   "opts": self.model._meta, "no_route": NO_ROUTE}
        return render(request, "admin/messaging/message/margins.html", context)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


class MarginPeriodForm(forms.Form):
    """A month (YYYY-MM), or a from/to period of days (UTC, both included); nothing: this month."""

    month = forms.RegexField(regex=r"^\d{4}-(0[1-9]|1[0-2])$", required=False, help_text="YYYY-MM",
                             error_messages={"invalid": "A month as YYYY-MM."})
    start = forms.DateField(required=False, label="From", help_text="YYYY-MM-DD")
    end = forms.DateField(required=False, label="To (included)", help_text="YYYY-MM-DD")

    def clean(self):
        data = super().clean()
        month, start, end = data.get("month"), data.get("start"), data.get("end")
        if month and (start or end):
            raise forms.ValidationError("Choose a month or a from/to period, not both.")
        if not month and bool(start) != bool(end):
            raise forms.ValidationError("A period needs both its first and its last day.")
        if start and end and end < start:
            raise forms.ValidationError("The last day is before the first.")
        return data

    def period(self) -> tuple[datetime, datetime]:
        """[start, end) as UTC datetimes."""
        data = self.cleaned_data
        if data.get("month"):
            year, month = map(int, data["month"].split("-"))
            return _month(date(year, month, 1))
        if data.get("start"):
            return _midnight(data["start"]), _midnight(data["end"] + timedelta(days=1))
        return self.this_month()

    @staticmethod
    def this_month() -> tuple[datetime, datetime]:
        return _month(timezone.now().date().replace(day=1))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _month(first: date) -> tuple[datetime, datetime]:
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return _midnight(first), _midnight(following)


def _money(value) -> str:
    return "" if value is None else f"{value:.6f}"


def _margins_csv(rows: list[MarginRow], *, start: datetime, end: datetime) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(MARGIN_COLUMNS)
    for row in rows:
        writer.writerow([row.tenant, row.country, row.currency, row.messages, row.segments, _money(row.revenue),
                         _money(row.cost), _money(row.margin), "" if row.margin_percent is None else row.margin_percent,
                         " ".join(sorted(row.cost_currencies)), "yes" if row.estimated else "no"])
    response = HttpResponse(out.getvalue(), content_type="text/csv")
    last = (end - timedelta(days=1)).date()
    response["Content-Disposition"] = f'attachment; filename="margins-{start.date()}-{last}.csv"'
    return response


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "message_type", "updated_at"]
    list_filter = ["message_type"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = ["public_id", "created_at", "updated_at"]


@admin.register(SimulatorSubmission)
class SimulatorSubmissionAdmin(admin.ModelAdmin):
    list_display = ["carrier_message_id", "reference", "to", "submits", "created_at"]
    search_fields = ["=reference", "=carrier_message_id", "=to"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
