"""Billing's reads: balances, the ledger, the prices in force, today's spend against the daily caps, and the invariant
(balance = sum of ledger)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from numbers.hooks import NumberPriceShown
from typing import TYPE_CHECKING

import phonenumbers
from django.conf import settings
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts import selectors as accounts_selectors
from billing import hooks
from billing.errors import InvoiceNotFound
from billing.models import (
    ApiKeySpend,
    Balance,
    CreditNote,
    Invoice,
    InvoiceStatus,
    LedgerEntry,
    LedgerKind,
    NumberPrice,
    Price,
)
from billing.money import money_text
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


def balance_spent_today(*, balance: Balance) -> Decimal:
    """What the tenant's live sends held today (UTC), less today's releases of them: the figure its daily cap is
    checked against (0 when the row's count is of an earlier day)."""
    return balance.spent_today if balance.spent_day == timezone.now().date() else Decimal(0)


@dataclass(frozen=True)
class KeySpend:
    """An API key with a daily spend cap, and what it held today (UTC)."""

    name: str
    prefix: str
    cap: Decimal
    spent_today: Decimal


@tenant_scoped
def api_key_spend_today(*, tenant: Tenant) -> list[KeySpend]:
    """The tenant's keys that have a daily spend cap, with today's spend of each (account managers' view)."""
    keys = list(accounts_selectors.api_key_list(tenant=tenant).filter(daily_spend_cap__isnull=False).order_by("name"))
    spent = dict(ApiKeySpend.objects.filter(tenant=tenant, day=timezone.now().date(), api_key_id__in=[k.pk for k in keys])
                 .values_list("api_key_id", "amount"))
    return [KeySpend(name=k.name, prefix=k.prefix, cap=k.daily_spend_cap, spent_today=spent.get(k.pk, Decimal(0)))
            for k in keys]


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
def ledger_captures_between(*, tenant: Tenant, start: datetime, end: datetime) -> QuerySet[LedgerEntry]:
    """The tenant's captures made from `start` (included) to `end` (excluded): the messages an invoice of that
    period bills (a message is billed in the month its hold is captured, whenever it was accepted), with what
    each was charged (`-balance_delta`: its capture may be repriced, billing/services.py)."""
    return LedgerEntry.objects.filter(tenant=tenant, kind=LedgerKind.CAPTURE, created_at__gte=start, created_at__lt=end)


@tenant_scoped
def ledger_held_at(*, tenant: Tenant, at: datetime, currency: str) -> Decimal:
    """What the tenant had held for messages not yet settled (captured or released) at the instant `at`: the sum
    of its ledger's reserved deltas before it (holds add, settlements take away). One query."""
    held = (LedgerEntry.objects.filter(tenant=tenant, currency=currency, created_at__lt=at)
            .aggregate(held=Sum("reserved_delta"))["held"])
    return Decimal(held or 0).quantize(MICRO)


@tenant_scoped
def ledger_released_message_ids(*, tenant: Tenant) -> QuerySet:
    """The keys of the tenant's messages whose hold was released (never charged), as a subquery."""
    return LedgerEntry.objects.filter(tenant=tenant, kind=LedgerKind.RELEASE).values("message_id")


def ledger_releases_all() -> QuerySet[LedgerEntry]:
    """Every tenant's release entries (one per message whose hold was released: never charged), for platform
    reports in admin (messaging's margins) that correlate them with messages by `message_id`."""
    # unscoped: a platform report over every tenant, for account managers
    return LedgerEntry.unscoped.filter(kind=LedgerKind.RELEASE, message_id__isnull=False)


def _number_prices_in_force(*, tenant_id: int, currency: str, day: date) -> dict[tuple[str, str], NumberPrice]:
    """{(number type, country): the row in force on `day`}: the tenant's own row over the default one, the
    latest `effective_from` on or before `day` within each list. One query."""
    # unscoped: the default list (no tenant) and the tenant's own, nothing else
    rows = NumberPrice.unscoped.filter(Q(tenant__isnull=True) | Q(tenant_id=tenant_id), currency=currency,
                                       effective_from__lte=day).order_by("effective_from", "pk")
    chosen: dict[tuple[str, str], NumberPrice] = {}
    for row in rows:
        key = (row.number_type, row.country)
        current = chosen.get(key)
        # a later row of the same list takes over; the tenant's own row overrides every default one
        if current is None or current.tenant_id == row.tenant_id or row.tenant_id is not None:
            chosen[key] = row
    return chosen


def tenant_currency(*, tenant_id: int) -> str:
    """The tenant's one currency: its balance's, else BILLING_DEFAULT_CURRENCY (no balance yet)."""
    # unscoped: by the tenant id the caller gives (the charge job, the numbers pages)
    currency = Balance.unscoped.filter(tenant_id=tenant_id).values_list("currency", flat=True).first()
    return currency or settings.BILLING_DEFAULT_CURRENCY


def number_price_get(*, tenant_id: int, number_type: str, country: str, day: date,
                     currency: str | None = None) -> NumberPrice | None:
    """Rates a number: the price of holding a number of `number_type` in `country` on `day`, in the tenant's
    currency (or `currency`): the tenant's own row first, else the default list's; None when neither prices it."""
    currency = currency or tenant_currency(tenant_id=tenant_id)
    return _number_prices_in_force(tenant_id=tenant_id, currency=currency, day=day).get((number_type, country))


def number_prices_effective(*, tenant_id: int, day: date | None = None) -> dict[tuple[str, str], NumberPrice]:
    """Every number price in force for the tenant on `day` (today), by (number type, country)."""
    day = day or timezone.now().date()
    return _number_prices_in_force(tenant_id=tenant_id, currency=tenant_currency(tenant_id=tenant_id), day=day)


@tenant_scoped
def number_prices_listed(*, tenant: Tenant, country: str | None = None) -> list[NumberPrice]:
    """The number prices in force today for the tenant (its own rows over the default's, in its currency), sorted
    by country and type; `country`: that country's only (/v1/pricing)."""
    prices = number_prices_effective(tenant_id=tenant.pk)
    return [prices[key] for key in sorted(prices, key=lambda k: (k[1], k[0])) if not country or key[1] == country]


def number_prices_for_pages(*, tenant: Tenant) -> dict[tuple[str, str], NumberPriceShown]:
    """The numbers pages' and API's prices (numbers.hooks.number_prices, registered in BillingConfig.ready)."""
    return {key: NumberPriceShown(monthly_rental=money_text(row.monthly_rental),
                                  lease_per_hour=money_text(row.lease_per_hour), currency=row.currency)
            for key, row in number_prices_effective(tenant_id=tenant.pk).items()}
MICRO = Decimal("0.000001")
SPEND_DAYS = 30


@tenant_scoped
def ledger_spend_by_day(*, tenant: Tenant, days: int = SPEND_DAYS, today: date | None = None) -> list[dict]:
    """What the tenant was charged for messages on each of the last `days` days (UTC, today included), from its
    ledger's captures: [{"day": date, "amount": Decimal}], oldest first, 0 on a day without any. One query."""
    end = today or timezone.now().date()
    start = end - timedelta(days=days - 1)
    rows = (LedgerEntry.objects.filter(tenant=tenant, kind=LedgerKind.CAPTURE, created_at__gte=_day_start(start),
                                       created_at__lt=_day_start(end + timedelta(days=1)))
            .annotate(day=TruncDate("created_at", tzinfo=UTC)).values("day").order_by()
            .annotate(amount=Sum("balance_delta")))
    # a capture's balance_delta is the charge, negative; SQLite sums these columns as floats: back to 6 places
    spent = {row["day"]: -Decimal(row["amount"]).quantize(MICRO) for row in rows}
    return [{"day": day, "amount": spent.get(day, Decimal(0))}
            for day in (start + timedelta(days=n) for n in range(days))]


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@tenant_scoped
def usage_by_country(*, tenant: Tenant, start: date, end: date) -> list[dict]:
    """The tenant's charged messages from day `start` to day `end` (UTC, both included) per recipient country:
    [{"country", "messages", "segments", "amount"}], the largest amount first. Messages are messaging's: read
    through billing.hooks.message_usage (by country and type), summed over the types here."""
    totals: dict[str, dict] = {}
    for row in hooks.message_usage(tenant=tenant, start=start, end=end):
        total = totals.setdefault(row["country"], {"country": row["country"], "messages": 0, "segments": 0,
                                                   "amount": Decimal(0)})
        for name in ("messages", "segments", "amount"):
            total[name] += row[name]
    return sorted(totals.values(), key=lambda t: (-t["amount"], -t["segments"], t["country"]))



@tenant_scoped
def invoice_list(*, tenant: Tenant) -> QuerySet[Invoice]:
    """The tenant's invoices it may see: issued, paid or void, and a draft statement of a month so far (`to_date`);
    any other draft is the account manager's, not yet sent."""
    return Invoice.objects.filter(tenant=tenant).exclude(status=InvoiceStatus.DRAFT, to_date=False)


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
