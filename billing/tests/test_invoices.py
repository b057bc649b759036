"""Monthly invoices and credit notes: lines and totals, tax, idempotency (also under concurrency), gap-free numbers,
the PostgreSQL triggers, the command, the task and its beat row, the API, the portal pages and the PDF."""
from __future__ import annotations

import os
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from numbers.tests.factories import shared_senders

import pypdfium2
import pytest
import time_machine
from django.conf import settings as django_settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.db.utils import DatabaseError
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from accounts.models import Tenant
from accounts.roles import Role
from accounts.services.audit import SYSTEM
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, login_verified, make_api_key
from billing import invoices, services
from billing.errors import CreditNoteRefused, InvalidCreditNote, InvalidInvoiceTransition, InvalidPeriod
from billing.models import (
    Balance,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceImmutable,
    InvoiceLine,
    InvoiceSequence,
    InvoiceStatus,
    LedgerEntry,
    Price,
)
from billing.pdf import credit_note_pdf, invoice_pdf
from billing.tasks import invoices_generate_task
from messaging import lifecycle
from messaging.models import Message, Status
from smsportal.api.ratelimit import local_buckets_clear
from smsportal.events.models import WebhookDelivery
from smsportal.tenancy import tenant_context
from smsportal.tests.ratelimit_helpers import rate_buckets_empty

pytestmark = pytest.mark.django_db

OCTOBER = date(2026, 10, 1)
IN_OCTOBER = datetime(2026, 10, 14, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def live(billed):
    """A's live key, US at 0.0100 and GB at 0.0400 a segment, 10 EUR on A's balance at a 20 % tax rate."""
    Tenant.objects.filter(pk=billed.a.tenant.pk).update(messages_per_second=10_000)
    billed.a.tenant.refresh_from_db()
    Price.unscoped.create(country="US", price=Decimal("0.0100"), currency="EUR", effective_from="2025-01-01")
    Price.unscoped.create(country="GB", price=Decimal("0.0400"), currency="EUR", effective_from="2025-01-01")
    _key, secret = make_api_key(billed.a.tenant, mode="live", name="live")
    billed.a.extra["live"] = bearer(secret)
    services.balance_credit(tenant=billed.a.tenant, amount=Decimal("10"), reason="test top-up", actor=SYSTEM)
    Balance.unscoped.filter(tenant=billed.a.tenant).update(
        tax_rate=Decimal("0.2000"), billing_name="Alpha Industries GmbH", billing_address="Hauptstr. 1\n10115 Berlin",
        tax_id="DE123456789")
    return billed


def _send(api, auth, *, to="+14155550100", text="hi", message_type="transactional", captured=True,
          at=IN_OCTOBER, settled_at: datetime | None = None) -> Message:
    """A live message accepted `at` (the hold then), captured (or, not `captured`, canceled: released) at
    `settled_at` (default: at once); `settled_at` False leaves it held."""
    # the rate limits' buckets of another instant (time moves back and forth here), in this process and in Redis
    local_buckets_clear()
    rate_buckets_empty(django_settings.REDIS_URL)
    with time_machine.travel(at, tick=False):
        response = api.post("/v1/messages", {"to": to, "from": "Acme", "text": text, "message_type": message_type},
                            format="json", **auth)
    assert response.status_code == 202, response.content
    message = Message.unscoped.get(public_id=response.json()["id"])
    if settled_at is not False:
        _settle(message, captured=captured, at=settled_at or at)
    return message


def _settle(message: Message, *, captured: bool = True, at: datetime) -> None:
    with time_machine.travel(at, tick=False):
        if captured:
            lifecycle.messages_transition(message_ids=[message.pk], to=Status.SENDING, source="test")
            lifecycle.messages_transition(message_ids=[message.pk], to=Status.SENT, source="test")
        else:
            lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")


def _entry(tenant, kind: str, amount: str, reason: str, at: datetime = IN_OCTOBER) -> LedgerEntry:
    """A ledger charge made directly (rental and lease entries come from the number charging job)."""
    return LedgerEntry.unscoped.create(tenant=tenant, kind=kind, balance_delta=Decimal(amount), currency="EUR",
                                       reason=reason, created_at=at)


def _lines(invoice: Invoice) -> list[tuple]:
    return [(line.position, line.kind, line.description, line.quantity, line.segments, line.amount)
            for line in InvoiceLine.unscoped.filter(invoice=invoice).order_by("position")]


@pytest.fixture
def october(live, api):
    """A's October: 2 US transactional messages and a 2-segment GB OTP captured, one US message released, a
    rental charge, two lease charges and an adjustment."""
    auth, tenant = live.a.extra["live"], live.a.tenant
    _send(api, auth)
    _send(api, auth, to="+14155550101")
    _send(api, auth, to="+447400123456", text="x" * 200, message_type="otp")
    _send(api, auth, to="+14155550102", captured=False)
    _entry(tenant, "rental", "-3.333333", "number 7 rental on 2026-10-14")
    _entry(tenant, "lease", "-0.250000", "number 8 leases, 3600 s on 2026-10-14")
    _entry(tenant, "lease", "-0.255000", "number 9 leases, 3672 s on 2026-10-14")
    _entry(tenant, "adjustment", "-1.005000", "Set-up fee")
    _entry(tenant, "adjustment", "-9", "November's fee", at=datetime(2026, 11, 1, tzinfo=UTC))  # not October
    return live


# --- lines and totals ------------------------------------------------------------------------------


def test_it_bills_the_months_captured_messages_by_country_and_type_rental_leases_and_adjustments(october):
    # when A's October is invoiced
    result = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER)

    # then one issued invoice with numbered lines: messages by country and type (the released one left out),
    # rental and leases one line each, each adjustment of the month; each line rounded half-up
    invoice = result.invoice
    assert result.outcome == "created" and invoice.status == InvoiceStatus.ISSUED
    assert _lines(invoice) == [
        (1, "messages", "OTP SMS to GB", 1, 2, Decimal("0.08")),
        (2, "messages", "Transactional SMS to US", 2, 2, Decimal("0.02")),
        (3, "lease", "Number leases, by the hour (quantity: number-days)", 2, 0, Decimal("0.51")),
        (4, "rental", "Number rental (quantity: number-days)", 1, 0, Decimal("3.33")),
        (5, "adjustment", "Adjustment 2026-10-14: Set-up fee", 1, 0, Decimal("1.01")),
    ]
    assert InvoiceLine.unscoped.get(invoice=invoice, position=1).unit_price == Decimal("0.04")
    # subtotal = the lines; tax = 20 % of it, half-up to cents (4.95 * 0.2 = 0.99); total = both
    assert (invoice.subtotal, invoice.tax_rate, invoice.tax, invoice.total) == (
        Decimal("4.95"), Decimal("0.2000"), Decimal("0.99"), Decimal("5.94"))
    assert (invoice.currency, invoice.period, invoice.issuer) == ("EUR", OCTOBER, "smsportal Ltd")
    assert (invoice.bill_to_name, invoice.bill_to_tax_id) == ("Alpha Industries GmbH", "DE123456789")
    assert invoice.number == f"SP-{timezone.now().year}-000001"


def test_it_rounds_tax_half_up_to_cents(live):
    # given a subtotal whose tax is exactly half a cent: 0.25 * 0.2 = 0.05, and 0.05 * 0.1 = 0.005
    Balance.unscoped.filter(tenant=live.a.tenant).update(tax_rate=Decimal("0.1000"))
    _entry(live.a.tenant, "adjustment", "-0.05", "Half a cent of tax")
    invoice = invoices.invoice_generate(tenant=live.a.tenant, period=OCTOBER).invoice
    assert (invoice.subtotal, invoice.tax, invoice.total) == (Decimal("0.05"), Decimal("0.01"), Decimal("0.06"))


def test_it_makes_no_invoice_for_a_month_with_nothing_to_bill(live):
    result = invoices.invoice_generate(tenant=live.a.tenant, period=date(2026, 9, 1))
    assert (result.outcome, result.invoice) == ("empty", None)
    assert not Invoice.unscoped.filter(tenant=live.a.tenant, period=date(2026, 9, 1)).exists()


@pytest.mark.parametrize("period", [date(2030, 1, 1), date(2026, 10, 2)])
def test_it_refuses_a_month_not_ended_or_not_a_first_day(live, period):
    with pytest.raises(InvalidPeriod):
        invoices.invoice_generate(tenant=live.a.tenant, period=period)
    current = timezone.now().date().replace(day=1)
    with pytest.raises(InvalidPeriod):
        invoices.invoices_generate(period=current)


# --- idempotency and numbers -----------------------------------------------------------------------


def test_it_changes_nothing_when_run_twice(october):
    first = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER)
    before = list(Invoice.unscoped.filter(tenant=october.a.tenant).values())
    _entry(october.a.tenant, "adjustment", "-5", "Late adjustment")  # even with something new in the month
    second = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER)
    assert (second.outcome, second.invoice.pk) == ("exists", first.invoice.pk)
    assert list(Invoice.unscoped.filter(tenant=october.a.tenant).values()) == before
    assert InvoiceSequence.objects.get().last == 1


def test_the_database_refuses_a_second_invoice_for_the_same_tenant_and_month(october):
    invoice = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER).invoice
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.unscoped.create(tenant=invoice.tenant, period=OCTOBER, issuer="x", currency="EUR", bill_to_name="x")


def test_it_numbers_invoices_per_issuer_in_sequence_without_gaps(live, settings):
    # given charges in three months for A and one for B
    for month in (7, 8, 9):
        _entry(live.a.tenant, "adjustment", "-1", f"Fee {month}", at=datetime(2026, month, 3, tzinfo=UTC))
    _entry(live.b.tenant, "adjustment", "-1", "Fee", at=datetime(2026, 8, 3, tzinfo=UTC))

    # when July and August are invoiced, then September's issue fails after taking its number (rolled back)
    invoices.invoices_generate(period=date(2026, 7, 1))
    invoices.invoices_generate(period=date(2026, 8, 1))
    with pytest.raises(RuntimeError), transaction.atomic():
        invoices.invoice_generate(tenant=live.a.tenant, period=date(2026, 9, 1))
        raise RuntimeError("the transaction rolls back")
    invoices.invoice_generate(tenant=live.a.tenant, period=date(2026, 9, 1))

    # then the numbers run 1..4 with no gap (the rolled-back one given back), in issue order
    year = timezone.now().year
    numbers = list(Invoice.unscoped.exclude(issuer="Test issuer Ltd").order_by("issued_at", "pk")
                   .values_list("number", flat=True))
    assert numbers == [f"SP-{year}-{n:06d}" for n in (1, 2, 3, 4)]
    # another issuer has its own series
    settings.INVOICE_ISSUER_NAME = "smsportal Inc"
    _entry(live.a.tenant, "adjustment", "-1", "Fee", at=datetime(2026, 6, 3, tzinfo=UTC))
    other = invoices.invoice_generate(tenant=live.a.tenant, period=date(2026, 6, 1)).invoice
    assert (other.issuer, other.number) == ("smsportal Inc", f"SP-{year}-000001")


def test_drafts_get_their_number_when_issued(live, settings):
    settings.INVOICES_ISSUE_ON_GENERATE = False
    _entry(live.a.tenant, "adjustment", "-1", "Fee")
    draft = invoices.invoice_generate(tenant=live.a.tenant, period=OCTOBER).invoice
    assert (draft.status, draft.number) == ("draft", "")
    issued = invoices.invoice_issue(tenant=live.a.tenant, invoice=draft)
    assert (issued.status, issued.number) == ("issued", f"SP-{timezone.now().year}-000001")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_make_one_invoice_with_one_number(world, settings):
    # given A's October charges, and 8 threads (own connections) generating A's October at the same time
    _entry(world.a.tenant, "adjustment", "-2", "Fee")
    barrier, results, errors = threading.Barrier(8), [], []

    def run():
        try:
            barrier.wait()
            results.append(invoices.invoice_generate(tenant=world.a.tenant, period=OCTOBER).outcome)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then one invoice, created once, numbered once; the others found it
    assert errors == []
    assert sorted(results) == ["created"] + ["exists"] * 7
    invoice = Invoice.unscoped.get(tenant=world.a.tenant, period=OCTOBER)
    assert invoice.number == f"SP-{timezone.now().year}-000001"
    assert InvoiceSequence.objects.get(issuer="smsportal Ltd").last == 1


# --- issued invoices never change -------------------------------------------------------------------


def test_an_issued_invoice_changes_only_from_issued_to_paid_or_void(october):
    invoice = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER).invoice
    invoice.total = Decimal("1.00")
    with pytest.raises(InvoiceImmutable):
        invoice.save()
    paid = invoices.invoice_status_set(tenant=october.a.tenant, invoice=invoice, status="paid", actor=SYSTEM)
    assert paid.status == "paid" and paid.paid_at is not None
    with pytest.raises(InvalidInvoiceTransition):
        invoices.invoice_status_set(tenant=october.a.tenant, invoice=paid, status="void", actor=SYSTEM)
    with pytest.raises(InvalidInvoiceTransition):
        invoices.invoice_status_set(tenant=october.a.tenant, invoice=paid, status="draft", actor=SYSTEM)
    assert Invoice.unscoped.get(pk=invoice.pk).total == Decimal("5.94")


@pytest.mark.postgres
def test_the_trigger_refuses_changing_an_issued_invoice_its_lines_and_credit_notes(october):
    invoice = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER).invoice
    note = invoices.credit_note_create(tenant=october.a.tenant, invoice=invoice, reason="Goodwill",
                                       lines=[("Goodwill", Decimal("-1.00"))], actor=SYSTEM)
    refused = [
        ("UPDATE billing_invoice SET total = 0 WHERE id = %s", invoice.pk),
        ("UPDATE billing_invoice SET status = 'draft' WHERE id = %s", invoice.pk),
        ("UPDATE billing_invoice SET status = 'paid', subtotal = 0 WHERE id = %s", invoice.pk),
        ("DELETE FROM billing_invoice WHERE id = %s", invoice.pk),
        ("UPDATE billing_invoiceline SET amount = 0 WHERE invoice_id = %s", invoice.pk),
        ("DELETE FROM billing_invoiceline WHERE invoice_id = %s", invoice.pk),
        ("INSERT INTO billing_invoiceline (tenant_id, invoice_id, position, kind, description, country, message_type, "
         "quantity, segments, amount) SELECT tenant_id, id, 99, 'adjustment', 'x', '', '', 1, 0, 1 FROM billing_invoice "
         "WHERE id = %s", invoice.pk),
        ("UPDATE billing_creditnote SET total = 0 WHERE id = %s", note.pk),
        ("DELETE FROM billing_creditnoteline WHERE credit_note_id = %s", note.pk),
    ]
    for sql, pk in refused:
        with pytest.raises(DatabaseError, match="refused|only issued"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql, [pk])
    # the one change allowed: issued -> paid (or void), nothing else with it
    with connection.cursor() as cursor:
        cursor.execute("UPDATE billing_invoice SET status = 'paid', paid_at = now() WHERE id = %s", [invoice.pk])
    assert Invoice.unscoped.get(pk=invoice.pk).status == "paid"
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_invoice SET status = 'void' WHERE id = %s", [invoice.pk])


# --- credit notes ----------------------------------------------------------------------------------


def test_a_credit_note_corrects_an_issued_invoice_with_its_own_number(october):
    invoice = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER).invoice
    note = invoices.credit_note_create(tenant=october.a.tenant, invoice=invoice, reason="Set-up fee waived",
                                       lines=[("Set-up fee waived", Decimal("-1.01")),
                                              ("Rental overcharged", Decimal("-0.50"))], actor=SYSTEM)
    year = timezone.now().year
    assert (note.number, note.subtotal, note.tax_rate, note.tax, note.total) == (
        f"CN-{year}-000001", Decimal("-1.51"), Decimal("0.2000"), Decimal("-0.30"), Decimal("-1.81"))
    assert list(CreditNoteLine.unscoped.filter(credit_note=note).values_list("position", "amount")) == [(1, Decimal("-1.01")), (2, Decimal("-0.50"))]
    assert Invoice.unscoped.get(pk=invoice.pk).total == Decimal("5.94")  # the invoice itself is unchanged
    with tenant_context(october.a.tenant):
        assert invoices.invoice_net_total(invoice=Invoice.unscoped.get(pk=invoice.pk)) == Decimal("4.13")
    second = invoices.credit_note_create(tenant=october.a.tenant, invoice=invoice, reason="Extra lease",
                                         lines=[("Lease not billed", Decimal("0.10"))], actor=SYSTEM)
    assert (second.number, second.total) == (f"CN-{year}-000002", Decimal("0.12"))
    # refused: more than the invoice's total left, a zero or sub-cent amount, no line, no reason
    refusals = [("x", [("Too much", Decimal("-10"))]), ("x", [("No", Decimal("0"))]),
                ("x", [("Cents", Decimal("0.001"))]), ("x", []), (" ", [("x", Decimal("-1"))])]
    for reason, lines in refusals:
        with pytest.raises(InvalidCreditNote):
            invoices.credit_note_create(tenant=october.a.tenant, invoice=invoice, reason=reason, lines=lines,
                                        actor=SYSTEM)
    assert CreditNote.unscoped.filter(invoice=invoice).count() == 2
    assert InvoiceSequence.objects.get(series="CN").last == 2


def test_a_credit_note_is_refused_for_a_draft_or_void_invoice(live, settings):
    settings.INVOICES_ISSUE_ON_GENERATE = False
    _entry(live.a.tenant, "adjustment", "-1", "Fee")
    draft = invoices.invoice_generate(tenant=live.a.tenant, period=OCTOBER).invoice
    with pytest.raises(CreditNoteRefused):
        invoices.credit_note_create(tenant=live.a.tenant, invoice=draft, reason="x", lines=[("x", Decimal("-1"))],
                                    actor=SYSTEM)
    issued = invoices.invoice_issue(tenant=live.a.tenant, invoice=draft)
    invoices.invoice_status_set(tenant=live.a.tenant, invoice=issued, status="void", actor=SYSTEM)
    with pytest.raises(CreditNoteRefused):
        invoices.credit_note_create(tenant=live.a.tenant, invoice=issued, reason="x", lines=[("x", Decimal("-1"))],
                                    actor=SYSTEM)
    assert not CreditNote.unscoped.filter(invoice=issued).exists()


# --- side effects of issue: event and email --------------------------------------------------------


def test_issuing_emits_invoice_issued_and_emails_the_owners_and_billing_members(october,
                                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invoice = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER).invoice
    delivery = WebhookDelivery.unscoped.get(tenant=october.a.tenant, event_type="invoice.issued")
    assert delivery.subject == invoice.public_id
    assert delivery.payload["data"] == {
        "id": invoice.public_id, "number": invoice.number, "period": "2026-10", "status": "issued",
        "currency": "EUR", "subtotal": "4.95", "tax_rate": "0.2000", "tax": "0.99", "total": "5.94",
        "issued_at": delivery.payload["data"]["issued_at"]}
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert sorted(message.to) == ["billing@alpha.example.com", "owner@alpha.example.com"]
    assert invoice.number in message.subject and "5.94 EUR" in message.body
    assert f"/portal/billing/invoices/{invoice.public_id}/" in message.body
    # a second run sends nothing again
    with django_capture_on_commit_callbacks(execute=True):
        invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER)
    assert len(mail.outbox) == 1
    assert WebhookDelivery.unscoped.filter(event_type="invoice.issued").count() == 1


# --- the command, the task, the beat row -----------------------------------------------------------


def test_the_command_prints_what_it_created_and_skipped(october):
    out = StringIO()
    call_command("invoices_generate", "--period", "2026-10", stdout=out)
    text = out.getvalue()
    number = Invoice.unscoped.get(tenant=october.a.tenant, period=OCTOBER).number
    assert f"alpha: created {number}, 5 lines, total 5.94 EUR" in text
    assert "bravo: skipped, nothing to bill in 2026-10" in text
    assert "2026-10: 1 created, 1 skipped" in text
    again = StringIO()
    call_command("invoices_generate", "--period", "2026-10", "--tenant", "alpha", stdout=again)
    assert again.getvalue() == (f"alpha: skipped, already invoiced ({number}, 5 lines, total 5.94 EUR)\n"
                                "2026-10: 0 created, 1 skipped\n")
    assert Invoice.unscoped.filter(period=OCTOBER).count() == 1


@pytest.mark.parametrize(("args", "message"), [
    (["--period", "2026-13"], "'2026-13' is not a month"),
    (["--period", "October"], "is not a month"),
    (["--period", "2999-01"], "has not ended"),
    (["--period", "2026-10", "--tenant", "nobody"], "no tenant with the slug 'nobody'"),
])
def test_the_command_refuses_bad_arguments_clearly(live, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("invoices_generate", *args, stdout=StringIO())
    assert not Invoice.unscoped.exclude(issuer="Test issuer Ltd").exists()


def test_the_task_invoices_last_month(live):
    last_month = invoices.period_previous()
    _entry(live.a.tenant, "adjustment", "-1", "Fee", at=datetime.combine(last_month, datetime.min.time(), UTC))
    assert invoices_generate_task() == {"created": 1, "empty": 1}
    assert invoices_generate_task() == {"exists": 1, "empty": 1}
    assert Invoice.unscoped.get(tenant=live.a.tenant, period=last_month).status == "issued"


def test_last_month_is_the_month_before_in_utc():
    assert invoices.period_previous(datetime(2027, 1, 1, 2, 0, tzinfo=UTC)) == date(2026, 12, 1)
    assert invoices.period_previous(datetime(2026, 3, 31, 23, 59, tzinfo=UTC)) == date(2026, 2, 1)
    assert invoices.period_bounds(date(2026, 12, 1)) == (datetime(2026, 12, 1, tzinfo=UTC),
                                                         datetime(2027, 1, 1, tzinfo=UTC))


def test_the_beat_runs_the_task_at_two_on_the_first_in_utc():
    task = PeriodicTask.objects.get(task="billing.tasks.invoices_generate_task")
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "0", "2", "1", "*", "*")
    assert str(crontab.timezone) == "UTC" and task.enabled


# --- API -------------------------------------------------------------------------------------------


@pytest.fixture
def invoiced(october):
    invoice = invoices.invoice_generate(tenant=october.a.tenant, period=OCTOBER).invoice
    invoices.credit_note_create(tenant=october.a.tenant, invoice=invoice, reason="Set-up fee waived",
                                lines=[("Set-up fee waived", Decimal("-1.01"))], actor=SYSTEM)
    october.a.extra["october"] = invoice
    return october


def test_the_api_lists_invoices_newest_first_without_drafts(invoiced, api, settings):
    settings.INVOICES_ISSUE_ON_GENERATE = False
    _entry(invoiced.a.tenant, "adjustment", "-1", "Fee", at=datetime(2026, 9, 2, tzinfo=UTC))
    invoices.invoice_generate(tenant=invoiced.a.tenant, period=date(2026, 9, 1))  # a draft: not shown
    body = api.get("/v1/invoices", **invoiced.a.auth).json()
    october, world = invoiced.a.extra["october"], invoiced.a.extra["invoice"]
    assert [row["id"] for row in body["results"]] == [october.public_id, world.public_id]
    assert body["results"][0] == {
        "id": october.public_id, "number": october.number, "period": "2026-10", "status": "issued",
        "to_date": False, "issuer": "smsportal Ltd", "currency": "EUR", "subtotal": "4.95", "tax_rate": "0.2000", "tax": "0.99",
        "total": "5.94", "held_unsettled": "0.0000", "issued_at": body["results"][0]["issued_at"], "paid_at": None,
        "voided_at": None}
    page = api.get("/v1/invoices?limit=1", **invoiced.a.auth).json()
    assert [row["id"] for row in page["results"]] == [october.public_id] and page["next"]
    assert [row["id"] for row in api.get("/v1/invoices", **invoiced.b.auth).json()["results"]] == [
        invoiced.b.extra["invoice"].public_id]


def test_the_api_shows_an_invoice_with_its_lines_and_credit_notes(invoiced, api):
    invoice = invoiced.a.extra["october"]
    body = api.get(f"/v1/invoices/{invoice.public_id}", **invoiced.a.auth).json()
    assert body["bill_to"] == {"name": "Alpha Industries GmbH", "address": "Hauptstr. 1\n10115 Berlin",
                               "tax_id": "DE123456789"}
    assert [(line["position"], line["kind"], line["amount"]) for line in body["lines"]] == [
        (1, "messages", "0.08"), (2, "messages", "0.02"), (3, "lease", "0.51"), (4, "rental", "3.33"),
        (5, "adjustment", "1.01")]
    assert body["lines"][0] == {
        "position": 1, "kind": "messages", "description": "OTP SMS to GB", "country": "GB", "message_type": "otp",
        "quantity": 1, "segments": 2, "unit_price": "0.0400", "amount": "0.08"}
    [note] = body["credit_notes"]
    assert (note["number"], note["total"], note["lines"]) == (
        f"CN-{timezone.now().year}-000001", "-1.21", [{"position": 1, "description": "Set-up fee waived",
                                                        "amount": "-1.01"}])


def test_the_api_gives_the_pdf_as_an_attachment(invoiced, api):
    invoice = invoiced.a.extra["october"]
    response = api.get(f"/v1/invoices/{invoice.public_id}/pdf", HTTP_ACCEPT="application/pdf", **invoiced.a.auth)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert response.content.startswith(b"%PDF-")


def test_another_tenants_invoice_is_the_same_404_as_a_missing_one(invoiced, api):
    invoice = invoiced.a.extra["october"]
    for suffix in ("", "/pdf"):
        other = api.get(f"/v1/invoices/{invoice.public_id}{suffix}", **invoiced.b.auth)
        missing = api.get(f"/v1/invoices/inv_doesnotexist{suffix}", **invoiced.b.auth)
        assert_error(other, 404, "not_found")
        assert other.json() == missing.json()


def test_the_invoice_endpoints_need_the_billing_read_scope(invoiced, api):
    _key, secret = make_api_key(invoiced.a.tenant, scopes=["messages:read"], name="reader")
    invoice = invoiced.a.extra["october"]
    for path in ("/v1/invoices", f"/v1/invoices/{invoice.public_id}", f"/v1/invoices/{invoice.public_id}/pdf"):
        assert_error(api.get(path, **bearer(secret)), 403, "insufficient_scope")
        assert_error(api.get(path), 401, "authentication_required")
    _key, secret = make_api_key(invoiced.a.tenant, scopes=["billing:read"], name="billing")
    assert api.get(f"/v1/invoices/{invoice.public_id}/pdf", **bearer(secret)).status_code == 200


def test_the_invoice_list_asks_a_fixed_number_of_queries(invoiced, api, django_assert_max_num_queries):
    for month in (5, 6, 7):
        _entry(invoiced.a.tenant, "adjustment", "-1", "Fee", at=datetime(2026, month, 2, tzinfo=UTC))
        invoices.invoice_generate(tenant=invoiced.a.tenant, period=date(2026, month, 1))
    with django_assert_max_num_queries(8):
        assert len(api.get("/v1/invoices", **invoiced.a.auth).json()["results"]) == 5


# --- portal ----------------------------------------------------------------------------------------


def _portal(world, role: str) -> Client:
    return login_verified(Client(), world.a.members[role], tenant=world.a.tenant)


@pytest.mark.parametrize("role", [Role.BILLING, Role.OWNER, Role.ADMIN])
def test_the_portal_shows_invoices_to_roles_with_billing_view(invoiced, role):
    client, invoice = _portal(invoiced, role), invoiced.a.extra["october"]
    listing = client.get("/portal/billing/invoices/")
    assert listing.status_code == 200
    assert invoice.number in listing.content.decode() and "5.94 EUR" in listing.content.decode()
    page = client.get(f"/portal/billing/invoices/{invoice.public_id}/")
    html = page.content.decode()
    assert page.status_code == 200
    for text in (invoice.number, "Alpha Industries GmbH", "Hauptstr. 1<br>10115 Berlin", "smsportal Ltd",
                 "OTP SMS to GB", "Subtotal", "4.95 EUR", "Tax (20.00 %)", "0.99 EUR", "5.94 EUR", "October 2026",
                 f"/portal/billing/invoices/{invoice.public_id}/pdf/", "Credit notes", "-1.21 EUR"):
        assert text in html, text
    pdf = client.get(f"/portal/billing/invoices/{invoice.public_id}/pdf/")
    assert (pdf.status_code, pdf["Content-Type"]) == (200, "application/pdf")
    note = CreditNote.unscoped.get(invoice=invoice)
    note_pdf = client.get(f"/portal/billing/invoices/{invoice.public_id}/credit-notes/{note.public_id}/pdf/")
    assert note_pdf.status_code == 200 and note_pdf.content.startswith(b"%PDF-")


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_the_portal_refuses_invoices_to_roles_without_billing_view(invoiced, role):
    client, invoice = _portal(invoiced, role), invoiced.a.extra["october"]
    for path in ("/portal/billing/invoices/", f"/portal/billing/invoices/{invoice.public_id}/",
                 f"/portal/billing/invoices/{invoice.public_id}/pdf/"):
        assert client.get(path).status_code == 403, path
    assert "/portal/billing/invoices/" not in client.get("/portal/").content.decode()


def test_the_portal_does_not_show_a_draft(live, settings):
    settings.INVOICES_ISSUE_ON_GENERATE = False
    _entry(live.a.tenant, "adjustment", "-1", "Fee")
    draft = invoices.invoice_generate(tenant=live.a.tenant, period=OCTOBER).invoice
    assert _portal(live, Role.OWNER).get(f"/portal/billing/invoices/{draft.public_id}/").status_code == 404


# --- the PDF, rendered ------------------------------------------------------------------------------


_SAVE_TO = os.environ.get("INVOICE_PDF_PNG")  # a path: keep the rendered page to look at


def _render(pdf: bytes):
    document = pypdfium2.PdfDocument(pdf)
    page = document[0]
    text = page.get_textpage().get_text_range()
    image = page.render(scale=1).to_pil().convert("L")
    return document, page, text, image


def test_the_invoice_pdf_is_an_a4_page_with_its_number_lines_and_total(invoiced):
    invoice = Invoice.unscoped.get(pk=invoiced.a.extra["october"].pk)
    with tenant_context(invoiced.a.tenant):
        pdf = invoice_pdf(invoice=invoice, lines=invoice.lines.all(), credit_notes=invoice.credit_notes.all())
    document, page, text, image = _render(pdf)
    if _SAVE_TO:
        page.render(scale=2).to_pil().save(_SAVE_TO)
    assert len(document) == 1
    width, height = page.get_size()
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    for expected in ("Invoice", invoice.number, "October 2026", "smsportal Ltd", "Alpha Industries GmbH",
                     "DE123456789", "OTP SMS to GB", "Transactional SMS to US", "Set-up fee", "Subtotal", "4.95 EUR",
                     "Tax (20.00 %)", "0.99 EUR", "Total", "5.94 EUR", "prepaid balance",
                     f"Corrected by credit note CN-{timezone.now().year}-000001"):
        assert expected in text, expected
    # the page is drawn: mostly white, with dark text, and ink in the top (header) and the middle (lines)
    pixels = image.load()
    dark = [(x, y) for x in range(0, image.width, 2) for y in range(0, image.height, 2) if pixels[x, y] < 100]
    assert 200 < len(dark) < image.width * image.height // 40
    assert any(y < image.height // 5 for _x, y in dark) and any(image.height // 3 < y < image.height // 2
                                                                 for _x, y in dark)
    assert image.getpixel((5, 5)) == 255  # the margin is white


def test_the_credit_note_pdf_names_the_invoice_it_corrects(invoiced):
    note = CreditNote.unscoped.select_related("invoice").get(invoice=invoiced.a.extra["october"])
    with tenant_context(invoiced.a.tenant):
        pdf = credit_note_pdf(note=note, invoice=note.invoice, lines=note.lines.all())
    _document, page, text, image = _render(pdf)
    for expected in ("Credit note", note.number, note.invoice.number, "Set-up fee waived", "-1.21 EUR"):
        assert expected in text, expected
    assert image.getextrema()[0] < 100  # dark text on the page


def test_the_pdf_escapes_markup_in_names(live):
    # a bill-to name with reportlab markup is printed as text, not read as markup (nor failing)
    Balance.unscoped.filter(tenant=live.a.tenant).update(billing_name="<b>Acme</b> & <font size=40>Co</font>")
    _entry(live.a.tenant, "adjustment", "-1", "Fee <i>x</i>")
    invoice = invoices.invoice_generate(tenant=live.a.tenant, period=OCTOBER).invoice
    with tenant_context(live.a.tenant):
        pdf = invoice_pdf(invoice=invoice, lines=invoice.lines.all())
    assert "<b>Acme</b> & <font size=40>Co</font>" in _render(pdf)[2]


def test_period_text_is_parsed_strictly():
    assert invoices.period_parse("2026-02") == date(2026, 2, 1)
    for text in ("2026-2", "2026-00", "26-01", "", "2026-01-01"):
        with pytest.raises(InvalidPeriod):
            invoices.period_parse(text)


def test_amounts_round_half_up_to_cents():
    assert [invoices.cents(Decimal(v)) for v in ("0.005", "0.0049", "-0.005", "2.675")] == [
        Decimal("0.01"), Decimal("0.00"), Decimal("-0.01"), Decimal("2.68")]


# --- admin -----------------------------------------------------------------------------------------


@pytest.fixture
def staff_client(db):
    from accounts.models import User

    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password="x-Pass-2026!")
    return login_verified(Client(), staff)


def test_admin_shows_an_issued_invoice_read_only_and_makes_a_credit_note_for_it(invoiced, staff_client):
    invoice = invoiced.a.extra["october"]
    page = staff_client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200 and "Create credit note" in html
    assert 'name="total"' not in html  # view-only: no editable field
    # a POST to the change form cannot change it
    staff_client.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"total": "0.00"})
    assert Invoice.unscoped.get(pk=invoice.pk).total == Decimal("5.94")
    # the credit note page issues one with its lines
    response = staff_client.post(f"/admin/billing/invoice/{invoice.pk}/credit-note/", {
        "reason": "Rental overcharged", "lines-TOTAL_FORMS": "2", "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1", "lines-MAX_NUM_FORMS": "1000",
        "lines-0-description": "Rental overcharged", "lines-0-amount": "-1.00",
        "lines-1-description": "", "lines-1-amount": ""})
    assert response.status_code == 302
    note = CreditNote.unscoped.filter(invoice=invoice).latest("issued_at")
    assert (note.reason, note.total, note.actor) == ("Rental overcharged", Decimal("-1.20"),
                                                     "manager@smsportal.example.com")
    pdf = staff_client.get(f"/admin/billing/invoice/{invoice.pk}/pdf/")
    assert pdf["Content-Type"] == "application/pdf"


def test_admin_actions_issue_mark_paid_and_void(live, staff_client, settings):
    settings.INVOICES_ISSUE_ON_GENERATE = False
    _entry(live.a.tenant, "adjustment", "-1", "Fee")
    draft = invoices.invoice_generate(tenant=live.a.tenant, period=OCTOBER).invoice
    url = "/admin/billing/invoice/"

    def act(action: str):
        return staff_client.post(url, {"action": action, "_selected_action": [draft.pk]}, follow=True)

    assert "1 invoice(s) issued" in act("invoices_issue").content.decode()
    assert Invoice.unscoped.get(pk=draft.pk).status == "issued"
    act("invoices_mark_paid")
    assert Invoice.unscoped.get(pk=draft.pk).status == "paid"
    refused = act("invoices_void").content.decode()
    assert "issued to paid or void only" in refused
    assert Invoice.unscoped.get(pk=draft.pk).status == "paid"


# --- statements of the month so far (--to-date) -------------------------------------------------------


def test_a_to_date_draft_shows_the_month_so_far_and_the_months_run_replaces_it(live, api, settings):
    # given a message captured this month
    auth, tenant = live.a.extra["live"], live.a.tenant
    now = timezone.now()
    _send(api, auth, at=now)
    month = now.date().replace(day=1)
    # when a statement to date is made (the month is not over: a plain run refuses it)
    with pytest.raises(InvalidPeriod):
        invoices.invoice_generate(tenant=tenant, period=month)
    out = StringIO()
    call_command("invoices_generate", "--to-date", "--tenant", tenant.slug, stdout=out)
    assert "draft to date" in out.getvalue()
    draft = Invoice.unscoped.get(tenant=tenant, period=month)
    assert (draft.status, draft.number, draft.to_date, draft.total) == ("draft", "", True, Decimal("0.01"))
    # then the tenant sees it, with its PDF marked as a draft of the month so far
    listed = api.get("/v1/invoices", **auth).json()["results"]
    assert (draft.public_id, "draft", True) in [(i["id"], i["status"], i["to_date"]) for i in listed]
    pdf = api.get(f"/v1/invoices/{draft.public_id}/pdf", **auth)
    _document, _page, text, _image = _render(pdf.content)
    assert "DRAFT: the month so far" in text
    # and a later statement replaces it with the new figures, never two rows
    _send(api, auth, to="+14155550105", at=now)
    call_command("invoices_generate", "--to-date", "--tenant", tenant.slug, stdout=StringIO())
    again = Invoice.unscoped.get(tenant=tenant, period=month)
    assert again.pk != draft.pk and again.total == Decimal("0.02")
    # and once the month has ended its run replaces the statement with the issued, numbered invoice
    with time_machine.travel(invoices.period_bounds(month)[1] + timedelta(hours=2)):
        generated = invoices.invoice_generate(tenant=tenant, period=month)
    final = Invoice.unscoped.get(tenant=tenant, period=month)
    assert generated.outcome == "created" and (final.status, final.to_date) == ("issued", False) and final.number
    assert final.total == Decimal("0.02")


# --- messages held at the month's end ---------------------------------------------------------------------------

OCT_END = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_message_held_at_the_months_end_is_billed_once_in_the_month_it_is_captured(live, api):
    auth, tenant = live.a.extra["live"], live.a.tenant
    # given: one message accepted and captured in October; one accepted on 31 October and captured on 1 November;
    # one accepted on 31 October and released on 2 November (never charged); one GB message accepted and
    # captured in November
    _send(api, auth, to="+14155550100", at=IN_OCTOBER)
    late = _send(api, auth, to="+14155550101", at=OCT_END - timedelta(seconds=30),
                 settled_at=OCT_END + timedelta(seconds=30))
    _send(api, auth, to="+14155550102", at=OCT_END - timedelta(minutes=5), captured=False,
          settled_at=OCT_END + timedelta(days=1))
    _send(api, auth, to="+447400123456", at=OCT_END + timedelta(days=3))
    assert late.created_at < OCT_END

    # when October is invoiced by the run at 02:00 on 1 November
    with time_machine.travel(OCT_END + timedelta(hours=2), tick=False):
        october = invoices.invoice_generate(tenant=tenant, period=OCTOBER).invoice
    # then it bills only the message captured in October, and shows what was still held at its end (two messages)
    assert _lines(october) == [(1, "messages", "Transactional SMS to US", 1, 1, Decimal("0.01"))]
    assert (october.subtotal, october.held_unsettled) == (Decimal("0.01"), Decimal("0.02"))

    # when November is invoiced: the message captured on 1 November is on it, with November's own
    with time_machine.travel(datetime(2026, 12, 1, 2, tzinfo=UTC), tick=False):
        november = invoices.invoice_generate(tenant=tenant, period=date(2026, 11, 1)).invoice
        again = invoices.invoice_generate(tenant=tenant, period=OCTOBER)
    assert _lines(november) == [(1, "messages", "Transactional SMS to GB", 1, 1, Decimal("0.04")),
                                (2, "messages", "Transactional SMS to US", 1, 1, Decimal("0.01"))]
    assert november.held_unsettled == Decimal("0")
    # never twice, never dropped: every capture is on exactly one invoice, and October is not made again
    assert again.outcome == "exists" and _lines(again.invoice) == _lines(october)
    billed = sum(line.quantity for line in InvoiceLine.unscoped.filter(tenant=tenant, kind="messages"))
    assert billed == LedgerEntry.unscoped.filter(tenant=tenant, kind="capture").count() == 3
    assert sum(line.amount for line in InvoiceLine.unscoped.filter(tenant=tenant, kind="messages")) == \
        -sum(e.balance_delta for e in LedgerEntry.unscoped.filter(tenant=tenant, kind="capture"))


def test_the_held_unsettled_amount_is_on_the_invoice_page_the_api_and_the_pdf(live, api):
    auth, tenant = live.a.extra["live"], live.a.tenant
    _send(api, auth, to="+14155550100", at=IN_OCTOBER)
    _send(api, auth, to="+447400123456", text="x" * 200, at=OCT_END - timedelta(minutes=1), settled_at=False)
    with time_machine.travel(OCT_END + timedelta(hours=2), tick=False):
        invoice = invoices.invoice_generate(tenant=tenant, period=OCTOBER).invoice
    assert invoice.held_unsettled == Decimal("0.08")  # 2 segments to GB at 0.04, still held
    page = _portal(live, Role.OWNER).get(f"/portal/billing/invoices/{invoice.public_id}/").content.decode()
    assert "Held at the end of the period for messages not yet sent: 0.0800 EUR" in page
    detail = api.get(f"/v1/invoices/{invoice.public_id}", **live.a.auth).json()
    assert detail["held_unsettled"] == "0.0800"
    with tenant_context(tenant):
        pdf = invoice_pdf(invoice=invoice, lines=invoice.lines.all(), credit_notes=invoice.credit_notes.all())
    _document, _page, text, _image = _render(pdf)
    assert "Held at the end of the period for messages not yet sent: 0.0800 EUR" in " ".join(text.split())

