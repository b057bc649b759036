"""Portal pages of billing (role permission `billing.view`): the balance with 30 days of spend, the ledger,
usage by country, the prices in force and the savings calculator; the Billing settings (`billing.manage`: the
low-balance threshold); and the savings calculator before sign-up."""
from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.csrf import csrf_protect

from accounts.portal.decorators import actor_for, ip_for, portal_view
from billing import hooks, savings, selectors, services
from billing.portal.forms import LowBalanceForm, PriceFilterForm, SavingsForm, UsageRangeForm
from smsportal.api.ratelimit import Limit, rate_limits_hit
from smsportal.errors import DomainError

PAGE_SIZE = 50
RECENT_ENTRIES = 10
# The public calculator's POSTs per client address: a person tries a few volumes, a script is refused.
PUBLIC_RATE, PUBLIC_PERIOD = 20, 60.0


def _ledger_rows(request: HttpRequest, entries) -> list[tuple]:
    """Each entry with the public id of the message it settles (one query for all of them)."""
    entries = list(entries)
    ids = hooks.message_public_ids(tenant=request.tenant, keys={entry.message_id for entry in entries})
    return [(entry, ids.get(entry.message_id)) for entry in entries]


@portal_view("billing.view", methods=("GET", "HEAD"))
def overview(request: HttpRequest) -> HttpResponse:
    tenant = request.tenant
    figures = selectors.balance_figures(tenant=tenant)
    spend = selectors.ledger_spend_by_day(tenant=tenant)
    recent = selectors.ledger_list(tenant=tenant).order_by("-created_at", "-pk")[:RECENT_ENTRIES]
    return render(request, "portal/billing/overview.html", {
        "billing_tab": "overview", "figures": figures,
        "spend_points": [(row["day"].isoformat(), row["amount"]) for row in spend],
        "spend_total": sum((row["amount"] for row in spend), Decimal(0)),
        "entries": _ledger_rows(request, recent),
    })


@portal_view("billing.view", methods=("GET", "HEAD"))
def ledger(request: HttpRequest) -> HttpResponse:
    entries = selectors.ledger_list(tenant=request.tenant).order_by("-created_at", "-pk")
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/billing/ledger.html", {
        "billing_tab": "ledger", "page": page, "entries": _ledger_rows(request, page.object_list),
        "noun": "entries", "currency": selectors.balance_figures(tenant=request.tenant)["currency"],
    })


@portal_view("billing.manage")
def settings_page(request: HttpRequest) -> HttpResponse:
    """Billing settings of the tenant's owners and billing members: the low-balance threshold (set or cleared)."""
    tenant = request.tenant
    balance = selectors.balance_get(tenant=tenant)
    current = balance.low_balance_threshold if balance else None
    form = LowBalanceForm(request.POST if request.method == "POST" else None,
                          initial={"low_balance_threshold": current})
    if request.method == "POST" and form.is_valid():
        threshold = form.cleaned_data["low_balance_threshold"]
        try:
            services.balance_low_threshold_set(tenant=tenant, threshold=threshold, actor=actor_for(request))
        except DomainError as exc:
            form.add_error("low_balance_threshold", exc.message)
        else:
            figures = selectors.balance_figures(tenant=tenant)
            messages.success(request, f"You will be alerted when available falls below {threshold} "
                                      f"{figures['currency']}." if threshold is not None
                             else "Low-balance alerts are off.")
            return redirect("portal:billing-settings")
    return render(request, "portal/billing/settings.html", {
        "billing_tab": "settings", "form": form, "current": current,
        "figures": selectors.balance_figures(tenant=tenant),
    })


@portal_view("billing.view", methods=("GET", "HEAD"))
def usage(request: HttpRequest) -> HttpResponse:
    form = UsageRangeForm(request.GET or None)
    start, end = form.days()
    rows = selectors.usage_by_country(tenant=request.tenant, start=start, end=end)
    total = {name: sum((row[name] for row in rows), 0) for name in ("messages", "segments")}
    total["amount"] = sum((row["amount"] for row in rows), Decimal(0))
    return render(request, "portal/billing/usage.html", {
        "billing_tab": "usage", "form": form, "start": start, "end": end, "rows": rows, "total": total,
        "chart_rows": [(row["country"] or "?", [row["amount"]]) for row in rows],
        "currency": selectors.balance_figures(tenant=request.tenant)["currency"],
    })


@portal_view("billing.view", methods=("GET", "HEAD"))
def prices(request: HttpRequest) -> HttpResponse:
    form = PriceFilterForm(request.GET or None)
    country = form.cleaned_data["country"] if form.is_valid() else ""
    return render(request, "portal/billing/prices.html", {
        "billing_tab": "prices", "form": form, "country": country,
        "prices": selectors.prices_effective(tenant=request.tenant, country=country or None),
        "number_prices": selectors.number_prices_listed(tenant=request.tenant, country=country or None),
        "query": urlencode({"country": country}) if country else "",
    })


@portal_view("billing.view")
def savings_calculator(request: HttpRequest) -> HttpResponse:
    """The tenant's own prices against the direct operators': its last 30 days by default, or the volumes typed."""
    tenant = request.tenant
    if request.method == "POST":
        form = SavingsForm(request.POST)
        estimate = (savings.savings_estimate(volumes=form.cleaned_data["volumes"], tenant=tenant,
                                             message_type=form.cleaned_data["message_type"])
                    if form.is_valid() else None)
    else:
        estimate = savings.savings_estimate_usage(tenant=tenant)
        volumes: dict[str, int] = {}
        for line in estimate.lines:
            volumes[line.country] = volumes.get(line.country, 0) + line.volume
        form = SavingsForm(initial={"volumes": SavingsForm.volumes_text(volumes)} if volumes else None)
    return render(request, "portal/billing/savings.html", {
        "billing_tab": "savings", "form": form, "estimate": estimate, **_chart(estimate),
    })


@csrf_protect
def savings_public(request: HttpRequest) -> HttpResponse:
    """The calculator before sign-up: the default price list, no login. POSTs are rate-limited per address."""
    form, estimate, status = SavingsForm(request.POST or None), None, 200
    if request.method == "POST":
        decision = rate_limits_hit([Limit(name="savings_public", tenant_id=0, rate=PUBLIC_RATE, period=PUBLIC_PERIOD,
                                          subject=ip_for(request) or "unknown")])
        if not decision.allowed:
            form.add_error(None, "Too many estimates from your address: wait a minute and try again.")
            status = 429
        elif form.is_valid():
            estimate = savings.savings_estimate(volumes=form.cleaned_data["volumes"],
                                                message_type=form.cleaned_data["message_type"], tenant=None)
    elif request.method != "GET" and request.method != "HEAD":
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD, POST"})
    return render(request, "billing/savings_public.html", {"form": form, "estimate": estimate,
                                                           **_chart(estimate)}, status=status)


def _chart(estimate: savings.SavingsEstimate | None) -> dict:
    if estimate is None:
        return {}
    rows = [(f"{line.country}" + (f" {line.message_type}" if estimate.message_type is None else ""),
             [line.our_cost, line.direct_cost]) for line in estimate.comparable]
    return {"chart_rows": rows, "chart_series": ["Our price", "Direct operator"]}
