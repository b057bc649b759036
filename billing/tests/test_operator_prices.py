"""Operator (MCC/MNC) prices: a price row naming an operator applies to a message of that operator. The operator
is known only when routing looks it up (ROUTING_OPERATOR_LOOKUP), so the accept holds the price for any operator
and the capture reprices: the difference released or charged in the capture's one statement, the ledger still
equal to the balance; set-based (one lookup and one statement for a batch)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Tenant
from accounts.services.audit import SYSTEM
from accounts.tests.factories import bearer, make_api_key
from billing import rating, services
from billing.models import Balance, LedgerEntry, Price
from billing.selectors import balances_unbalanced
from messaging import lifecycle
from messaging.models import Message, Status

pytestmark = pytest.mark.django_db

VODAFONE_UK, EE = "+447400123456", "+447400123457"  # 234-15 by the lookup below; EE's operator is unknown
OPERATORS = {VODAFONE_UK: "234/15", "+447400123458": "23415", "+447400123459": "234-15"}


def lookup(number: str) -> str:
    """The deployment's operator lookup (ROUTING_OPERATOR_LOOKUP) in these tests."""
    return OPERATORS.get(number, "")


@pytest.fixture
def gb(billed, settings):
    """A's live key; GB at 0.0400 a segment for any operator, 0.0300 for Vodafone UK (234-15); 1 EUR."""
    settings.ROUTING_OPERATOR_LOOKUP = "billing.tests.test_operator_prices.lookup"
    Tenant.objects.filter(pk=billed.a.tenant.pk).update(messages_per_second=10_000)
    billed.a.tenant.refresh_from_db()
    Price.unscoped.create(country="GB", price=Decimal("0.0400"), currency="EUR", effective_from="2025-01-01")
    Price.unscoped.create(country="GB", operator="23415", price=Decimal("0.0300"), currency="EUR",
                          effective_from="2025-01-01")
    _key, secret = make_api_key(billed.a.tenant, mode="live", name="live")
    billed.a.extra["live"] = bearer(secret)
    services.balance_credit(tenant=billed.a.tenant, amount=Decimal("1"), reason="test top-up", actor=SYSTEM)
    rating.price_cache_clear()
    return billed


def _send(api, auth, to=VODAFONE_UK, text="hi") -> Message:
    response = api.post("/v1/messages", {"to": to, "from": "Acme", "text": text}, format="json", **auth)
    assert response.status_code == 202, response.content
    return Message.unscoped.get(public_id=response.json()["id"])


def _capture(*messages: Message) -> None:
    ids = [m.pk for m in messages]
    lifecycle.messages_transition(message_ids=ids, to=Status.SENDING, source="test")
    lifecycle.messages_transition(message_ids=ids, to=Status.SENT, source="test")


def _capture_entry(message: Message) -> LedgerEntry:
    return LedgerEntry.unscoped.get(kind="capture", message_id=message.pk)


def _balance(tenant) -> Balance:
    return Balance.unscoped.get(tenant=tenant)


# --- rating ---------------------------------------------------------------------------------------------------


def test_the_operator_row_prices_that_operators_numbers_only_and_accept_ignores_it(gb):
    tenant = gb.a.tenant.pk
    rate = rating.operator_rate(tenant_id=tenant, to=VODAFONE_UK, message_type="transactional", operator="234-15",
                                currency="EUR")
    assert rate.unit == Decimal("0.0300")
    for operator in ("234-10", ""):
        assert rating.operator_rate(tenant_id=tenant, to=VODAFONE_UK, message_type="transactional",
                                    operator=operator, currency="EUR") is None
    # the accept knows no operator: the price for any operator
    assert rating.message_rate(tenant_id=tenant, to=VODAFONE_UK, message_type="transactional").unit == Decimal("0.04")


def test_the_tenants_own_price_beats_the_default_lists_operator_price(gb):
    Price.unscoped.create(tenant=gb.a.tenant, country="GB", price=Decimal("0.0350"), currency="EUR",
                          effective_from="2025-01-01")
    rating.price_cache_clear()
    args = {"to": VODAFONE_UK, "message_type": "transactional", "operator": "234-15", "currency": "EUR"}
    assert rating.operator_rate(tenant_id=gb.a.tenant.pk, **args) is None  # its own list prices GB
    assert rating.operator_rate(tenant_id=gb.b.tenant.pk, **args).unit == Decimal("0.0300")
    Price.unscoped.create(tenant=gb.a.tenant, country="GB", operator="234-15", price=Decimal("0.0250"),
                          currency="EUR", effective_from="2025-01-01")
    rating.price_cache_clear()
    assert rating.operator_rate(tenant_id=gb.a.tenant.pk, **args).unit == Decimal("0.0250")


# --- the capture reprices -------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_capture_of_an_operators_message_charges_its_price_and_releases_the_difference(gb, api):
    message = _send(api, gb.a.extra["live"], text="x" * 200)  # 2 segments
    assert message.price == Decimal("0.08")  # held at the price for any operator
    _capture(message)
    entry = _capture_entry(message)
    assert (entry.balance_delta, entry.reserved_delta) == (Decimal("-0.06"), Decimal("-0.08"))
    balance = _balance(gb.a.tenant)
    assert (balance.balance, balance.reserved) == (Decimal("0.94"), Decimal("0"))
    assert balances_unbalanced() == []
    # captured once: a repeat changes nothing
    _capture(message)
    lifecycle.messages_transition(message_ids=[message.pk], to=Status.DELIVERED, source="test")
    assert LedgerEntry.unscoped.filter(message_id=message.pk).count() == 1
    assert _balance(gb.a.tenant).balance == Decimal("0.94")


@pytest.mark.postgres
def test_a_message_whose_operator_is_not_known_keeps_its_price(gb, api):
    message = _send(api, gb.a.extra["live"], to=EE)
    _capture(message)
    assert _capture_entry(message).balance_delta == Decimal("-0.04")
    assert balances_unbalanced() == []


@pytest.mark.postgres
def test_a_dearer_operator_price_is_charged_when_covered_and_never_past_the_credit_limit(gb, api):
    Price.unscoped.filter(operator="23415").update(price=Decimal("0.0500"))
    rating.price_cache_clear()
    message = _send(api, gb.a.extra["live"])
    _capture(message)
    assert _capture_entry(message).balance_delta == Decimal("-0.05")  # 0.01 more than held, covered
    # when the balance covers only the hold: captured at the held price, the balance at 0, not below
    services.balance_credit(tenant=gb.a.tenant, amount=Decimal("-0.91"), reason="down to one send", actor=SYSTEM)
    last = _send(api, gb.a.extra["live"])
    assert _balance(gb.a.tenant).balance - _balance(gb.a.tenant).reserved == Decimal("0")
    _capture(last)
    assert _capture_entry(last).balance_delta == Decimal("-0.04")
    balance = _balance(gb.a.tenant)
    assert (balance.balance, balance.reserved) == (Decimal("0"), Decimal("0"))
    assert balances_unbalanced() == []


@pytest.mark.postgres
def test_a_batch_is_repriced_in_one_statement_with_one_operator_lookup(gb, api, settings, monkeypatch):
    from messaging.routing import operators as routing_operators

    calls = []
    real = routing_operators.operators_of

    def counted(numbers):
        calls.append(sorted(numbers))
        return real(numbers)

    monkeypatch.setattr("billing.hooks._operators_of", [counted])
    auth = gb.a.extra["live"]
    one = [_send(api, auth)]
    many = [_send(api, auth, to=number) for number in (*OPERATORS, EE)]

    def settle_statements(messages) -> int:
        lifecycle.messages_transition(message_ids=[m.pk for m in messages], to=Status.SENDING, source="test")
        with CaptureQueriesContext(connection) as queries:
            lifecycle.messages_transition(message_ids=[m.pk for m in messages], to=Status.SENT, source="test")
        return len(queries)

    assert settle_statements(one) == settle_statements(many)  # no query per message
    assert calls == [[VODAFONE_UK], sorted([*OPERATORS, EE])]  # one lookup per batch
    charged = {m.to: _capture_entry(m).balance_delta for m in many}
    assert charged == {**dict.fromkeys(OPERATORS, Decimal("-0.03")), EE: Decimal("-0.04")}
    assert _balance(gb.a.tenant).balance == Decimal("1") - Decimal("0.03") * 4 - Decimal("0.04")
    assert balances_unbalanced() == []


@pytest.mark.postgres
def test_without_operator_prices_a_capture_looks_no_operator_up(gb, api, monkeypatch):
    Price.unscoped.filter(operator="23415").delete()
    rating.price_cache_clear()
    monkeypatch.setattr("billing.hooks._operators_of", [lambda numbers: pytest.fail("looked up")])
    message = _send(api, gb.a.extra["live"])
    _capture(message)
    assert _capture_entry(message).balance_delta == Decimal("-0.04")


def test_on_sqlite_or_postgresql_the_ledger_equals_the_balance_after_repricing(gb, api):
    messages = [_send(api, gb.a.extra["live"], to=number) for number in (VODAFONE_UK, EE)]
    _capture(*messages)
    assert [_capture_entry(m).balance_delta for m in messages] == [Decimal("-0.03"), Decimal("-0.04")]
    assert balances_unbalanced() == []


@pytest.mark.postgres
def test_the_invoice_bills_what_the_repriced_capture_charged(gb, api):
    from datetime import UTC, date, datetime

    import time_machine
    from django.conf import settings

    from billing import invoices
    from billing.models import InvoiceLine
    from smsportal.api.ratelimit import local_buckets_clear
    from smsportal.tests.ratelimit_helpers import rate_buckets_empty

    local_buckets_clear()  # October comes after the world's sends at the real time: their buckets lie ahead of it
    rate_buckets_empty(settings.REDIS_URL)
    with time_machine.travel(datetime(2026, 10, 14, 9, 30, tzinfo=UTC), tick=False):
        messages = [_send(api, gb.a.extra["live"], to=number) for number in (VODAFONE_UK, EE)]
        _capture(*messages)
    with time_machine.travel(datetime(2026, 11, 1, 2, tzinfo=UTC), tick=False):
        invoice = invoices.invoice_generate(tenant=gb.a.tenant, period=date(2026, 10, 1)).invoice
    line = InvoiceLine.unscoped.get(invoice=invoice, kind="messages")
    assert (line.quantity, line.amount, line.unit_price) == (2, Decimal("0.07"), Decimal("0.035"))
