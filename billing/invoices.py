"""Monthly invoices and credit notes: generation (one per tenant and month), issue with gap-free numbers, status,
corrections (docs/billing.md "Invoices").

An invoice states what the month cost: the messages whose hold was captured in it, whenever they were accepted
(by country and type, at what each capture charged, through billing's hook, which messaging fills), and the
ledger's rental, lease and adjustment entries of the month. A message accepted in one month and captured in the
next is billed once, on the next month's invoice; what was still held at the month's end is shown on the
invoice (`held_unsettled`), not billed.
Amounts are Decimal, each line rounded half-up to cents; tax is the subtotal times the tenant's rate, rounded
the same way. Once issued an invoice never changes except its status (issued -> paid or void); a mistake is
corrected by a credit note.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import selectors as accounts_selectors
from accounts.roles import Role
from accounts.services.audit import SYSTEM, Actor, audit_record
from billing import hooks
from billing import selectors as billing_selectors
from billing.errors import (
    CreditNoteRefused,
    InvalidCreditNote,
    InvalidInvoiceTransition,
    InvalidPeriod,
    InvoiceNotDraft,
)
from billing.models import (
    Balance,
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    InvoiceLineKind,
    InvoiceSequence,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
)
from smsportal.events import services as events
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

logger = logging.getLogger("smsportal.billing")

CENT = Decimal("0.01")
INVOICE_EVENT_TYPES = ("invoice.issued",)
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_TYPE_LABELS = {"otp": "OTP", "transactional": "Transactional", "marketing": "Marketing"}


def cents(amount: Decimal) -> Decimal:
    """An invoice amount: rounded half-up to 2 places (0.005 -> 0.01)."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


# --- periods ---------------------------------------------------------------------------------------


def period_parse(text: str) -> date:
    """`YYYY-MM` -> the month's first day; InvalidPeriod otherwise."""
    match = _PERIOD.match(text or "")
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2000:
        raise InvalidPeriod(f"{text!r} is not a month: give YYYY-MM, e.g. 2026-11.", field="period")
    return date(int(match[1]), int(match[2]), 1)


def period_bounds(period: date) -> tuple[datetime, datetime]:
    """The month as UTC instants: [first day 00:00, next month's first day 00:00)."""
    start = datetime(period.year, period.month, 1, tzinfo=UTC)
    end = datetime(period.year + period.month // 12, period.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_previous(now: datetime | None = None) -> date:
    """The month before the one `now` (UTC) is in: what the run on the 1st bills."""
    today = (now or timezone.now()).astimezone(UTC).date()
    return date(today.year - (today.month == 1), (today.month - 2) % 12 + 1, 1)


def _period_check(period: date, *, to_date: bool = False) -> None:
    """A month that has ended; with `to_date` also the month now under way (a statement of it so far)."""
    if period.day != 1:
        raise InvalidPeriod("The period is a month: give its first day.", field="period")
    start, end = period_bounds(period)
    now = timezone.now()
    if to_date and start > now:
        raise InvalidPeriod(f"{period:%Y-%m} has not started.", field="period")
    if not to_date and end > now:
        raise InvalidPeriod(f"{period:%Y-%m} has not ended: a month is invoiced once it is over (--to-date makes "
                            "a draft statement of it so far).", field="period")


# --- generation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generated:
    """What a run did for one tenant: `outcome` created, exists (made before: nothing changed) or empty
    (nothing to bill: no invoice)."""

    tenant: Tenant
    outcome: str
    invoice: Invoice | None = None


def _lines(*, tenant: Tenant, period: date, currency: str) -> list[dict]:
    """The invoice's lines, unnumbered: messages captured in the month by country and type, then rental and leases
    (one line each, from the ledger's charges of the month), then each adjustment."""
    start, end = period_bounds(period)
    lines = []
    for row in hooks.message_usage_captured(tenant=tenant, start=start, end=end, currency=currency):
        kind = _TYPE_LABELS.get(row["message_type"], row["message_type"].title())
        unit = (row["amount"] / row["segments"]).quantize(Decimal("0.000001")) if row["segments"] else None
        lines.append({"kind": InvoiceLineKind.MESSAGES, "country": row["country"],
                      "message_type": row["message_type"], "quantity": row["messages"],
                      "segments": row["segments"], "unit_price": unit, "amount": cents(row["amount"]),
                      "description": f"{kind} SMS to {row['country'] or 'other destinations'}"})
    entries = LedgerEntry.objects.filter(tenant=tenant, currency=currency, created_at__gte=start, created_at__lt=end)
    # One line per kind: the charge job writes one entry per number and day (its reason names both), which
    # would be a line per number-day.
    names = {LedgerKind.RENTAL: "Number rental (quantity: number-days)",
             LedgerKind.LEASE: "Number leases, by the hour (quantity: number-days)"}
    charges = (entries.filter(kind__in=list(names)).values("kind").order_by("kind")
               .annotate(entries=Count("pk"), charged=Sum("balance_delta")))
    for row in charges:
        lines.append({"kind": row["kind"], "quantity": row["entries"], "amount": cents(-row["charged"]),
                      "description": names[row["kind"]]})
    for entry in entries.filter(kind=LedgerKind.ADJUSTMENT).order_by("created_at", "pk"):
        lines.append({"kind": InvoiceLineKind.ADJUSTMENT, "quantity": 1, "amount": cents(-entry.balance_delta),
                      "description": f"Adjustment {entry.created_at:%Y-%m-%d}: {entry.reason}"})
    return lines


@tenant_scoped
def invoice_generate(*, tenant: Tenant, period: date, to_date: bool = False) -> Generated:
    """The tenant's invoice for `period` (a month that has ended), made once: a second run, or one at the same
    time, finds the first's and changes nothing (the unique constraint on tenant and period decides the
    race; the loser's transaction is rolled back whole). Nothing to bill: no invoice. Issued at once
    unless INVOICES_ISSUE_ON_GENERATE is off (then a draft).

    `to_date`: a draft statement of the month so far (also the month under way), shown to the tenant and never
    issued; each such run, and the month's real run, replaces it (a to-date draft is the one kind of invoice
    ever deleted: it was never issued, so it has no number)."""
    _period_check(period, to_date=to_date)
    existing = Invoice.objects.filter(tenant=tenant, period=period).first()
    if existing is not None and existing.to_date and existing.is_draft:
        existing.lines.all().delete()
        existing.delete()  # replaced below, in its own transaction
        existing = None
    if existing is not None:
        return Generated(tenant=tenant, outcome="exists", invoice=existing)
    balance = Balance.objects.filter(tenant=tenant).first()
    currency = balance.currency if balance else settings.BILLING_DEFAULT_CURRENCY
    lines = _lines(tenant=tenant, period=period, currency=currency)
    if not lines:
        return Generated(tenant=tenant, outcome="empty")
    # a statement so far: held now (its period has not ended); else at the period's end
    held_at = min(period_bounds(period)[1], timezone.now())
    held = billing_selectors.ledger_held_at(tenant=tenant, at=held_at, currency=currency)
    try:
        with transaction.atomic():
            invoice = _draft_create(tenant=tenant, period=period, balance=balance, currency=currency, lines=lines,
                                    to_date=to_date, held_unsettled=held)
            if settings.INVOICES_ISSUE_ON_GENERATE and not to_date:
                invoice = invoice_issue(tenant=tenant, invoice=invoice)
    except IntegrityError:
        existing = Invoice.objects.filter(tenant=tenant, period=period).first()
        if existing is None:
            raise
        return Generated(tenant=tenant, outcome="exists", invoice=existing)
    return Generated(tenant=tenant, outcome="created", invoice=invoice)


def _draft_create(*, tenant: Tenant, period: date, balance: Balance | None, currency: str,
                  lines: list[dict], to_date: bool = False, held_unsettled: Decimal = Decimal(0)) -> Invoice:
    subtotal = sum((line["amount"] for line in lines), Decimal(0))
    rate = balance.tax_rate if balance else Decimal(0)
    tax = cents(subtotal * rate)
    invoice = Invoice.objects.create(
        tenant=tenant, period=period, currency=currency, issuer=settings.INVOICE_ISSUER_NAME,
        issuer_address=settings.INVOICE_ISSUER_ADDRESS, issuer_tax_id=settings.INVOICE_ISSUER_TAX_ID,
        bill_to_name=(balance.billing_name if balance else "") or tenant.name,
        bill_to_address=balance.billing_address if balance else "", bill_to_tax_id=balance.tax_id if balance else "",
        subtotal=subtotal, tax_rate=rate, tax=tax, total=subtotal + tax, to_date=to_date,
        held_unsettled=held_unsettled)
    InvoiceLine.objects.bulk_create([InvoiceLine(tenant=tenant, invoice=invoice, position=n, **line)
                                     for n, line in enumerate(lines, start=1)])
    return invoice


def invoices_generate(*, period: date, tenant: Tenant | None = None, to_date: bool = False) -> list[Generated]:
    """Each tenant's invoice for `period` (or only `tenant`'s), one tenant per transaction; safe to run twice or
    at the same time as another run (invoice_generate). `to_date`: draft statements of the month so far."""
    _period_check(period, to_date=to_date)
    tenants = [tenant] if tenant is not None else list(accounts_selectors.tenant_list())
    return [invoice_generate(tenant=t, period=period, to_date=to_date) for t in tenants]


# --- issue and status ------------------------------------------------------------------------------


def _number_take(*, issuer: str, series: str, year: int) -> str:
    """The series' next number, e.g. SP-2026-000123. Locks the sequence row until the caller's transaction
    ends, so two issues wait for each other and a rolled-back one gives its number back: no gaps, no repeats."""
    InvoiceSequence.objects.get_or_create(issuer=issuer, series=series, year=year)
    sequence = InvoiceSequence.objects.select_for_update().get(issuer=issuer, series=series, year=year)
    sequence.last += 1
    sequence.save(update_fields=["last"])
    return f"{series}-{year}-{sequence.last:06d}"


@tenant_scoped
def invoice_issue(*, tenant: Tenant, invoice: Invoice, actor: Actor = SYSTEM) -> Invoice:
    """Number and issue a draft (InvoiceNotDraft otherwise); after commit the tenant's owners and billing
    members get an email, and `invoice.issued` goes to the tenant's webhook endpoints (outbox, same
    transaction)."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.DRAFT:
            raise InvoiceNotDraft()
        now = timezone.now()
        invoice.number = _number_take(issuer=invoice.issuer, series=settings.INVOICE_NUMBER_PREFIX,
                                      year=now.year)
        invoice.status, invoice.issued_at = InvoiceStatus.ISSUED, now
        invoice.save(update_fields=["number", "status", "issued_at"])
        audit_record(action="invoice.issued", actor=actor, tenant=tenant, target=invoice,
                     changes={"number": invoice.number, "period": f"{invoice.period:%Y-%m}",
                              "total": str(invoice.total), "currency": invoice.currency})
        events.event_emit(tenant_id=tenant.pk, event_type="invoice.issued", data=invoice_event_data(invoice),
                          timestamp=now, subject=invoice.public_id)
        _issued_email(tenant=tenant, invoice=invoice)
    return invoice


def invoice_event_data(invoice: Invoice) -> dict:
    return {"id": invoice.public_id, "number": invoice.number, "period": f"{invoice.period:%Y-%m}",
            "status": invoice.status, "currency": invoice.currency, "subtotal": str(invoice.subtotal),
            "tax_rate": str(invoice.tax_rate), "tax": str(invoice.tax), "total": str(invoice.total),
            "issued_at": events.iso(invoice.issued_at)}


def _issued_email(*, tenant: Tenant, invoice: Invoice) -> None:
    emails = sorted({m.user.email for m in accounts_selectors.membership_list(tenant=tenant)
                     if m.role in (Role.OWNER, Role.BILLING) and m.user.email})
    if not emails:
        return
    url = settings.PUBLIC_BASE_URL.rstrip("/") + reverse("portal:invoice-detail", args=[invoice.public_id])
    body = render_to_string("emails/invoice_issued.txt", {"tenant": tenant, "invoice": invoice, "url": url})
    subject = f"Invoice {invoice.number} for {invoice.period:%B %Y} from {invoice.issuer}"
    transaction.on_commit(lambda: _mail_send(subject=subject, body=body, emails=emails, number=invoice.number))


def _mail_send(*, subject: str, body: str, emails: list[str], number: str) -> None:
    # After commit: the invoice is issued whatever the mail server says; a failure is logged, not raised, so
    # the monthly run goes on to the next tenant (the invoice stays in the portal, the API and the webhook).
    try:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=emails)
    except Exception:
        logger.exception("invoice %s: the email to the owners and billing members failed", number)


_TRANSITIONS = {InvoiceStatus.PAID: "paid_at", InvoiceStatus.VOID: "voided_at"}


@tenant_scoped
def invoice_status_set(*, tenant: Tenant, invoice: Invoice, status: str, actor: Actor) -> Invoice:
    """issued -> paid or void (final both), by a conditional UPDATE from issued: a second call, or one racing
    it, changes nothing and is refused (InvalidInvoiceTransition)."""
    if status not in _TRANSITIONS:
        raise InvalidInvoiceTransition(field="status")
    now = timezone.now()
    with transaction.atomic():
        moved = Invoice.objects.filter(pk=invoice.pk, status=InvoiceStatus.ISSUED).update(
            status=status, **{_TRANSITIONS[status]: now})
        if not moved:
            raise InvalidInvoiceTransition(field="status")
        invoice.refresh_from_db()
        audit_record(action=f"invoice.{status}", actor=actor, tenant=tenant, target=invoice,
                     changes={"number": invoice.number})
    return invoice


@tenant_scoped
def invoice_draft_delete(*, tenant: Tenant, invoice: Invoice, actor: Actor) -> None:
    """Delete a draft (its period can then be generated again); an issued invoice is never deleted."""
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != InvoiceStatus.DRAFT:
            raise InvoiceNotDraft()
        audit_record(action="invoice.draft_deleted", actor=actor, tenant=tenant, target=invoice,
                     changes={"period": f"{invoice.period:%Y-%m}"})
        invoice.delete()


# --- credit notes ----------------------------------------------------------------------------------


@tenant_scoped
def credit_note_create(*, tenant: Tenant, invoice: Invoice, reason: str, lines: Sequence[tuple[str, Decimal]],
                       actor: Actor) -> CreditNote:
    """A credit note correcting an issued (or paid) invoice: `lines` of (description, amount), an amount
    negative to lower what is owed; tax at the invoice's rate; numbered in the issuer's credit note series.
    Under the invoice's row lock, so its credit notes together never take its total below zero."""
    reason = (reason or "").strip()
    clean = [((text or "").strip(), amount) for text, amount in lines]
    if not reason or not clean or any(not text or not _is_amount(amount) for text, amount in clean):
        raise InvalidCreditNote(field="lines" if reason else "reason")
    subtotal = sum((amount for _text, amount in clean), Decimal(0))
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status not in (InvoiceStatus.ISSUED, InvoiceStatus.PAID):
            raise CreditNoteRefused()
        tax = cents(subtotal * invoice.tax_rate)
        credited = CreditNote.objects.filter(invoice=invoice).aggregate(total=Sum("total"))["total"] or 0
        if invoice.total + credited + subtotal + tax < 0:
            raise InvalidCreditNote("The credit notes would take the invoice below zero.", field="lines")
        now = timezone.now()
        note = CreditNote.objects.create(
            tenant=tenant, invoice=invoice, issuer=invoice.issuer, currency=invoice.currency, reason=reason,
            number=_number_take(issuer=invoice.issuer, series=settings.CREDIT_NOTE_NUMBER_PREFIX, year=now.year),
            subtotal=subtotal, tax_rate=invoice.tax_rate, tax=tax, total=subtotal + tax, issued_at=now,
            actor=actor.label)
        CreditNoteLine.objects.bulk_create([
            CreditNoteLine(tenant=tenant, credit_note=note, position=n, description=text, amount=amount)
            for n, (text, amount) in enumerate(clean, start=1)])
        audit_record(action="credit_note.issued", actor=actor, tenant=tenant, target=note,
                     changes={"number": note.number, "invoice": invoice.number, "total": str(note.total),
                              "reason": reason})
    return note


def _is_amount(amount) -> bool:
    return (isinstance(amount, Decimal) and amount.is_finite() and amount != 0
            and amount.as_tuple().exponent >= -2 and abs(amount) < Decimal("1e12"))


def invoice_net_total(*, invoice: Invoice) -> Decimal:
    """The invoice's total with its credit notes: what it finally bills."""
    return invoice.total + sum((note.total for note in invoice.credit_notes.all()), Decimal(0))

