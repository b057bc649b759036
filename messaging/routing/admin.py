"""Admin for account managers: carriers (credentials write-only), routes with their rate decks (CSV import and
export), circuits with every transition, live quality, tenant routing policies, and each message's attempts
(carrier and cost shown to staff only). Imported by messaging/admin.py."""
from __future__ import annotations

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse

from accounts.services import ip_text
from accounts.services.audit import Actor, audit_record
from messaging.carriers.config import SECRET_FIELDS
from messaging.routing.credentials import credentials_decrypt, credentials_replaced
from messaging.routing.decks import COLUMNS, DeckError, deck_import, deck_parse, route_cost_set
from messaging.routing.loader import CarriersFileError, carrier_settings_check
from messaging.routing.models import (
    Carrier,
    MessageAttempt,
    Route,
    RouteCircuit,
    RouteCircuitTransition,
    RouteCost,
    RouteQuality,
    TenantRouting,
)


def _actor(request) -> Actor:
    return Actor(user=request.user, ip=ip_text(getattr(request, "client_ip", None)))


class CarrierForm(forms.ModelForm):
    """The secrets are typed in, never shown: a blank field keeps what is stored."""

    new_credentials = forms.JSONField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text=f"Write-only: a JSON object of secrets ({', '.join(sorted(SECRET_FIELDS))}). Blank keeps the "
                  "stored ones; given keys replace theirs, a key set to null is removed.")

    class Meta:
        model = Carrier
        fields = ["name", "kind", "enabled", "settings"]

    def clean_new_credentials(self):
        value = self.cleaned_data.get("new_credentials")
        if value in (None, ""):
            return None
        if not isinstance(value, dict) or any(k not in SECRET_FIELDS for k in value) or any(
                v is not None and not isinstance(v, str) for v in value.values()):
            raise forms.ValidationError(f"An object whose keys are among {', '.join(sorted(SECRET_FIELDS))}, "
                                        "with text values (or null to remove one).")
        return value

    def clean(self):
        """The settings as carriers_load would check them, with the secrets stored and given."""
        data = super().clean()
        if self.errors:
            return data
        stored = self.instance.credentials_encrypted
        given = data.get("new_credentials") or {}
        names = set(credentials_decrypt(stored)) if self.instance.pk and stored else set()
        names = (names | {k for k, v in given.items() if v is not None}) - {k for k, v in given.items() if v is None}
        try:
            carrier_settings_check(name=data.get("name", ""), kind=data.get("kind", ""),
                                   settings=data.get("settings"), secret_names=names)
        except CarriersFileError as exc:
            self.add_error("settings", str(exc).split(": ", 1)[-1])
        return data


class RouteInline(admin.TabularInline):
    model = Route
    extra = 0
    fields = ["prefix", "country", "operator", "cost", "currency", "priority", "message_types", "sender_types",
              "enabled"]


@admin.register(Carrier)
class CarrierAdmin(admin.ModelAdmin):
    form = CarrierForm
    list_display = ["name", "kind", "enabled", "session_state", "session_state_at", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name"]
    readonly_fields = ["credentials_set", "session_state", "session_state_at", "created_at", "updated_at"]
    inlines = [RouteInline]

    @admin.display(description="Credentials stored")
    def credentials_set(self, obj: Carrier) -> str:
        names = sorted(credentials_decrypt(obj.credentials_encrypted)) if obj and obj.credentials_encrypted else []
        return ", ".join(names) or "none"  # their names only, never a value

    def save_model(self, request, obj, form, change):
        given = form.cleaned_data.get("new_credentials")
        changed_secrets: list[str] = []
        if given is not None:
            obj.credentials_encrypted, changed_secrets = credentials_replaced(obj.credentials_encrypted, given)
        super().save_model(request, obj, form, change)
        audit_record(action="carrier.change" if change else "carrier.create", actor=_actor(request), target=obj,
                     changes={"fields": sorted(form.changed_data), "secrets_changed": changed_secrets})

    def save_formset(self, request, form, formset, change):
        super().save_formset(request, form, formset, change)
        if formset.model is Route:
            for route_form in formset.forms:
                if route_form.instance.pk and not route_form.cleaned_data.get("DELETE"):
                    _route_cost_saved(request, route_form)


def _route_cost_saved(request, form) -> None:
    """A route added, or its cost or currency changed, on an admin page: in force now, with its history line
    (decks.route_cost_set), and audited."""
    route = form.instance
    if form.has_changed() and ({"cost", "currency"} & set(form.changed_data) or route.cost_from is None):
        route_cost_set(route, source=f"admin: {request.user.get_username()}")
        audit_record(action="route.cost", actor=_actor(request), target=route,
                     changes={"cost": str(route.cost), "currency": route.currency})


class DeckUploadForm(forms.Form):
    carrier = forms.ModelChoiceField(queryset=Carrier.objects.all())
    deck = forms.FileField(help_text=f"CSV with the columns {','.join(COLUMNS)}")


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ["__str__", "country", "operator", "cost", "currency", "cost_from", "priority", "enabled",
                    "circuit_state"]
    list_filter = ["enabled", "carrier", "currency", "country"]
    search_fields = ["prefix", "carrier__name", "country", "operator"]
    list_select_related = ["carrier", "circuit"]
    readonly_fields = ["cost_from", "created_at", "updated_at"]
    actions = ["deck_export"]
    change_list_template = "admin/messaging/route/change_list.html"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        _route_cost_saved(request, form)

    @admin.display(description="Circuit")
    def circuit_state(self, obj: Route) -> str:
        circuit = getattr(obj, "circuit", None)
        return circuit.state if circuit is not None else RouteCircuit.State.CLOSED

    def get_urls(self):
        return [path("import-deck/", self.admin_site.admin_view(self.deck_import_view), name="messaging_route_import"),
                *super().get_urls()]

    def deck_import_view(self, request):
        form = DeckUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                rows = deck_parse(form.cleaned_data["deck"].read().decode("utf-8-sig"))
            except (DeckError, UnicodeDecodeError) as exc:
                form.add_error("deck", str(exc))
            else:
                carrier = form.cleaned_data["carrier"]
                result = deck_import(carrier=carrier, rows=rows, source=form.cleaned_data["deck"].name)
                audit_record(action="routes.import", actor=_actor(request), target=carrier,
                             changes={"file": form.cleaned_data["deck"].name, "rows": len(rows)})
                self.message_user(request, f"{len(rows)} rows: {result.routes_created} routes created, "
                                           f"{result.costs_added} costs added.", messages.SUCCESS)
                return redirect(reverse("admin:messaging_route_changelist"))
        context = {**self.admin_site.each_context(request), "form": form, "title": "Import a rate deck",
                   "opts": self.model._meta}
        return render(request, "admin/messaging/route/import_deck.html", context)

    @admin.action(description="Export the selected routes as a rate deck (CSV)")
    def deck_export(self, request, queryset):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(COLUMNS)
        for route in queryset.order_by("prefix", "operator"):
            writer.writerow([route.prefix, route.country, route.operator, route.cost, route.currency,
                             route.cost_from.isoformat() if route.cost_from else ""])
        response = HttpResponse(out.getvalue(), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="rate-deck.csv"'
        return response


@admin.register(RouteCost)
class RouteCostAdmin(admin.ModelAdmin):
    list_display = ["route", "cost", "currency", "effective_from", "source", "created_at"]
    list_filter = ["currency"]
    search_fields = ["route__prefix", "route__carrier__name", "source"]
    list_select_related = ["route__carrier"]


class TransitionInline(admin.TabularInline):
    model = RouteCircuitTransition
    fk_name = "route"
    extra = 0
    can_delete = False
    fields = ["created_at", "from_state", "to_state", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(RouteCircuit)
class RouteCircuitAdmin(admin.ModelAdmin):
    list_display = ["route", "state", "consecutive_failures", "opened_at", "reason", "changed_at"]
    list_filter = ["state"]
    readonly_fields = ["route", "state", "consecutive_failures", "opened_at", "reason", "changed_at"]


@admin.register(RouteCircuitTransition)
class RouteCircuitTransitionAdmin(admin.ModelAdmin):
    list_display = ["created_at", "route", "from_state", "to_state", "reason"]
    list_filter = ["to_state"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RouteQuality)
class RouteQualityAdmin(admin.ModelAdmin):
    list_display = ["route", "window", "submits", "delivered", "failed", "errors", "rate", "error_rate_shown",
                    "latency_p50_ms", "latency_p95_ms", "computed_at"]
    list_filter = ["window"]

    @admin.display(description="Delivery rate")
    def rate(self, obj: RouteQuality) -> str:
        return "—" if obj.delivery_rate is None else f"{obj.delivery_rate:.1%}"

    @admin.display(description="Error rate")
    def error_rate_shown(self, obj: RouteQuality) -> str:
        return "—" if obj.error_rate is None else f"{obj.error_rate:.1%}"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TenantRouting)
class TenantRoutingAdmin(admin.ModelAdmin):
    list_display = ["tenant", "policy", "otp_policy"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(action="routing.policy", actor=_actor(request), tenant=obj.tenant, target=obj,
                     changes={"policy": obj.policy, "otp_policy": obj.otp_policy})


class MessageAttemptInline(admin.TabularInline):
    """Staff see the carrier and the cost of each attempt; customers never do."""

    model = MessageAttempt
    extra = 0
    can_delete = False
    fields = ["number", "carrier", "route", "cost", "currency", "quality_class", "reason", "outcome", "error_code",
              "started_at", "submitted_at", "finished_at"]
    readonly_fields = fields
    ordering = ["number"]

    def has_add_permission(self, request, obj=None):
        return False
