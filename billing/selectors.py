"""Billing's reads: balances, the ledger, the prices in force, and the invariant (balance = sum of ledger)."""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import phonenumbers
from django.conf import settings
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from billing.errors import InvoiceNotFound
from billing.models import Balance, CreditNote, Invoice, InvoiceStatus, LedgerEntry, LedgerKind, Price
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

# round(.., 6): exact on PostgreSQL's numeric; on SQLite, whose sums of these columns are floating point, it
# compares at the 6 places every amount has.
UNBALANCED_SQL = """
    SELECT b.tenant_id, b.balance, b.reserved, l.balance, l.reserved
    FROM billing_balance b
    LEFT JOIN (SELECT tenant_id, round(sum(balance_delta), 6) AS balance, round(sum(reserved_delta), 6) AS reserved
               FROM billing_ledgerentry GROUP BY tenant_id) l ON l.tenant_id = b.tenant_id
    WHERE round(b.balance, 6) <> coalesce(l.balance, 0) OR round(b.reserved, 6) <> coalesce(l.reserved, 0)
       OR b.balance + b.credit_limit < b.reserved
"""


@tenant_scoped
def balance_get(*, tenant: Tenant) -> Balance | None:
    return Balance.objects.filter(tenant=tenant).first()


def balance_figures(*, tenant: Tenant) -> dict:
    """What /v1/balance shows: balance, reserved, credit_limit, currency, and `available` (what live sends may
    still hold: the balance less what is held, plus the credit limit). Zeros for a tenant never topped up."""
    balance = balance_get(tenant=tenant)
    zero = Decimal(0)
    if balance is None:
        figures = {"balance": zero, "reserved": zero, "credit_limit": zero,
                   "currency": settings.BILLING_DEFAULT_CURRENCY}
    else:
        figures = {"balance": balance.balance, "reserved": balance.reserved, "credit_limit": balance.credit_limit,
                   "currency": balance.currency}
    return {**figures, "available": figures["balance"] - figures["reserved"] + figures["credit_limit"]}


def balances_unbalanced() -> list[tuple]:
    """Every balance whose cached figures differ from the sums of its ledger, or past its credit limit:
    (tenant id, balance, reserved, ledger balance, ledger reserved). Must be empty (a platform check, over
    every tenant, by raw SQL)."""
    with connection.cursor() as cursor:
        cursor.execute(UNBALANCED_SQL)
        return cursor.fetchall()


@tenant_scoped
def ledger_list(*, tenant: Tenant) -> QuerySet[LedgerEntry]:
    """The tenant's ledger entries (the API pages them newest first)."""
    return LedgerEntry.objects.filter(tenant=tenant)


@tenant_scoped
def prices_effective(*, tenant: Tenant, country: str | None = None) -> list[Price]:
    """The prices in force today for the tenant, in its currency: its own list's rows, and the default list's
    for every key its own list does not price (a key: destination, operator, type, tier). Of a key's rows the
    latest `effective_from` on or before today; sorted by destination. `country`: that country's rows and the
    prefixes of its country calling code."""
    today = timezone.now().date()
    balance = balance_get(tenant=tenant)
    currency = balance.currency if balance else settings.BILLING_DEFAULT_CURRENCY
    rows = Price.unscoped.filter(  # unscoped: the default list (no tenant) and the tenant's own, nothing else
        Q(tenant__isnull=True) | Q(tenant=tenant), currency=currency, effective_from__lte=today)
    if country:
        code = str(phonenumbers.country_code_for_region(country))
        rows = rows.filter(Q(country=country) | Q(country="", prefix__startswith=code))
    chosen: dict[tuple, Price] = {}
    for row in rows.order_by("effective_from", "pk"):
        key = (row.prefix, row.country, row.operator, row.message_type, row.min_monthly_volume)
        current = chosen.get(key)
        # a later row of the same list takes over; the tenant's own row overrides every default one
        if current is None or current.tenant_id == row.tenant_id or row.tenant_id is not None:
            chosen[key] = row
    return sorted(chosen.values(), key=lambda r: (r.country or "~", r.prefix, r.message_type, r.min_monthly_volume,
                                                  r.operator))


@tenant_scoped
def ledger_captured_message_ids(*, tenant: Tenant) -> QuerySet:
    """The keys of the tenant's messages whose hold was captured (charged: they went to a carrier), as a subquery."""
    return LedgerEntry.objects.filter(tenant=tenant, kind=LedgerKind.CAPTURE).values("message_id")


@tenant_scoped
def ledger_released_message_ids(*, tenant: Tenant) -> QuerySet:
    """The keys of the tenant's messages whose hold was released (never charged), as a subquery."""
    return LedgerEntry.objects.filter(tenant=tenant, kind=LedgerKind.RELEASE).values("message_id")


@tenant_scoped
def invoice_list(*, tenant: Tenant) -> QuerySet[Invoice]:
    """The tenant's invoices it may see: issued, paid or void (a draft is the account manager's, not yet sent)."""
    return Invoice.objects.filter(tenant=tenant).exclude(status=InvoiceStatus.DRAFT)


@tenant_scoped
def invoice_get(*, tenant: Tenant, public_id: str) -> Invoice:
    """One of the tenant's invoices by id, with its lines and credit notes (and theirs); another tenant's, or a
    draft, answers like a missing one (InvoiceNotFound)."""
    notes = Prefetch("credit_notes", queryset=CreditNote.objects.order_by("issued_at", "pk").prefetch_related("lines"))
    invoice = invoice_list(tenant=tenant).filter(public_id=public_id).prefetch_related("lines", notes).first()
    if invoice is None:
        raise InvoiceNotFound()
    return invoice


@tenant_scoped
def credit_note_get(*, tenant: Tenant, invoice: Invoice, public_id: str) -> CreditNote:
    """One of the invoice's credit notes by id, with its lines; anything else answers like a missing invoice."""
    note = (CreditNote.objects.filter(tenant=tenant, invoice=invoice, public_id=public_id)
            .select_related("invoice").prefetch_related("lines").first())
    if note is None:
        raise InvoiceNotFound()
    return note
