"""The prepaid balance: holds at accept, capture and release in the lifecycle, the append-only ledger, top-ups."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from io import StringIO
from numbers.tests.factories import shared_senders

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from rest_framework.test import APIClient

from accounts.models import Tenant
from accounts.services.audit import SYSTEM
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key
from billing import rating, services
from billing.models import Balance, LedgerEntry, MonthlyVolume, Price
from billing.selectors import balances_unbalanced
from messaging import lifecycle
from messaging.models import Message, Status

pytestmark = pytest.mark.django_db

SEND = "/v1/messages"


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def live(billed):
    """A's live key, a US price of 0.0100 a segment, A's rate out of the way."""
    Tenant.objects.filter(pk=billed.a.tenant.pk).update(messages_per_second=10_000)
    billed.a.tenant.refresh_from_db()
    Price.unscoped.create(country="US", price=Decimal("0.0100"), currency="EUR", effective_from="2025-01-01")
    _key, secret = make_api_key(billed.a.tenant, mode="live", name="live")
    billed.a.extra["live"] = bearer(secret)
    return billed


def _credit(tenant, amount: str) -> None:
    services.balance_credit(tenant=tenant, amount=Decimal(amount), reason="test top-up", actor=SYSTEM)


def _send(api, auth, to="+14155550100", text="hi"):
    return api.post(SEND, {"to": to, "from": "Acme", "text": text}, format="json", **auth)


def _balance(tenant) -> Balance:
    return Balance.unscoped.get(tenant=tenant)


def test_a_live_send_holds_its_price_and_answers_it_billed(live, api):
    _credit(live.a.tenant, "1.00")
    body = _send(api, live.a.extra["live"]).json()
    assert (body["price"], body["currency"], body["billed"]) == ("0.0100", "EUR", True), body
    balance = _balance(live.a.tenant)
    assert (balance.balance, balance.reserved) == (Decimal("1.00"), Decimal("0.01"))
    hold = LedgerEntry.unscoped.get(tenant=live.a.tenant, kind="hold")
    assert (hold.reserved_delta, hold.messages) == (Decimal("0.01"), 1)
    assert balances_unbalanced() == []


def test_a_send_the_balance_does_not_cover_is_402_and_writes_nothing(live, api):
    _credit(live.a.tenant, "0.015")
    assert _send(api, live.a.extra["live"]).status_code == 202
    count, entries = Message.unscoped.count(), LedgerEntry.unscoped.count()
    # when the next one needs 0.01 and 0.005 is left
    response = _send(api, live.a.extra["live"], to="+14155550101")
    assert_error(response, 402, "insufficient_balance", field="to")
    assert (Message.unscoped.count(), LedgerEntry.unscoped.count()) == (count, entries)
    assert _balance(live.a.tenant).reserved == Decimal("0.01")


def test_a_credit_limit_lets_a_postpaid_tenant_go_below_zero_down_to_it(live, api):
    _credit(live.a.tenant, "0.01")
    Balance.unscoped.filter(tenant=live.a.tenant).update(credit_limit=Decimal("0.01"))
    assert [_send(api, live.a.extra["live"], to=f"+1415555010{i}").status_code for i in range(3)] == [202, 202, 402]


def test_a_test_key_is_never_charged(live, api):
    body = _send(api, live.a.auth).json()
    assert (body["price"], body["billed"]) == ("0.0100", False)
    assert not LedgerEntry.unscoped.filter(tenant=live.a.tenant).exists()


def test_a_batch_holds_its_total_once_or_is_refused_whole(live, api):
    _credit(live.a.tenant, "0.03")
    batch = {"defaults": {"from": "Acme", "text": "hi"}, "messages": [{"to": f"+1415555020{i}"} for i in range(4)]}
    count = Message.unscoped.count()
    assert_error(api.post(f"{SEND}/batch", batch, format="json", **live.a.extra["live"]), 402, "insufficient_balance",
                 field="messages")
    assert Message.unscoped.count() == count
    batch["messages"] = batch["messages"][:3]
    assert api.post(f"{SEND}/batch", batch, format="json", **live.a.extra["live"]).status_code == 202
    hold = LedgerEntry.unscoped.get(tenant=live.a.tenant, kind="hold")
    assert (hold.reserved_delta, hold.messages) == (Decimal("0.03"), 3)


def test_sent_captures_and_a_failure_before_leaving_releases_each_once(live, api):
    _credit(live.a.tenant, "1.00")
    sent, failed, canceled = (Message.unscoped.get(public_id=_send(api, live.a.extra["live"], to=f"+1415555030{i}")
                                                   .json()["id"]) for i in range(3))
    # when one goes to a carrier, one fails before leaving us, one is canceled (the batch transition)
    lifecycle.messages_transition(message_ids=[sent.pk], to=Status.SENDING, source="test")
    lifecycle.messages_transition(message_ids=[sent.pk], to=Status.SENT, source="test")
    lifecycle.messages_transition(message_ids=[failed.pk], to=Status.FAILED, source="test", error_code="x")
    lifecycle.message_transition(message_id=canceled.pk, to=Status.CANCELED, source="test")
    # and a late receipt fails the sent one, and the same moves come again
    lifecycle.messages_transition(message_ids=[sent.pk], to=Status.UNDELIVERED, source="test")
    lifecycle.messages_transition(message_ids=[failed.pk, canceled.pk], to=Status.EXPIRED, source="test")
    kinds = {(e.message_id, e.kind) for e in LedgerEntry.unscoped.filter(message_id__isnull=False)}
    assert kinds == {(sent.pk, "capture"), (failed.pk, "release"), (canceled.pk, "release")}
    balance = _balance(live.a.tenant)
    assert (balance.balance, balance.reserved) == (Decimal("0.99"), Decimal("0"))
    assert balances_unbalanced() == []


def test_balance_credit_tops_up_and_adjusts_with_a_reason_and_refuses_past_the_limit(live):
    call_command("balance_credit", live.a.tenant.slug, "5.50", "--reason", "wire 42", stdout=StringIO())
    call_command("balance_credit", live.a.tenant.slug, "-0.50", "--reason", "goodwill reversal", stdout=StringIO())
    entries = list(LedgerEntry.unscoped.filter(tenant=live.a.tenant).order_by("pk").values_list("kind", "reason"))
    assert entries == [("topup", "wire 42"), ("adjustment", "goodwill reversal")]
    assert _balance(live.a.tenant).balance == Decimal("5.00")
    with pytest.raises(CommandError, match="credit limit"):
        call_command("balance_credit", live.a.tenant.slug, "-6", "--reason", "too much", stdout=StringIO())
    with pytest.raises(CommandError, match="no tenant"):
        call_command("balance_credit", "nobody", "1", "--reason", "x", stdout=StringIO())
    from accounts.models import AuditEvent
    assert AuditEvent.unscoped.filter(tenant=live.a.tenant, action="balance.credit").count() == 2


@pytest.mark.postgres
def test_the_database_refuses_to_change_or_delete_a_ledger_entry(live):
    if connection.vendor != "postgresql":
        pytest.skip("the trigger is PostgreSQL's")
    from django.db import IntegrityError, transaction
    _credit(live.a.tenant, "1")
    entry = LedgerEntry.unscoped.get(tenant=live.a.tenant)
    for change in (lambda: LedgerEntry.unscoped.filter(pk=entry.pk).update(reason="edited"),
                   lambda: LedgerEntry.unscoped.filter(pk=entry.pk).delete()):
        with pytest.raises(IntegrityError, match="append-only"), transaction.atomic():
            change()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_400_concurrent_single_sends_against_a_balance_for_150_accept_exactly_150(live):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is PostgreSQL's")
    _credit(live.a.tenant, "1.50")
    auth, start = live.a.extra["live"], threading.Barrier(40)

    def send(i: int) -> int:
        try:
            if i < 40:
                start.wait()
            return _send(APIClient(), auth, to=f"+1415556{i:04d}").status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(send, range(400)))
    assert (codes.count(202), codes.count(402), len(codes)) == (150, 250, 400)
    balance = _balance(live.a.tenant)
    assert (balance.balance, balance.reserved) == (Decimal("1.50"), Decimal("1.50"))
    assert Message.unscoped.filter(tenant=live.a.tenant, mode="live").count() == 150
    assert LedgerEntry.unscoped.filter(tenant=live.a.tenant, kind="hold").count() == 150
    assert balances_unbalanced() == []


@pytest.mark.postgres
def test_with_billing_a_live_single_send_is_one_statement_that_holds_too(live, api, settings):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement send is PostgreSQL's")
    from django.test.utils import CaptureQueriesContext
    settings.API_KEY_CACHE_SECONDS, settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS = 60, 60
    settings.MESSAGE_HANDOFF, settings.BILLING_PRICE_CACHE_SECONDS = "dispatcher", 60
    _credit(live.a.tenant, "1")
    for auth in (live.a.auth, live.a.extra["live"]):  # warm: the key caches and the price lists
        assert _send(api, auth, to="+14155550190").status_code == 202
    with CaptureQueriesContext(connection) as test_key:
        assert _send(api, live.a.auth, to="+14155550191").status_code == 202
    with CaptureQueriesContext(connection) as live_key:
        assert _send(api, live.a.extra["live"], to="+14155550192").status_code == 202
    with CaptureQueriesContext(connection) as keyed:
        response = api.post(SEND, {"to": "+14155550193", "from": "Acme", "text": "hi"}, format="json",
                            HTTP_IDEMPOTENCY_KEY="one-statement-1", **live.a.extra["live"])
        assert response.status_code == 202
    # then rating asked nothing, and each send is its one statement: the test key's the INSERT alone, the live
    # key's the hold's UPDATE and ledger entry in it too, with an Idempotency-Key its record as well (that one in
    # a transaction of its own, so a refused hold rolls its record back: here a savepoint in the test's)
    assert len(test_key.captured_queries) == 1, test_key.captured_queries
    for captured, tables in ((live_key, ("billing_balance", "billing_ledgerentry")),
                             (keyed, ("billing_balance", "billing_ledgerentry", "accounts_idempotencyrecord"))):
        # (the test's own transaction adds a savepoint around a keyed one: none in a request on its own)
        statements = [query["sql"] for query in captured.captured_queries if "SAVEPOINT" not in query["sql"]]
        assert len(statements) == 1, statements
        (sql,) = statements
        assert all(table in sql for table in (*tables, "messaging_message")), sql
    balance = _balance(live.a.tenant)
    assert (balance.reserved, LedgerEntry.unscoped.filter(kind="hold").count()) == (Decimal("0.03"), 3)


@pytest.mark.postgres
def test_a_keyed_live_send_repeated_holds_once_and_answers_the_same(live, api):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement send is PostgreSQL's")
    _credit(live.a.tenant, "1")
    answers = [api.post(SEND, {"to": "+14155550194", "from": "Acme", "text": "hi"}, format="json",
                        HTTP_IDEMPOTENCY_KEY="repeat-1", **live.a.extra["live"]) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [202, 202, 202]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert (_balance(live.a.tenant).reserved, Message.unscoped.filter(mode="live").count()) == (Decimal("0.01"), 1)
    assert LedgerEntry.unscoped.filter(kind="hold").count() == 1
    assert balances_unbalanced() == []


def test_a_keyed_live_send_the_balance_refuses_writes_nothing_and_replays_its_402(live, api):
    _credit(live.a.tenant, "0.005")
    payload = {"to": "+14155550195", "from": "Acme", "text": "hi"}
    answers = [api.post(SEND, payload, format="json", HTTP_IDEMPOTENCY_KEY="retry-1", **live.a.extra["live"])
               for _ in range(2)]
    for answer in answers:
        assert_error(answer, 402, "insufficient_balance", field="to")
    assert Message.unscoped.filter(mode="live").count() == 0
    assert LedgerEntry.unscoped.filter(kind="hold").count() == 0
    assert _balance(live.a.tenant).reserved == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_keyed_live_sends_of_one_key_hold_once(live):
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is PostgreSQL's")
    _credit(live.a.tenant, "1")
    auth, start = live.a.extra["live"], threading.Barrier(12)

    def send(_i: int) -> int:
        try:
            start.wait()
            return APIClient().post(SEND, {"to": "+14155550196", "from": "Acme", "text": "hi"}, format="json",
                                    HTTP_IDEMPOTENCY_KEY="race-1", **auth).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(send, range(12)))
    # then each is the one send's answer or a 409 while it was in flight; one message, one hold
    assert set(codes) <= {202, 409} and 202 in codes, codes
    assert Message.unscoped.filter(tenant=live.a.tenant, mode="live").count() == 1
    assert LedgerEntry.unscoped.filter(tenant=live.a.tenant, kind="hold").count() == 1
    assert _balance(live.a.tenant).reserved == Decimal("0.01")
    assert balances_unbalanced() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_400_concurrent_batch_sends_against_a_balance_for_60_batches_accept_exactly_60(live):
    """Batches of 5 at 0.01 each: a balance of 3.00 covers 60 of the 80 batches (400 messages)."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrency is PostgreSQL's")
    _credit(live.a.tenant, "3.00")
    Balance.unscoped.filter(tenant=live.a.tenant).update(credit_limit=Decimal("0"))
    auth, start = live.a.extra["live"], threading.Barrier(20)

    def send(i: int) -> int:
        try:
            if i < 20:
                start.wait()
            messages = [{"to": f"+1415557{i:02d}{j:02d}", "from": "Acme", "text": "hi"} for j in range(5)]
            return APIClient().post(f"{SEND}/batch", {"messages": messages}, format="json", **auth).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=20) as pool:
        codes = list(pool.map(send, range(80)))
    assert (codes.count(202), codes.count(402), len(codes)) == (60, 20, 80), codes
    balance = _balance(live.a.tenant)
    assert (balance.balance, balance.reserved) == (Decimal("3.00"), Decimal("3.00"))
    assert Message.unscoped.filter(tenant=live.a.tenant, mode="live").count() == 300
    assert LedgerEntry.unscoped.filter(tenant=live.a.tenant, kind="hold").count() == 60
    assert balance.balance + balance.credit_limit - balance.reserved >= 0
    assert balances_unbalanced() == []


def test_captures_count_the_months_volume_by_country_once_and_a_tier_takes_over(live, api, settings):
    settings.BILLING_PRICE_CACHE_SECONDS = 3600
    Price.unscoped.create(country="US", price=Decimal("0.0050"), currency="EUR", effective_from="2025-01-01",
                          min_monthly_volume=3)
    _credit(live.a.tenant, "1.00")
    two_parts = "x" * 200  # 2 segments (GSM-7)
    sent = [_send(api, live.a.extra["live"], to=f"+1415555040{i}", text=two_parts).json() for i in range(3)]
    assert {answer["price"] for answer in sent} == {"0.0200"}  # 0.0100 a segment: no volume yet
    ids = [Message.unscoped.get(public_id=answer["id"]).pk for answer in sent]
    # when two go to a carrier (one of them again later), and one fails before leaving us
    lifecycle.messages_transition(message_ids=ids[:2], to=Status.SENDING, source="test")
    lifecycle.messages_transition(message_ids=ids[:2], to=Status.SENT, source="test")
    lifecycle.messages_transition(message_ids=ids[:1], to=Status.DELIVERED, source="test")
    lifecycle.messages_transition(message_ids=ids[2:], to=Status.FAILED, source="test", error_code="x")
    # then the month's US volume is their 4 segments, once each; the release counts nothing
    month = MonthlyVolume.unscoped.get(tenant=live.a.tenant)
    assert (month.country, month.segments, month.month.day) == ("US", 4, 1)
    assert rating.month_volume(tenant_id=live.a.tenant.pk, country="US") == 0  # the cached figure, until reloaded
    rating.price_cache_clear()
    assert rating.month_volume(tenant_id=live.a.tenant.pk, country="US") == 4
    # and the next send is rated at the tier reached (4 >= 3): 0.0050 a segment
    assert _send(api, live.a.extra["live"], to="+14155550410", text=two_parts).json()["price"] == "0.0100"
    assert balances_unbalanced() == []
