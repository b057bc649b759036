"""Charging number rental and leases from numbers' usage rows (NumberUsage), each UTC day of a number once.

Rental is per day held: a day on which the tenant held the number at all (a usage row) costs the monthly
rental divided by that month's days. The number was the tenant's that day, nobody else could have it, and
the amount does not depend on how many seconds the row ends up with. Leases are per second at the hourly
price (seconds / 3600 x lease_per_hour): a usage row sums the seconds of every lease of the number that day
(a lease crossing midnight is split), so the row cannot say how many hours each lease started; by the second
is exact for short verification leases and the same for everyone. Amounts are rounded half up to 6 places,
once per charge.

Each (tenant, number, kind, day) is charged once: the unique constraint on NumberCharge. Two runs at once
insert the same key; the second waits on the index, fails, and skips it. Only complete days are charged: days
before the last UTC midnight, and for a holding the usage job or the sweep has not recorded up to that
midnight yet (numbers.selectors.usage_pending_from), none of its days from the first still open; a release
after the usage job only adds to days from that midnight on. The pending holdings are read before the usage
rows, so a row read is final.

A charge the balance (less what is held, plus the credit limit) does not cover is recorded `owed` with no
ledger entry: the number was used, the debt is kept and shown, and the balance never goes past the credit
limit (the CHECK on it). Each run first collects owed charges, oldest first, as far as the balance covers them.
"""
from __future__ import annotations

import calendar
import logging
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from numbers import selectors as numbers_selectors

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from billing import selectors, services
from billing.models import LedgerKind, NumberCharge, NumberChargeStatus, NumberPrice
from billing.money import MICRO

log = logging.getLogger(__name__)

# The beat job looks back this many days for days not charged yet (a holding the usage job reached late, a
# price added after the fact); `numbers_charge --day` charges any one day.
LOOKBACK_DAYS = 62
HOUR = Decimal(3600)
PAGE = 1000


def charge_amount(*, kind: str, price: NumberPrice, day: date, seconds: int) -> Decimal:
    """The amount of one number-day: the day's share of the monthly rental, or the lease seconds at the
    hourly price; rounded half up to 6 places."""
    if kind == LedgerKind.RENTAL:
        amount = price.monthly_rental / calendar.monthrange(day.year, day.month)[1]
    else:
        amount = price.lease_per_hour * seconds / HOUR
    return amount.quantize(MICRO, rounding=ROUND_HALF_UP)


def number_charges_run(*, now: datetime | None = None, day: date | None = None) -> dict[str, int]:
    """Charge every complete day of number usage not charged yet (`day`: only that day; else the last
    LOOKBACK_DAYS), after collecting owed charges. Returns counts: charged, owed (new charges left owed),
    collected (owed ones paid now), pending (rows of days still open, left for a later run), unpriced (no
    number price: left uncharged until one is added), skipped (charged already, by another run meanwhile).
    Safe to run twice or at once with itself and with releases."""
    now = now or timezone.now()
    cut = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    counts = {"charged": 0, "owed": 0, "collected": owed_charges_collect(), "pending": 0, "unpriced": 0,
              "skipped": 0}
    if day is not None and day >= cut.date():
        return counts  # not complete yet
    pending = numbers_selectors.usage_pending_from(cut=cut)  # first: see the module's docstring
    since = None if day is not None else cut.date() - timedelta(days=LOOKBACK_DAYS)
    # unscoped: the charge job, over every tenant (the unique key's index answers it)
    charged = NumberCharge.unscoped.filter(tenant_id=OuterRef("tenant_id"), number_id=OuterRef("number_id"),
                                           kind=OuterRef("charge_kind"), day=OuterRef("day"))
    rows = numbers_selectors.usage_rows_before(cut=cut, since=since, day=day).filter(~Exists(charged))
    prices, last = _Prices(), 0
    while True:
        page = list(rows.filter(pk__gt=last).order_by("pk")[:PAGE])
        for row in page:
            counts[_row_charge(row=row, pending=pending, prices=prices)] += 1
        if len(page) < PAGE:
            break
        last = page[-1].pk
    if counts["unpriced"]:
        log.warning("number_charges.unpriced", extra={"rows": counts["unpriced"], "cut": cut.isoformat()})
    return counts


def _row_charge(*, row, pending: dict, prices: _Prices) -> str:
    first_open = pending.get((row.tenant_id, row.number_id, row.kind))
    if first_open is not None and row.day >= first_open:
        return "pending"
    price = prices.get(tenant_id=row.tenant_id, number_type=row.number_type, country=row.number_country, day=row.day)
    if price is None:
        return "unpriced"
    return _charge(row=row, price=price)


class _Prices:
    """The number prices in force per tenant and day, read once each in a run."""

    def __init__(self) -> None:
        self._read: dict[tuple[int, date], dict] = {}
        self._currency: dict[int, str] = {}

    def get(self, *, tenant_id: int, number_type: str, country: str, day: date) -> NumberPrice | None:
        if (tenant_id, day) not in self._read:
            currency = self._currency.setdefault(tenant_id, selectors.tenant_currency(tenant_id=tenant_id))
            self._read[(tenant_id, day)] = selectors._number_prices_in_force(tenant_id=tenant_id, currency=currency,
                                                                             day=day)
        return self._read[(tenant_id, day)].get((number_type, country))


def _charge(*, row, price: NumberPrice) -> str:
    """Record the charge of one usage row and debit it, in one transaction: 'charged', 'owed', or 'skipped'
    when another run recorded the same key first (the unique constraint)."""
    amount = charge_amount(kind=row.charge_kind, price=price, day=row.day, seconds=row.seconds)
    try:
        with transaction.atomic():
            # unscoped: the charge job writes for the usage row's tenant
            charge = NumberCharge.unscoped.create(
                tenant_id=row.tenant_id, number_id=row.number_id, kind=row.charge_kind, day=row.day,
                seconds=row.seconds, amount=amount, currency=price.currency, price=price)
            return "charged" if _collect(charge) else "owed"
    except IntegrityError:
        return "skipped"


def _collect(charge: NumberCharge) -> bool:
    """Debit an owed charge (in the caller's transaction, which holds its row): True when paid."""
    entry = None
    if charge.amount > 0:
        entry = services.balance_charge(tenant_id=charge.tenant_id, kind=charge.kind, amount=charge.amount,
                                        currency=charge.currency, reason=_reason(charge))
        if entry is None:
            log.warning("number_charge.owed", extra={"tenant_id": charge.tenant_id, "charge_id": charge.pk,
                                                     "amount": str(charge.amount)})
            return False
    # unscoped: the charge just recorded or locked, by id
    NumberCharge.unscoped.filter(pk=charge.pk, status=NumberChargeStatus.OWED).update(
        status=NumberChargeStatus.CHARGED, ledger_entry=entry, charged_at=timezone.now())
    return True


def _reason(charge: NumberCharge) -> str:
    what = "rental" if charge.kind == LedgerKind.RENTAL else f"leases, {charge.seconds} s"
    return f"number {charge.number_id} {what} on {charge.day.isoformat()}"


def owed_charges_collect() -> int:
    """Collect owed charges, oldest first, as far as each tenant's balance covers them now; returns how many
    were paid. Each one is locked (skip_locked: another run takes the others) and paid once: its status moves
    from owed in the transaction of its ledger entry. A tenant's debts are paid in order: after one its
    balance refuses, its later ones wait for the next run."""
    paid, short = 0, set()
    while True:
        with transaction.atomic():
            # unscoped: the charge job, over every tenant's owed charges
            owed = (NumberCharge.unscoped.filter(status=NumberChargeStatus.OWED).exclude(tenant_id__in=short)
                    .order_by("created_at", "pk").select_for_update(skip_locked=True).first())
            if owed is None:
                return paid
            if _collect(owed):
                paid += 1
            else:
                short.add(owed.tenant_id)
