"""GET /v1/balance, /v1/balance/transactions, /v1/pricing and /v1/usage: the money side of the API."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from numbers.tests.factories import shared_senders

import pytest
from django.utils import timezone

from accounts.models import Tenant
from accounts.services.audit import SYSTEM
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key
from billing import services
from billing.models import Balance, LedgerEntry, NumberPrice, Price
from messaging import lifecycle
from messaging.models import Message, Status

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def live(billed):
    """A's live key, US at 0.0100 and GB at 0.0400 a segment (default list), 1 EUR on A's balance."""
    Tenant.objects.filter(pk=billed.a.tenant.pk).update(messages_per_second=10_000)
    billed.a.tenant.refresh_from_db()
    Price.unscoped.create(country="US", price=Decimal("0.0100"), currency="EUR", effective_from="2025-01-01")
    Price.unscoped.create(country="GB", price=Decimal("0.0400"), currency="EUR", effective_from="2025-01-01")
    _key, secret = make_api_key(billed.a.tenant, mode="live", name="live")
    billed.a.extra["live"] = bearer(secret)
    services.balance_credit(tenant=billed.a.tenant, amount=Decimal("1"), reason="test top-up", actor=SYSTEM)
    return billed


def _send(api, auth, to="+14155550100", text="hi", message_type="transactional"):
    response = api.post("/v1/messages", {"to": to, "from": "Acme", "text": text, "message_type": message_type},
                        format="json", **auth)
    assert response.status_code == 202, response.content
    return Message.unscoped.get(public_id=response.json()["id"])


# --- /v1/balance ----------------------------------------------------------------------------------


def test_the_balance_shows_available_reserved_and_credit_as_string_decimals(live, api):
    Balance.unscoped.filter(tenant=live.a.tenant).update(credit_limit=Decimal("5"))
    _send(api, live.a.extra["live"])
    body = api.get("/v1/balance", **live.a.auth).json()
    assert body == {"available": "5.9900", "balance": "1.0000", "reserved": "0.0100", "credit_limit": "5.0000",
                    "currency": "EUR"}


def test_a_tenant_never_topped_up_sees_zeros_and_nothing_is_written(billed, api):
    body = api.get("/v1/balance", **billed.b.auth).json()
    assert body == {"available": "0.0000", "balance": "0.0000", "reserved": "0.0000", "credit_limit": "0.0000",
                    "currency": "EUR"}
    assert not Balance.unscoped.filter(tenant=billed.b.tenant).exists()


def test_the_money_endpoints_need_the_billing_read_scope(live, api):
    _key, secret = make_api_key(live.a.tenant, scopes=["messages:read"], name="reader")
    for path in ("/v1/balance", "/v1/balance/transactions", "/v1/pricing", "/v1/usage"):
        assert_error(api.get(path, **bearer(secret)), 403, "insufficient_scope")
        assert_error(api.get(path), 401, "authentication_required")
    _key, secret = make_api_key(live.a.tenant, scopes=["billing:read"], name="billing")
    assert api.get("/v1/balance", **bearer(secret)).status_code == 200


# --- /v1/balance/transactions ---------------------------------------------------------------------


def test_the_ledger_lists_newest_first_with_the_settled_message(live, api):
    message = _send(api, live.a.extra["live"])
    lifecycle.messages_transition(message_ids=[message.pk], to=Status.SENDING, source="test")
    lifecycle.messages_transition(message_ids=[message.pk], to=Status.SENT, source="test")
    body = api.get("/v1/balance/transactions", **live.a.auth).json()
    rows = body["results"]
    assert [r["kind"] for r in rows] == ["capture", "hold", "topup"]
    capture, hold, topup = rows
    assert (capture["amount"], capture["reserved_delta"], capture["message_id"]) == ("-0.0100", "-0.0100",
                                                                                      message.public_id)
    assert (hold["amount"], hold["reserved_delta"], hold["messages"], hold["message_id"]) == ("0.0000", "0.0100", 1,
                                                                                              None)
    assert (topup["amount"], topup["reason"], topup["currency"]) == ("1.0000", "test top-up", "EUR")
    assert all(r["id"].startswith("txn_") for r in rows) and len({r["id"] for r in rows}) == 3
    assert topup["id"] != f"txn_{LedgerEntry.unscoped.get(kind='topup').pk}"


def test_the_ledger_pages_by_cursor_and_shows_no_other_tenants_entries(live, api, django_assert_max_num_queries):
    for i in range(3):
        _send(api, live.a.extra["live"], to=f"+1415555010{i}")
    first = api.get("/v1/balance/transactions?limit=2", **live.a.auth).json()
    assert len(first["results"]) == 2 and first["next"]
    second = api.get(first["next"], **live.a.auth).json()
    assert len(second["results"]) == 2 and not second["next"]
    assert api.get("/v1/balance/transactions", **live.b.auth).json()["results"] == []
    assert_error(api.get("/v1/balance/transactions?cursor=nonsense", **live.a.auth), 400, "invalid_cursor",
                 field="cursor")
    with django_assert_max_num_queries(8):  # auth, tenant, page, message ids: not one per entry
        assert api.get("/v1/balance/transactions?limit=200", **live.a.auth).status_code == 200


# --- /v1/pricing ----------------------------------------------------------------------------------


def test_pricing_shows_the_tenants_own_prices_over_the_default(live, api):
    Price.unscoped.create(tenant=live.a.tenant, country="GB", price=Decimal("0.0300"), currency="EUR",
                          effective_from="2025-01-01")
    Price.unscoped.create(tenant=live.b.tenant, country="US", price=Decimal("0.0010"), currency="EUR",
                          effective_from="2025-01-01")
    Price.unscoped.create(country="US", price=Decimal("0.0200"), currency="EUR",
                          effective_from=timezone.now().date() + timedelta(days=5))  # not in force yet
    body = api.get("/v1/pricing", **live.a.auth).json()
    assert body["currency"] == "EUR"
    rows = body["messages"]
    assert [(r["country"], r["price"], r["own"]) for r in rows] == [("GB", "0.0300", True), ("US", "0.0100", False)]
    gb = api.get("/v1/pricing?country=gb", **live.a.auth).json()["messages"]
    assert [(r["country"], r["price"]) for r in gb] == [("GB", "0.0300")]
    assert [r["price"] for r in api.get("/v1/pricing?country=US", **live.b.auth).json()["messages"]] == ["0.0010"]


def test_pricing_shows_number_prices_own_over_default_filtered_by_country(live, api):
    day = date(2025, 1, 1)
    NumberPrice.unscoped.create(number_type="mobile", country="GB", monthly_rental=Decimal("2.50"),
                                lease_per_hour=Decimal("0.10"), currency="EUR", effective_from=day)
    NumberPrice.unscoped.create(number_type="local", country="US", monthly_rental=Decimal("1.10"),
                                lease_per_hour=Decimal("0.05"), currency="EUR", effective_from=day)
    NumberPrice.unscoped.create(tenant=live.a.tenant, number_type="mobile", country="GB",
                                monthly_rental=Decimal("1.99"), lease_per_hour=Decimal("0.08"), currency="EUR",
                                effective_from=day)
    NumberPrice.unscoped.create(number_type="toll_free", country="US", monthly_rental=Decimal("3.00"),
                                lease_per_hour=Decimal("0.20"), currency="USD", effective_from=day)  # not EUR
    NumberPrice.unscoped.create(number_type="local", country="US", monthly_rental=Decimal("9.00"),
                                lease_per_hour=Decimal("0.90"), currency="EUR",
                                effective_from=timezone.now().date() + timedelta(days=3))  # not in force yet
    numbers = api.get("/v1/pricing", **live.a.auth).json()["numbers"]
    assert [(n["country"], n["number_type"], n["monthly_rental"], n["lease_per_hour"], n["currency"], n["own"])
            for n in numbers] == [("GB", "mobile", "1.9900", "0.0800", "EUR", True),
                                  ("US", "local", "1.1000", "0.0500", "EUR", False)]
    gb = api.get("/v1/pricing?country=GB", **live.b.auth).json()["numbers"]
    assert [(n["number_type"], n["monthly_rental"], n["own"]) for n in gb] == [("mobile", "2.5000", False)]
    assert api.get("/v1/pricing?country=FR", **live.a.auth).json()["numbers"] == []


@pytest.mark.parametrize("country", ["XX", "G", "GBR", "1$", "ÄÖ"])
def test_pricing_refuses_an_unknown_country(live, api, country):
    response = api.get("/v1/pricing", {"country": country}, **live.a.auth)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "country"


def test_pricing_names_the_unknown_country_code(live, api):
    assert_error(api.get("/v1/pricing?country=XX", **live.a.auth), 400, "invalid_country", field="country")


# --- /v1/usage ------------------------------------------------------------------------------------


def test_usage_counts_billed_messages_by_day_country_and_type_less_released_ones(live, api):
    _send(api, live.a.extra["live"], to="+14155550100")
    _send(api, live.a.extra["live"], to="+14155550101", message_type="otp")
    _send(api, live.a.extra["live"], to="+447400123456", text="x" * 200)  # 2 segments, 0.08
    _send(api, live.a.extra["live"], to="+447911123456")  # Guernsey's number, priced as GB
    released = _send(api, live.a.extra["live"], to="+14155550102")
    lifecycle.message_transition(message_id=released.pk, to=Status.CANCELED, source="test")
    api.post("/v1/messages", {"to": "+14155550103", "from": "Acme", "text": "t"}, format="json", **live.a.auth)
    today = timezone.now().date().isoformat()

    by_country = api.get("/v1/usage?group_by=country", **live.a.auth).json()
    assert [(d["group"], d["messages"], d["segments"], d["amount"]) for d in by_country["data"]] == [
        ("GB", 1, 2, "0.0800"), ("GG", 1, 1, "0.0400"), ("US", 2, 2, "0.0200")]
    assert by_country["total"] == {"group": "total", "messages": 4, "segments": 5, "amount": "0.1400"}
    assert (by_country["currency"], by_country["to"], by_country["group_by"]) == ("EUR", today, "country")
    by_day = api.get(f"/v1/usage?from={today}&to={today}", **live.a.auth).json()
    assert [(d["group"], d["messages"]) for d in by_day["data"]] == [(today, 4)]
    by_type = api.get("/v1/usage?group_by=message_type", **live.a.auth).json()
    assert [(d["group"], d["messages"]) for d in by_type["data"]] == [("otp", 1), ("transactional", 3)]
    assert api.get("/v1/usage", **live.b.auth).json()["data"] == []
    yesterday = (timezone.now().date() - timedelta(days=1)).isoformat()
    assert api.get(f"/v1/usage?to={yesterday}", **live.a.auth).json()["data"] == []


@pytest.mark.parametrize(("query", "code", "field"), [
    ("from=2026-02-01&to=2026-01-01", "invalid_range", "from"),
    ("from=2024-01-01&to=2026-01-01", "range_too_long", "from"),
    ("from=yesterday", "invalid", "from"),
    ("to=2026-13-01", "invalid", "to"),
    ("group_by=week", "invalid_choice", "group_by"),
])
def test_usage_refuses_bad_parameters_by_code(live, api, query, code, field):
    assert_error(api.get(f"/v1/usage?{query}", **live.a.auth), 400, code, field=field)
