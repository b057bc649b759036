"""Portal pages for numbers: what the tenant holds, search and rent, leases with their live inbound codes."""
from __future__ import annotations

from datetime import datetime
from numbers import hooks, selectors, services
from numbers.errors import NumberNotAvailable, NumberNotFound
from numbers.models import InboundMessage, NumberAssignment, NumberLease, NumberType
from numbers.portal.forms import EXTEND_PRESETS, ExtendForm, LeaseForm, NumberSearchForm, RentForm

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import dateformat, timezone
from django.utils.dateparse import parse_datetime

from accounts.portal.decorators import actor_for, add_domain_error, portal_view, safe_next
from smsportal.errors import DomainError

SEARCH_LIMIT = 50
PAGE_SIZE = 50
# The live list asks for at most this many new messages at a time; the next poll gets the rest.
POLL_LIMIT = 100


def _lease(request: HttpRequest, lease_id: str) -> NumberLease:
    # Another tenant's lease is the same 404 as a missing one.
    try:
        return selectors.lease_get(tenant=request.tenant, public_id=lease_id)
    except NumberNotFound:
        raise Http404("not found") from None


def _holding(request: HttpRequest, number_id: str) -> NumberAssignment | NumberLease:
    try:
        return selectors.holding_get(tenant=request.tenant, number_public_id=number_id)
    except NumberNotFound:
        raise Http404("not found") from None


def _priced(request: HttpRequest, numbers: list) -> dict:
    """Set each number's `price` (numbers.hooks.NumberPriceShown, or None: not priced) from the tenant's number
    prices, read once; returns them all, by (type, country)."""
    prices = hooks.number_prices(tenant=request.tenant)
    for number in numbers:
        number.price = prices.get((number.type, number.country))
    return prices


def _when(moment: datetime) -> str:
    return dateformat.format(moment, "M j, H:i:s")


# --- What the tenant holds ---------------------------------------------------------------------


@portal_view("numbers.view", methods=("GET", "HEAD"))
def number_list(request: HttpRequest) -> HttpResponse:
    held = list(selectors.numbers_held(tenant=request.tenant).order_by("holding_kind", "number"))
    _priced(request, held)
    inbound = selectors.inbound_messages(tenant=request.tenant)[:10]
    return render(request, "portal/numbers/list.html", {
        "numbers": held, "inbound": inbound, "presets": EXTEND_PRESETS, "now": timezone.now(),
    })


@portal_view("numbers.view", post="numbers.manage")
def number_search(request: HttpRequest) -> HttpResponse:
    """The available inventory (GET filters) and, by POST, rent one of it or lease any matching number."""
    search = NumberSearchForm(request.GET)
    rent_form, lease_form = RentForm(), LeaseForm(initial=_lease_initial(search))
    if request.method == "POST" and request.POST.get("action") == "lease":
        lease_form = LeaseForm(request.POST)
        if lease_form.is_valid():
            try:
                lease = services.number_lease_acquire(tenant=request.tenant, actor=actor_for(request),
                                                      **lease_form.cleaned_data)
            except DomainError as exc:
                add_domain_error(lease_form, exc)
            else:
                messages.success(request, f"You lease {lease.number.number} until {_when(lease.expires_at)} UTC.")
                return redirect("portal:lease-detail", lease_id=lease.public_id)
    elif request.method == "POST":
        rent_form = RentForm(request.POST)
        if rent_form.is_valid():
            try:
                assignment = _rent(request, rent_form.cleaned_data["number"])
            except DomainError as exc:
                add_domain_error(rent_form, exc)
            else:
                messages.success(request, f"You rent {assignment.number.number} until you release it.")
                return redirect("portal:numbers")
    available = list(services.numbers_available(**search.filters()).order_by("number")[:SEARCH_LIMIT + 1])
    prices = _priced(request, available)
    return render(request, "portal/numbers/search.html", {
        "search": search, "available": available[:SEARCH_LIMIT], "more": len(available) > SEARCH_LIMIT,
        "rent_form": rent_form, "lease_form": lease_form, "lease_prices": _lease_prices(prices),
    })


def _lease_prices(prices: dict) -> list[dict]:
    """The lease form's price list: each country and type a lease can be priced for, by country."""
    return [{"country": country, "type": dict(NumberType.choices).get(type_, type_), "price": price}
            for (type_, country), price in sorted(prices.items(), key=lambda item: (item[0][1], item[0][0]))]


def _rent(request: HttpRequest, number_id: str) -> NumberAssignment:
    number = services.numbers_available().filter(public_id=number_id).first()
    if number is None:
        raise NumberNotAvailable("This number was taken meanwhile; choose another.")
    return services.number_assign(tenant=request.tenant, number=number, actor=actor_for(request))


def _lease_initial(search: NumberSearchForm) -> dict:
    filters = search.filters()
    return {key: filters[key] for key in ("country", "type") if filters[key]}


@portal_view("numbers.manage")
def number_release(request: HttpRequest, number_id: str) -> HttpResponse:
    """Ends the tenant's holding of a number, lease or rental (GET asks to confirm)."""
    holding = _holding(request, number_id)
    if request.method == "POST":
        if isinstance(holding, NumberAssignment):
            services.number_release_assignment(tenant=request.tenant, assignment=holding, actor=actor_for(request))
        else:
            services.number_lease_release(tenant=request.tenant, lease=holding, actor=actor_for(request))
        return _released(request, holding.number.number)
    return render(request, "portal/numbers/release.html", {"holding": holding, "number": holding.number})


def _released(request: HttpRequest, number: str) -> HttpResponse:
    messages.success(request, f"{number} was released: it no longer receives messages for you.")
    return redirect("portal:numbers")


# --- Leases ------------------------------------------------------------------------------------


@portal_view("numbers.view", methods=("GET", "HEAD"))
def lease_detail(request: HttpRequest, lease_id: str) -> HttpResponse:
    return _lease_page(request, _lease(request, lease_id), ExtendForm())


def _lease_page(request: HttpRequest, lease: NumberLease, form: ExtendForm, status: int = 200) -> HttpResponse:
    _priced(request, [lease.number])
    inbound = list(selectors.inbound_messages(tenant=request.tenant, lease=lease.public_id).order_by("-created_at",
                                                                                                      "-id"))
    return render(request, "portal/numbers/lease.html", {
        "lease": lease, "status": lease.status, "inbound": inbound, "form": form, "presets": EXTEND_PRESETS,
        "after": _cursor(inbound), "now": timezone.now(),
    }, status=status)


@portal_view("numbers.manage", methods=("POST",))
def lease_extend(request: HttpRequest, lease_id: str) -> HttpResponse:
    lease = _lease(request, lease_id)
    form = ExtendForm(request.POST)
    if form.is_valid():
        try:
            services.number_lease_extend(tenant=request.tenant, lease=lease, ttl_seconds=form.cleaned_data["seconds"],
                                         actor=actor_for(request))
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(request, f"{lease.number.number} is yours until {_when(lease.expires_at)} UTC.")
            return redirect(safe_next(request, reverse("portal:lease-detail", kwargs={"lease_id": lease.public_id})))
    lease.refresh_from_db()
    return _lease_page(request, lease, form, status=400)


@portal_view("numbers.manage")
def lease_release(request: HttpRequest, lease_id: str) -> HttpResponse:
    lease = _lease(request, lease_id)
    if request.method == "POST":
        services.number_lease_release(tenant=request.tenant, lease=lease, actor=actor_for(request))
        return _released(request, lease.number.number)
    return render(request, "portal/numbers/release.html", {"holding": lease, "number": lease.number,
                                                           "ended": lease.status != "active"})


@portal_view("numbers.view", methods=("GET", "HEAD"))
def lease_messages_json(request: HttpRequest, lease_id: str) -> JsonResponse:
    """JSON for numbers.js: the lease's state and its messages created at or after `after` (an ISO time).

    `after` is the `after` of the previous answer: the creation time of the newest message seen.
    Creation time, not the carrier's `received_at`, so a message the carrier delivers late is not
    skipped; the bound is inclusive (two messages in one microsecond) and the page drops repeats by id.
    """
    lease = _lease(request, lease_id)
    inbound = selectors.inbound_messages(tenant=request.tenant, lease=lease.public_id)
    after = parse_datetime(request.GET.get("after", "").replace(" ", "+"))
    if after is not None and timezone.is_aware(after):
        inbound = inbound.filter(created_at__gte=after)
    found = list(inbound.order_by("created_at", "id")[:POLL_LIMIT])
    status = lease.status
    return JsonResponse({
        "lease": {"id": lease.public_id, "status": status, "active": status == "active",
                  "expires_at": lease.expires_at.isoformat()},
        "messages": [_message_json(message) for message in found],
        "after": _cursor(found) or (after.isoformat() if after else ""),
    })


def _message_json(message: InboundMessage) -> dict:
    return {
        "id": message.public_id, "code": message.code or None, "service": message.service or None,
        "from": message.sender, "text": message.text, "received_at": message.received_at.isoformat(),
        "html": render_to_string("portal/numbers/_inbound_message.html", {"message": message}),
    }


def _cursor(inbound: list[InboundMessage]) -> str:
    return max(m.created_at for m in inbound).isoformat() if inbound else ""


# --- Inbound messages --------------------------------------------------------------------------


@portal_view("numbers.view", methods=("GET", "HEAD"))
def inbound_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.inbound_messages(tenant=request.tenant), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "portal/numbers/inbound.html", {"page": page, "noun": "messages"})
