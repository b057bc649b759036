"""Billing's use cases that write money: top-ups and adjustments, the hold at accept and its settlement, and the
debits of number charges (billing/charges.py decides what to charge).

Every change of a balance is one conditional UPDATE of its Balance row and its LedgerEntry rows in the same
transaction (ARCHITECTURE.md "Money"): a hold that the balance and credit limit do not cover changes no row
and is refused, so concurrent sends can never overdraw; the CHECK on Balance refuses it in the database too.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from billing import alerts, hooks, rating
from billing.alerts import LowBalance
from billing.errors import InsufficientBalance, SpendLimitReached
from billing.models import ApiKeySpend, Balance, LedgerEntry, LedgerKind, MonthlyVolume, NumberPrice
from smsportal.errors import DomainError
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant


CAPTURE, RELEASE = LedgerKind.CAPTURE.value, LedgerKind.RELEASE.value  # the kinds of holds_settle
destination_country = rating.destination_country  # for a Settlement's `country`


class InvalidAmount(DomainError):
    code = "invalid_amount"
    message = "The amount must be a non-zero decimal with at most 6 places."


class InvalidThreshold(DomainError):
    code = "invalid_low_balance_threshold"
    message = "The threshold must be 0 or more, below 1,000,000,000,000, with at most 6 decimal places."


@dataclass(frozen=True)
class Settlement:
    """A billed message leaving the accept: its id, tenant and price (messaging's lifecycle passes these)."""

    message_id: int
    tenant_id: int
    amount: Decimal
    currency: str
    country: str = ""  # the destination's (rating.destination_country): a capture counts in its month's volume
    segments: int = 0
    # The key that sent it and the day (UTC) it was held: a release that day gives the hold back to that key's
    # daily spend (ApiKeySpend) and to the tenant's (Balance.spent_today); a release on a later day does not.
    api_key_id: int | None = None
    held_on: date | None = None
    # The recipient and type: a capture is repriced when the recipient's operator has a price of its own
    # (capture_charges); the accept could not know the operator.
    to: str = ""
    message_type: str = ""


@tenant_scoped
def balance_get_or_create(*, tenant: Tenant) -> Balance:
    """The tenant's balance row (in BILLING_DEFAULT_CURRENCY when it is new)."""
    balance, created = Balance.objects.get_or_create(tenant=tenant,
                                                     defaults={"currency": settings.BILLING_DEFAULT_CURRENCY})
    if created:
        transaction.on_commit(rating.price_cache_clear)  # rating reads the tenant's currency from its cache
    return balance


@tenant_scoped
def balance_credit(*, tenant: Tenant, amount: Decimal, reason: str, actor: Actor) -> LedgerEntry:
    """Add `amount` (a top-up) or take it (negative: an adjustment) with its reason, audited.

    An adjustment past the credit limit is refused (InsufficientBalance), in the same conditional UPDATE."""
    if not amount.is_finite() or amount == 0 or amount.as_tuple().exponent < -6:
        raise InvalidAmount(field="amount")
    if not reason.strip():
        raise DomainError("Give the reason for the change.", field="reason", code="reason_required")
    with transaction.atomic():
        balance = balance_get_or_create(tenant=tenant)
        low = _balance_move(tenant_id=tenant.pk, amount=amount)
        if not low:
            raise InsufficientBalance("That adjustment would take the balance past its credit limit.",
                                      field="amount")
        alerts.balance_low_check(low=low)
        entry = LedgerEntry.objects.create(
            tenant=tenant, kind=LedgerKind.TOPUP if amount > 0 else LedgerKind.ADJUSTMENT, balance_delta=amount,
            currency=balance.currency, reason=reason.strip(), actor=actor.label or str(actor.user or ""))
        audit_record(action="balance.credit", actor=actor, tenant=tenant, target=tenant,
                     changes={"amount": str(amount), "currency": balance.currency, "reason": reason.strip()})
    return entry


# A credit (amount > 0) that brings available back to the threshold or above re-arms the alert; a debit
# (amount < 0) must leave available >= 0 (the credit limit), as the CHECK on the row demands.
_MOVE_SQL = """
    UPDATE billing_balance SET balance = balance + %(amount)s, updated_at = %(now)s,
           low_balance_alerted_at = CASE
               WHEN %(amount)s > 0 AND (low_balance_threshold IS NULL
                    OR balance + %(amount)s + credit_limit - reserved >= low_balance_threshold) THEN NULL
               ELSE low_balance_alerted_at END
    WHERE tenant_id = %(tenant)s AND balance + %(amount)s + credit_limit - reserved >= 0
    RETURNING balance + credit_limit - reserved, low_balance_threshold, low_balance_alerted_at IS NULL
"""


def _balance_move(*, tenant_id: int, amount: Decimal) -> LowBalance | None:
    """Add `amount` to the tenant's balance (negative: take it) unless that would pass the credit limit: one
    conditional UPDATE; the figures after it for the low-balance check, or None when refused. In the caller's
    transaction, which writes the ledger entry."""
    if connection.vendor != "postgresql":
        return _balance_move_portable(tenant_id=tenant_id, balance=amount)
    with connection.cursor() as cursor:
        cursor.execute(_MOVE_SQL, {"amount": amount, "now": timezone.now(), "tenant": tenant_id})
        row = cursor.fetchone()
    return row and LowBalance(tenant_id=tenant_id, available=row[0], threshold=row[1], armed=row[2])


def number_price_upsert(*, tenant: Tenant | None, number_type: str, country: str, currency: str,
                        monthly_rental: Decimal, lease_per_hour: Decimal, effective_from) -> tuple[NumberPrice, bool]:
    """A number price of a list (`tenant` None: the default), upserted by its key (type, country, currency,
    effective_from); returns (row, created). Idempotent."""
    # unscoped: the default list has no tenant; a tenant's row is keyed by the tenant given
    return NumberPrice.unscoped.update_or_create(
        tenant=tenant, number_type=number_type, country=country.upper(), currency=currency.upper(),
        effective_from=effective_from, defaults={"monthly_rental": monthly_rental, "lease_per_hour": lease_per_hour})


THRESHOLD_MAX = Decimal(10) ** 12  # what Balance.low_balance_threshold holds (18 digits, 6 places)


@tenant_scoped
def balance_low_threshold_set(*, tenant: Tenant, threshold: Decimal | None, actor: Actor) -> Balance:
    """Set the tenant's low-balance threshold (None: clear it, no alert), as its owners and billing members do in
    the portal's Billing settings: 0 or more, at most 6 places. A change re-arms the alert (the next debit below
    the new threshold alerts) and is audited (`balance.low_balance_threshold_changed`); the same value changes
    nothing. Raises InvalidThreshold."""
    if threshold is not None and (not threshold.is_finite() or threshold < 0 or threshold >= THRESHOLD_MAX
                                  or threshold.as_tuple().exponent < -6):
        raise InvalidThreshold(field="low_balance_threshold")
    with transaction.atomic():
        balance_get_or_create(tenant=tenant)
        balance = Balance.objects.select_for_update().get(tenant=tenant)
        before = balance.low_balance_threshold
        if before == threshold:
            return balance
        Balance.objects.filter(pk=balance.pk).update(low_balance_threshold=threshold, low_balance_alerted_at=None,
                                                     updated_at=timezone.now())
        balance.low_balance_threshold, balance.low_balance_alerted_at = threshold, None
        audit_record(action="balance.low_balance_threshold_changed", actor=actor, tenant=tenant, target=tenant,
                     changes={"low_balance_threshold": [None if before is None else str(before),
                                                        None if threshold is None else str(threshold)],
                              "currency": balance.currency})
    return balance


def balance_low_rearm(*, tenant_id: int) -> None:
    """Re-arm the low-balance alert (its threshold changed): the next debit below the threshold alerts."""
    # unscoped: the admin's balance, by its tenant id
    Balance.unscoped.filter(tenant_id=tenant_id).update(low_balance_alerted_at=None)


def balance_charge(*, tenant_id: int, kind: str, amount: Decimal, currency: str, reason: str) -> LedgerEntry | None:
    """Debit `amount` (> 0) for a number's rental or lease (`kind`) with its ledger entry, in the caller's
    transaction, unless the balance, less what is held, plus the credit limit does not cover it: then None and
    nothing changes (the CHECK on the row would refuse it anyway). A debit that takes available below the
    low-balance threshold raises the alert once (billing/alerts.py)."""
    low = _balance_move(tenant_id=tenant_id, amount=-amount)
    if not low:
        return None
    # unscoped: the charge job debits the tenant it names
    entry = LedgerEntry.unscoped.create(tenant_id=tenant_id, kind=kind, balance_delta=-amount, currency=currency,
                                        reason=reason, actor="system")
    alerts.balance_low_check(low=low)
    return entry


# What the low-balance check (billing/alerts.py) needs from a debit's UPDATE, read from its RETURNING: the
# new available, the threshold and whether the alert is armed. No extra query on the send path.
LOW_RETURNING = ("balance + credit_limit - reserved AS available, low_balance_threshold, "
                 "low_balance_alerted_at IS NULL AS armed")

# Today's spend rides on the balance row (spent_day, spent_today), so the cap is checked and counted in the same
# conditional UPDATE as the hold: concurrent holds wait for the row lock and re-check its new values.
_HOLD_SQL = f"""
    WITH b AS (
        UPDATE billing_balance SET reserved = reserved + %(amount)s, updated_at = %(now)s, spent_day = %(day)s,
               spent_today = CASE WHEN spent_day = %(day)s THEN spent_today ELSE 0 END + %(amount)s
        WHERE tenant_id = %(tenant)s AND currency = %(currency)s
          AND balance + credit_limit - reserved >= %(amount)s
          AND (daily_spend_cap IS NULL
               OR CASE WHEN spent_day = %(day)s THEN spent_today ELSE 0 END + %(amount)s <= daily_spend_cap)
        RETURNING tenant_id, {LOW_RETURNING}
    )
    INSERT INTO billing_ledgerentry (tenant_id, kind, balance_delta, reserved_delta, currency, messages, reason,
                                     actor, created_at)
    SELECT tenant_id, 'hold', 0, %(amount)s, %(currency)s, %(messages)s, '', '', %(now)s FROM b
    RETURNING id, (SELECT available FROM b), (SELECT low_balance_threshold FROM b), (SELECT armed FROM b)
"""  # noqa: S608 - LOW_RETURNING is a constant; the values are parameters

# A key's spend of the day: the conditional DO UPDATE locks the key's row and re-checks, so concurrent sends of
# one key cannot pass its cap together (a first insert that collides waits on the unique index, then updates).
_KEY_SPEND_SQL = """
    INSERT INTO billing_apikeyspend (tenant_id, api_key_id, day, amount)
    SELECT %(tenant)s, %(key)s, %(day)s, %(amount)s WHERE %(amount)s <= %(cap)s
    ON CONFLICT (api_key_id, day) DO UPDATE SET amount = billing_apikeyspend.amount + EXCLUDED.amount
    WHERE billing_apikeyspend.amount + EXCLUDED.amount <= %(cap)s
    RETURNING id
"""


def balance_hold(*, tenant_id: int, amount: Decimal, currency: str, messages: int, api_key_id: int | None = None,
                 api_key_cap: Decimal | None = None) -> None:
    """Hold `amount` for an accept of `messages` live messages, in the caller's transaction: one statement on
    PostgreSQL (the conditional UPDATE of the balance row and its ledger entry). Raises InsufficientBalance
    (402) when the balance, less what is held, plus the credit limit does not cover it, and SpendLimitReached
    (402) when it would take the day's holds (UTC, less that day's releases) past the tenant's daily spend cap,
    or the key's (`api_key_cap`: one more statement, only for a key with a cap). Nothing is written then (the
    caller's transaction rolls back the key's count).

    The balance row stays locked until the caller commits: concurrent sends of one tenant wait for each other
    only for the rest of that transaction (the message's insert), never longer."""
    now = timezone.now()
    params = {"amount": amount, "currency": currency, "tenant": tenant_id, "messages": messages, "now": now,
              "day": now.date(), "key": api_key_id, "cap": api_key_cap}
    field = "to" if messages == 1 else "messages"
    if api_key_cap is not None and not _key_spend_count(params):
        raise SpendLimitReached("These messages would take today's spend (UTC) of this API key past its daily "
                                "spend cap.", field=field)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_HOLD_SQL, params)
            row = cursor.fetchone()
        low = row and LowBalance(tenant_id=tenant_id, available=row[1], threshold=row[2], armed=row[3])
    else:
        low = _hold_portable(params)
    if not low:
        raise _hold_refusal(tenant_id=tenant_id, amount=amount, day=params["day"], field=field)
    alerts.balance_low_check(low=low)


# The same hold as CTEs of a single send's one INSERT statement (messaging/accept/store.py): `h` takes the hold on
# the balance row (RETURNING a row only when taken), `hl` writes its ledger entry. Server-bound, so every value is
# cast. The row lock lasts only that statement: a live single send needs no BEGIN and COMMIT around it.
_HOLD_CTES = """
        h AS (
            UPDATE billing_balance SET reserved = reserved + %s::numeric, updated_at = %s::timestamptz,
                   spent_day = %s::date,
                   spent_today = CASE WHEN spent_day = %s::date THEN spent_today ELSE 0 END + %s::numeric,
                   low_balance_alerted_at = CASE
                       WHEN low_balance_alerted_at IS NULL AND low_balance_threshold IS NOT NULL
                            AND balance + credit_limit - reserved - %s::numeric < low_balance_threshold
                       THEN %s::timestamptz ELSE low_balance_alerted_at END
            WHERE tenant_id = %s::bigint AND currency = %s::text
              AND balance + credit_limit - reserved >= %s::numeric
              AND (daily_spend_cap IS NULL
                   OR CASE WHEN spent_day = %s::date THEN spent_today ELSE 0 END + %s::numeric <= daily_spend_cap)
              {gate}
            RETURNING tenant_id, balance + credit_limit - reserved AS available,
                      low_balance_alerted_at IS NOT DISTINCT FROM updated_at AS raised
        ),
        hl AS (
            INSERT INTO billing_ledgerentry (tenant_id, kind, balance_delta, reserved_delta, currency, messages,
                                             reason, actor, created_at)
            SELECT tenant_id, 'hold', 0, %s::numeric, %s::text, %s::integer, '', '', %s::timestamptz FROM h
        )"""


@dataclass(frozen=True)
class HoldStatement:
    """A hold to be taken by the insert's own statement (balance_hold_statement): `sql` gives its CTEs and
    `params` their parameters; `refusal` says why, when the statement wrote nothing for want of money."""

    params: list
    tenant_id: int
    amount: Decimal

    now: datetime

    # The CTE `h` returns a row when the hold was taken (messaging/accept/store.py gates the message on it).
    # What the statement answers for the hold, after its own columns: what it left available, and whether it took
    # the low-balance alert's marker (this hold crossed the threshold: set with updated_at, to the same moment).
    outputs = "(SELECT available FROM h), (SELECT raised FROM h)"

    @staticmethod
    def sql(*, after: str | None = None) -> str:
        """The CTEs; with `after` (an earlier CTE's name) the hold is taken only when that one returned a row."""
        gate = f"AND EXISTS (SELECT 1 FROM {after})" if after else ""  # noqa: S608 (a CTE name of ours)
        return _HOLD_CTES.format(gate=gate)

    def taken(self, outputs: Sequence) -> None:
        """After the statement took the hold: its `outputs` values. When it crossed the low-balance threshold it
        took the alert's marker in the same UPDATE (so exactly the crossing send raises it, however many race),
        and the alert goes out now; otherwise nothing is asked."""
        available, raised = outputs
        if raised:
            alerts.balance_low_announce(tenant_id=self.tenant_id, available=available, at=self.now)

    def refusal(self, *, field: str = "to") -> DomainError:
        return _hold_refusal(tenant_id=self.tenant_id, amount=self.amount, day=timezone.now().date(), field=field)


def balance_hold_statement(*, tenant_id: int, amount: Decimal, currency: str, messages: int,
                           api_key_cap: Decimal | None = None) -> HoldStatement | None:
    """balance_hold as CTEs of the caller's one statement (PostgreSQL, a single send), or None when it cannot be:
    a key with a daily spend cap counts in another row first (balance_hold: a transaction). The statement must
    write the message only when the CTE `h` returned a row, and nothing else of the hold is written when not."""
    if api_key_cap is not None or connection.vendor != "postgresql":
        return None
    now = timezone.now()
    day = now.date()
    return HoldStatement(params=[amount, now, day, day, amount, amount, now, tenant_id, currency, amount, day, amount,
                                 amount, currency, messages, now], tenant_id=tenant_id, amount=amount, now=now)


def _key_spend_count(params: dict) -> bool:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_KEY_SPEND_SQL, params)
            return cursor.fetchone() is not None
    # SQLite: one writer at a time; the same rule by the ORM.
    # unscoped: the accept pipeline counts for the tenant and key it names
    row = ApiKeySpend.unscoped.filter(api_key_id=params["key"], day=params["day"]).first()
    spent = (row.amount if row else Decimal(0)) + params["amount"]
    if spent > params["cap"]:
        return False
    # unscoped: as above
    ApiKeySpend.unscoped.update_or_create(api_key_id=params["key"], day=params["day"],
                                          defaults={"tenant_id": params["tenant"], "amount": spent})
    return True


def _hold_refusal(*, tenant_id: int, amount: Decimal, day, field: str) -> DomainError:
    """Why a hold changed no row (the refusal path only: one read): past the daily cap, else not covered."""
    # unscoped: the accept pipeline's tenant
    row = Balance.unscoped.filter(tenant_id=tenant_id).first()
    if row is not None and row.daily_spend_cap is not None:
        spent = row.spent_today if row.spent_day == day else Decimal(0)
        if spent + amount > row.daily_spend_cap:
            return SpendLimitReached(field=field)
    return InsufficientBalance(field=field)


def _hold_portable(params: dict) -> LowBalance | None:
    """The hold on SQLite, by the ORM in Decimal (see _balance_move_portable): cap, then balance, then the entry."""
    # unscoped: the accept pipeline holds for the tenant it names (SQLite only)
    row = Balance.unscoped.filter(tenant_id=params["tenant"], currency=params["currency"]).first()
    if row is None:
        return None
    spent = (row.spent_today if row.spent_day == params["day"] else Decimal(0)) + params["amount"]
    if row.daily_spend_cap is not None and spent > row.daily_spend_cap:
        return None
    low = _balance_move_portable(tenant_id=params["tenant"], currency=params["currency"], reserved=params["amount"])
    if not low:
        return None
    # unscoped: as above
    Balance.unscoped.filter(pk=row.pk).update(spent_day=params["day"], spent_today=spent)
    # unscoped: as above
    LedgerEntry.unscoped.create(tenant_id=params["tenant"], kind=LedgerKind.HOLD, reserved_delta=params["amount"],
                                currency=params["currency"], messages=params["messages"], created_at=params["now"])
    return low


# A release on the day of its hold gives it back to that day's spend (the daily caps): the key's ApiKeySpend row
# and the tenant's spent_today, never below 0; a release on a later day gives nothing back to the day it happens
# on. Lock order as the accept's (balance_hold: the key's row, then the balance row): the key rows first, in key
# order (`kl`, whose count the balance lock `locked` waits for), then the balance rows in tenant order, so a
# settlement and an accept of the same tenant cannot deadlock.
_SETTLE_SQL = """
    WITH v AS (
        SELECT * FROM unnest(%(ids)s::bigint[], %(tenants)s::bigint[], %(amounts)s::numeric[], %(currencies)s::text[],
                             %(countries)s::text[], %(segments)s::integer[], %(keys)s::bigint[], %(held)s::date[])
            AS v(message_id, tenant_id, amount, currency, country, segments, api_key_id, held_on)
    ),
    s AS (
        INSERT INTO billing_ledgerentry (tenant_id, kind, balance_delta, reserved_delta, currency, message_id,
                                         messages, reason, actor, created_at)
        SELECT tenant_id, %(kind)s, CASE WHEN %(kind)s = 'capture' THEN -amount ELSE 0 END, -amount, currency,
               message_id, 1, '', '', %(now)s FROM v
        ON CONFLICT (message_id) WHERE kind IN ('capture', 'release') DO NOTHING
        RETURNING message_id, tenant_id, balance_delta, reserved_delta
    ),
    today AS (
        SELECT v.tenant_id, v.api_key_id, v.amount FROM s JOIN v ON v.message_id = s.message_id
        WHERE %(kind)s = 'release' AND v.held_on = %(day)s
    ),
    k AS (SELECT api_key_id, sum(amount) AS amount FROM today WHERE api_key_id IS NOT NULL GROUP BY api_key_id),
    kl AS (
        SELECT a.id, k.amount FROM billing_apikeyspend a JOIN k ON k.api_key_id = a.api_key_id
        WHERE a.day = %(day)s ORDER BY a.api_key_id FOR UPDATE OF a
    ),
    ku AS (
        UPDATE billing_apikeyspend SET amount = greatest(billing_apikeyspend.amount - kl.amount, 0)
        FROM kl WHERE billing_apikeyspend.id = kl.id RETURNING billing_apikeyspend.id
    ),
    t AS (SELECT tenant_id, sum(balance_delta) AS b, sum(reserved_delta) AS r FROM s GROUP BY tenant_id),
    g AS (SELECT tenant_id, sum(amount) AS amount FROM today GROUP BY tenant_id),
    locked AS (
        SELECT id, tenant_id FROM billing_balance WHERE tenant_id IN (SELECT tenant_id FROM t)
          AND (SELECT count(*) FROM ku) >= 0
        ORDER BY tenant_id FOR UPDATE
    ),
    -- A capture counts its segments in the month's volume (tiers). Joined to `locked`: a tenant's volume rows are
    -- written only under its balance row's lock, taken in tenant order, so two settlements cannot deadlock.
    vol AS (
        INSERT INTO billing_monthlyvolume (tenant_id, month, country, segments)
        SELECT v.tenant_id, %(month)s, v.country, sum(v.segments) FROM s
        JOIN v ON v.message_id = s.message_id JOIN locked ON locked.tenant_id = v.tenant_id
        WHERE %(kind)s = 'capture' GROUP BY v.tenant_id, v.country ORDER BY v.tenant_id, v.country
        ON CONFLICT (tenant_id, month, country)
        DO UPDATE SET segments = billing_monthlyvolume.segments + EXCLUDED.segments
    )
    UPDATE billing_balance SET balance = balance + t.b, reserved = reserved + t.r, updated_at = %(now)s,
           spent_today = CASE WHEN spent_day = %(day)s THEN greatest(spent_today - coalesce(g.amount, 0), 0)
                              ELSE spent_today END
    FROM t JOIN locked ON locked.tenant_id = t.tenant_id LEFT JOIN g ON g.tenant_id = t.tenant_id
    WHERE billing_balance.id = locked.id
"""


# A capture repriced by an operator's price (capture_charges): each message's hold (`amount`) leaves `reserved`,
# and its `charge` leaves `balance`. The balance rows are locked first (tenant order), so the statement knows
# what each tenant may still take: a tenant whose repriced captures would cost more than its holds by more than
# available (balance - reserved + credit limit) is captured at the held prices (never past the credit limit;
# the CHECK would refuse it). Captures touch no key's spend, so no key row is locked. A message settled before is
# left out first (the settled-once index); one settled meanwhile by a concurrent statement is still skipped by
# ON CONFLICT (its change then counted in `x` only: the check errs on the safe side).
_CAPTURE_REPRICED_SQL = """
    WITH v AS (
        SELECT * FROM unnest(%(ids)s::bigint[], %(tenants)s::bigint[], %(amounts)s::numeric[], %(charges)s::numeric[],
                             %(currencies)s::text[], %(countries)s::text[], %(segments)s::integer[])
            AS u(message_id, tenant_id, amount, charge, currency, country, segments)
        -- a message settled before (a receipt after the send) locks nothing and counts in no tenant's change
        WHERE NOT EXISTS (SELECT 1 FROM billing_ledgerentry e WHERE e.message_id = u.message_id
                          AND e.kind IN ('capture', 'release'))
    ),
    locked AS (
        SELECT id, tenant_id, balance + credit_limit - reserved AS headroom FROM billing_balance
        WHERE tenant_id IN (SELECT tenant_id FROM v) ORDER BY tenant_id FOR UPDATE
    ),
    x AS (SELECT tenant_id, sum(charge - amount) AS extra FROM v GROUP BY tenant_id),
    s AS (
        INSERT INTO billing_ledgerentry (tenant_id, kind, balance_delta, reserved_delta, currency, message_id,
                                         messages, reason, actor, created_at)
        SELECT v.tenant_id, 'capture', -(CASE WHEN x.extra <= locked.headroom THEN v.charge ELSE v.amount END),
               -v.amount, v.currency, v.message_id, 1, '', '', %(now)s
        FROM v JOIN x ON x.tenant_id = v.tenant_id JOIN locked ON locked.tenant_id = v.tenant_id
        ON CONFLICT (message_id) WHERE kind IN ('capture', 'release') DO NOTHING
        RETURNING message_id, tenant_id, balance_delta, reserved_delta
    ),
    t AS (SELECT tenant_id, sum(balance_delta) AS b, sum(reserved_delta) AS r FROM s GROUP BY tenant_id),
    vol AS (
        INSERT INTO billing_monthlyvolume (tenant_id, month, country, segments)
        SELECT v.tenant_id, %(month)s, v.country, sum(v.segments) FROM s
        JOIN v ON v.message_id = s.message_id JOIN locked ON locked.tenant_id = v.tenant_id
        GROUP BY v.tenant_id, v.country ORDER BY v.tenant_id, v.country
        ON CONFLICT (tenant_id, month, country)
        DO UPDATE SET segments = billing_monthlyvolume.segments + EXCLUDED.segments
    )
    UPDATE billing_balance SET balance = balance + t.b, reserved = reserved + t.r, updated_at = %(now)s
    FROM t JOIN locked ON locked.tenant_id = t.tenant_id
    WHERE billing_balance.id = locked.id
"""


def capture_charges(settlements: Sequence[Settlement]) -> dict[int, Decimal]:
    """{message id: what its capture charges} for the captures an operator's price reprices (the others charge
    their hold). Set-based and without a query: only when some price list names an operator, one lookup of
    the recipients' operators for the lot (billing.hooks.operators_of: routing's cached lookup), then rating
    from process memory. A message whose operator is not known keeps its price."""
    if not settlements or not rating.operator_prices_exist():
        return {}
    operators = hooks.operators_of({s.to for s in settlements if s.to})
    charges = {}
    for s in settlements:
        operator = operators.get(s.to, "")
        rate = operator and rating.operator_rate(tenant_id=s.tenant_id, to=s.to, message_type=s.message_type,
                                                 operator=operator, currency=s.currency)
        if rate:
            charge = rate.unit * s.segments
            if charge != s.amount:
                charges[s.message_id] = charge
    return charges


def holds_settle(*, settlements: Sequence[Settlement], kind: str) -> None:
    """Capture (`kind` capture: the messages went to a carrier) or release (they never will) the holds of
    `settlements`, each message once whatever calls it again: the unique index on a settlement's message_id
    skips a repeat. Set-based: one statement on PostgreSQL for any number of messages and tenants (key spend
    rows locked in key order, then balance rows in tenant order, so two settlements, or a settlement and an
    accept, cannot deadlock). A release on the day of the hold gives the day's spend back (the daily caps). In
    the caller's transaction."""
    if not settlements:
        return
    now = timezone.now()
    charges = capture_charges(settlements) if kind == CAPTURE else {}
    if charges and connection.vendor == "postgresql":
        params = {"ids": [s.message_id for s in settlements], "tenants": [s.tenant_id for s in settlements],
                  "amounts": [s.amount for s in settlements],
                  "charges": [charges.get(s.message_id, s.amount) for s in settlements],
                  "currencies": [s.currency for s in settlements], "countries": [s.country for s in settlements],
                  "segments": [s.segments for s in settlements], "now": now, "month": now.date().replace(day=1)}
        with connection.cursor() as cursor:
            cursor.execute(_CAPTURE_REPRICED_SQL, params)
        return
    if connection.vendor == "postgresql":
        params = {"ids": [s.message_id for s in settlements], "tenants": [s.tenant_id for s in settlements],
                  "amounts": [s.amount for s in settlements], "currencies": [s.currency for s in settlements],
                  "countries": [s.country for s in settlements], "segments": [s.segments for s in settlements],
                  "keys": [s.api_key_id for s in settlements], "held": [s.held_on for s in settlements],
                  "kind": kind, "now": now, "day": now.date(), "month": now.date().replace(day=1)}
        with connection.cursor() as cursor:
            cursor.execute(_SETTLE_SQL, params)
        return
    _settle_portable(settlements=settlements, kind=kind, now=now, charges=charges)


def _settle_portable(*, settlements: Sequence[Settlement], kind: str, now, charges: dict[int, Decimal]) -> None:
    """The same on SQLite: the settled ones skipped, the others in one INSERT, one UPDATE per tenant (a repriced
    capture as _CAPTURE_REPRICED_SQL: at the held prices for a tenant whose balance does not cover the change)."""
    # unscoped: settlements of a dispatch batch or a sweep name their messages, of any tenant
    done = set(LedgerEntry.unscoped.filter(message_id__in=[s.message_id for s in settlements],
                                           kind__in=[LedgerKind.CAPTURE, LedgerKind.RELEASE])
               .values_list("message_id", flat=True))
    fresh = {s.message_id: s for s in settlements if s.message_id not in done}.values()
    if charges:
        extra: dict[int, Decimal] = {}
        for s in fresh:
            extra[s.tenant_id] = extra.get(s.tenant_id, Decimal(0)) + charges.get(s.message_id, s.amount) - s.amount
        # unscoped: the settlements' tenants (SQLite only)
        headroom = {b.tenant_id: b.balance + b.credit_limit - b.reserved
                    for b in Balance.unscoped.filter(tenant_id__in=extra)}
        covered = {s.message_id for s in fresh if extra[s.tenant_id] <= headroom.get(s.tenant_id, 0)}
        charges = {m: c for m, c in charges.items() if m in covered}
    try:
        with transaction.atomic():
            # unscoped: as above
            LedgerEntry.unscoped.bulk_create([
                LedgerEntry(tenant_id=s.tenant_id, kind=kind, reserved_delta=-s.amount, message_id=s.message_id,
                            balance_delta=-charges.get(s.message_id, s.amount) if kind == LedgerKind.CAPTURE else 0,
                            currency=s.currency, messages=1, created_at=now) for s in fresh])
    except IntegrityError:  # settled meanwhile (SQLite has one writer: not expected)
        return
    if kind == LedgerKind.CAPTURE:
        _volume_count_portable(fresh, month=now.date().replace(day=1))
    totals: dict[int, Decimal] = {}
    captured: dict[int, Decimal] = {}
    for s in fresh:
        totals[s.tenant_id] = totals.get(s.tenant_id, Decimal(0)) + s.amount
        captured[s.tenant_id] = captured.get(s.tenant_id, Decimal(0)) + charges.get(s.message_id, s.amount)
    for tenant_id, total in sorted(totals.items()):
        charged = captured[tenant_id] if kind == LedgerKind.CAPTURE else Decimal(0)
        _balance_move_portable(tenant_id=tenant_id, balance=-charged, reserved=-total, check=False)
    if kind == LedgerKind.RELEASE:
        _spent_today_release(released=[s for s in fresh if s.held_on == now.date()], day=now.date())


def _volume_count_portable(settlements, *, month) -> None:
    """The captures' segments added to their month's volume (SQLite: one writer, so read, then write)."""
    counts: dict[tuple[int, str], int] = {}
    for s in settlements:
        counts[s.tenant_id, s.country] = counts.get((s.tenant_id, s.country), 0) + s.segments
    for (tenant_id, country), segments in sorted(counts.items()):
        # unscoped: settlements of any tenant (a dispatch batch, a sweep)
        row, _ = MonthlyVolume.unscoped.get_or_create(tenant_id=tenant_id, month=month, country=country)
        MonthlyVolume.unscoped.filter(pk=row.pk).update(segments=F("segments") + segments)


def _balance_move_portable(*, tenant_id: int, currency: str | None = None, balance: Decimal = Decimal(0),
                           reserved: Decimal = Decimal(0), check: bool = True) -> LowBalance | None:
    """SQLite's conditional update, computed in Decimal: SQLite's arithmetic on these columns is binary floating
    point (0.03 - 0.01 - 0.01 - 0.01 < 0). One writer at a time there; the race-free path is PostgreSQL's.
    Returns the figures after it for the low-balance check (None: refused), re-arming the alert as the
    PostgreSQL credit does when available is back at the threshold or above."""
    # unscoped: a balance move for the tenant the caller names (SQLite only)
    row = Balance.unscoped.filter(tenant_id=tenant_id, **({"currency": currency} if currency else {})).first()
    if row is None:
        return None
    new_balance, new_reserved = row.balance + balance, row.reserved + reserved
    available = new_balance + row.credit_limit - new_reserved
    if check and available < 0:
        return None
    fields = {"balance": new_balance, "reserved": new_reserved, "updated_at": timezone.now()}
    rearm = balance > 0 and (row.low_balance_threshold is None or available >= row.low_balance_threshold)
    if rearm:
        fields["low_balance_alerted_at"] = None
    # unscoped: as above
    Balance.unscoped.filter(pk=row.pk).update(**fields)
    return LowBalance(tenant_id=tenant_id, available=available, threshold=row.low_balance_threshold,
                      armed=rearm or row.low_balance_alerted_at is None)


def _spent_today_release(*, released: Sequence[Settlement], day: date) -> None:
    """Today's releases of today's holds given back to the tenants' and keys' spend of the day, never below 0
    (SQLite only: _SETTLE_SQL does it on PostgreSQL)."""
    by_tenant: dict[int, Decimal] = {}
    by_key: dict[int, Decimal] = {}
    for s in released:
        by_tenant[s.tenant_id] = by_tenant.get(s.tenant_id, Decimal(0)) + s.amount
        if s.api_key_id is not None:
            by_key[s.api_key_id] = by_key.get(s.api_key_id, Decimal(0)) + s.amount
    # unscoped: as _balance_move_portable (SQLite only)
    for row in Balance.unscoped.filter(tenant_id__in=by_tenant, spent_day=day):
        # unscoped: as above
        Balance.unscoped.filter(pk=row.pk).update(spent_today=max(row.spent_today - by_tenant[row.tenant_id], Decimal(0)))
    # unscoped: as above
    for row in ApiKeySpend.unscoped.filter(api_key_id__in=by_key, day=day):
        # unscoped: as above
        ApiKeySpend.unscoped.filter(pk=row.pk).update(amount=max(row.amount - by_key[row.api_key_id], Decimal(0)))
