"""Margins for account managers: what a message earned (its price) less what its carrier cost (its sent attempt's
route cost per segment times its segments), per message and by tenant and country for a period (admin only:
customers never see a carrier or a cost).

The sent attempt is a message's last attempt the carrier took (submitted, delivered, or failed after it took
it). Its cost is the route's cost in force when routing chose it, in the route's currency. A margin is only
computed in one currency: when the price's and the cost's currencies differ, the cost is converted by the
operator's ROUTING_EXCHANGE_RATES (the rates routing ranks routes with: lcr.amount_converted) and the figure is
marked as an estimate; without a rate for both, the margin is "n/a", never a number mixing currencies.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import phonenumbers
from django.db.models import Count, DecimalField, Exists, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery, Sum

from billing import selectors as billing_selectors
from messaging.models import Message, Status
from messaging.routing.lcr import amount_converted
from messaging.routing.models import MessageAttempt

Outcome = MessageAttempt.Outcome
SENT_OUTCOMES = (Outcome.SUBMITTED, Outcome.DELIVERED, Outcome.FAILED)
# The statuses of a captured message (lifecycle.SETTLE): charged, whether or not routing recorded an attempt.
CHARGED_STATUSES = (Status.SENT, Status.DELIVERED, Status.UNDELIVERED)
NO_ROUTE = ""  # the country of messages charged without a recorded route (LIVE_CARRIER=simulator)
_MONEY = DecimalField(max_digits=18, decimal_places=6)
_PLACES = Decimal("0.000001")


def _sent_attempts() -> QuerySet[MessageAttempt]:
    """Each message's last attempt that a carrier took (one per message at most)."""
    # unscoped: platform figures over every tenant, for account managers in admin
    later = MessageAttempt.unscoped.filter(message_id=OuterRef("message_id"), number__gt=OuterRef("number"),
                                           outcome__in=SENT_OUTCOMES)
    # unscoped: as above
    return MessageAttempt.unscoped.filter(outcome__in=SENT_OUTCOMES).exclude(Exists(later))


def messages_with_carrier_cost(messages: QuerySet[Message]) -> QuerySet[Message]:
    """`messages` with `carrier_unit_cost` and `carrier_cost_currency` of the attempt that sent each (None and
    None when none did): two correlated subqueries on the (message, number) index, for a page of the admin."""
    # unscoped: a message's own attempts, in admin
    sent = MessageAttempt.unscoped.filter(message_id=OuterRef("pk"), outcome__in=SENT_OUTCOMES).order_by("-number")
    return messages.annotate(carrier_unit_cost=Subquery(sent.values("cost")[:1]),
                             carrier_cost_currency=Subquery(sent.values("currency")[:1]))


@dataclass(frozen=True)
class Margin:
    """A message's carrier cost and margin; `margin` None: not computable (no cost, or currencies without rates)."""

    cost: Decimal | None
    cost_currency: str
    margin: Decimal | None
    estimated: bool  # the cost was converted into the price's currency (ROUTING_EXCHANGE_RATES)


def message_margin(*, message: Message) -> Margin:
    """The margin of a message annotated by messages_with_carrier_cost: price - unit cost x segments."""
    unit, currency = getattr(message, "carrier_unit_cost", None), getattr(message, "carrier_cost_currency", None)
    if unit is None:
        return Margin(cost=None, cost_currency="", margin=None, estimated=False)
    cost = Decimal(unit) * message.segments
    if message.price is None or not message.currency:
        return Margin(cost=cost, cost_currency=currency or "", margin=None, estimated=False)
    converted = amount_converted(cost, currency=currency or "", to=message.currency) if currency else None
    if converted is None:
        return Margin(cost=cost, cost_currency=currency or "", margin=None, estimated=False)
    return Margin(cost=cost, cost_currency=currency, margin=(message.price - converted).quantize(_PLACES),
                  estimated=currency.upper() != message.currency.upper())


@dataclass
class MarginRow:
    """One tenant, country and currency (the price's) over a period. `cost` and `margin` in that currency; None
    when some of its cost is unknown or in a currency without an exchange rate."""

    tenant_id: int
    tenant: str
    country: str
    currency: str
    messages: int = 0
    segments: int = 0
    revenue: Decimal = Decimal(0)
    cost: Decimal | None = Decimal(0)
    estimated: bool = False
    cost_currencies: set[str] = field(default_factory=set)

    @property
    def margin(self) -> Decimal | None:
        return None if self.cost is None else self.revenue - self.cost

    @property
    def margin_percent(self) -> Decimal | None:
        if self.margin is None or not self.revenue:
            return None
        return (self.margin * 100 / self.revenue).quantize(Decimal("0.1"))


def margins_by_tenant_country(*, start: datetime, end: datetime) -> list[MarginRow]:
    """Every tenant's billed messages accepted in [start, end): per tenant, destination country and currency,
    `messages` and `segments` the carriers took, `revenue` (their prices, less any whose hold was released: never
    charged), carrier `cost` and margin. Sorted by tenant, currency, country.

    Aggregated in SQL: the sent attempts joined with their messages, grouped by tenant, currencies and route (a
    row per route a tenant used, not per message); the route's country (else its prefix's) names the country.
    Billed messages charged without a recorded attempt (the simulator) are one more aggregate, under no country
    (NO_ROUTE), with an unknown cost."""
    # an uncorrelated IN (one hashed subplan on PostgreSQL; SQLite refuses a correlated one in an aggregate)
    released = Q(message_id__in=billing_selectors.ledger_releases_all().values("message_id"))
    routed = (_sent_attempts().filter(message__billed=True, message__created_at__gte=start,
                                      message__created_at__lt=end)
              .values("tenant_id", "tenant__slug", "message__currency", "currency", "route__country", "route__prefix")
              .order_by()
              .annotate(messages=Count("id"), segments=Sum("message__segments"),
                        revenue=Sum("message__price", filter=~released),
                        # named apart from the attempt's own `cost`, which `uncosted` reads
                        uncosted=Count("id", filter=Q(cost__isnull=True)),
                        carrier_cost=Sum(ExpressionWrapper(F("cost") * F("message__segments"), output_field=_MONEY))))
    # unscoped: as _sent_attempts
    unrouted = (Message.unscoped.filter(billed=True, created_at__gte=start, created_at__lt=end,
                                        status__in=CHARGED_STATUSES)
                .exclude(Exists(_sent_attempts().filter(message_id=OuterRef("pk"))))
                .values("tenant_id", "tenant__slug", "currency").order_by()
                .annotate(messages=Count("id"), segments=Sum("segments"), revenue=Sum("price")))
    rows: dict[tuple, MarginRow] = {}
    for group in routed:
        country = group["route__country"] or _prefix_country(group["route__prefix"] or "")
        row = _row(rows, group["tenant_id"], group["tenant__slug"], country, group["message__currency"])
        _add(row, group, cost=None if group["uncosted"] else group["carrier_cost"], cost_currency=group["currency"])
    for group in unrouted:
        row = _row(rows, group["tenant_id"], group["tenant__slug"], NO_ROUTE, group["currency"])
        _add(row, group, cost=None, cost_currency="")
    return sorted(rows.values(), key=lambda r: (r.tenant, r.currency, r.country or "~"))


def margins_totals(rows: Iterable[MarginRow]) -> list[MarginRow]:
    """The rows summed per currency (never across currencies), as rows with no tenant or country."""
    totals: dict[str, MarginRow] = {}
    for row in rows:
        total = totals.setdefault(row.currency, MarginRow(tenant_id=0, tenant="", country="", currency=row.currency))
        total.messages += row.messages
        total.segments += row.segments
        total.revenue += row.revenue
        total.cost = None if total.cost is None or row.cost is None else total.cost + row.cost
        total.estimated |= row.estimated
        total.cost_currencies |= row.cost_currencies
    return [totals[currency] for currency in sorted(totals)]


def _row(rows: dict, tenant_id: int, slug: str, country: str, currency: str) -> MarginRow:
    key = (tenant_id, country, currency)
    if key not in rows:
        rows[key] = MarginRow(tenant_id=tenant_id, tenant=slug, country=country, currency=currency)
    return rows[key]


def _add(row: MarginRow, group: dict, *, cost: Decimal | None, cost_currency: str) -> None:
    row.messages += group["messages"]
    row.segments += group["segments"] or 0
    row.revenue += Decimal(group["revenue"] or 0)
    if cost_currency:
        row.cost_currencies.add(cost_currency)
    converted = None
    if cost is not None and cost_currency:
        converted = amount_converted(Decimal(cost).quantize(_PLACES), currency=cost_currency, to=row.currency)
    if converted is None or row.cost is None:
        row.cost = None
    else:
        row.cost += converted
        row.estimated |= cost_currency.upper() != row.currency.upper()


def _prefix_country(prefix: str) -> str:
    """The main region of the country calling code a route prefix starts with ("" when none does)."""
    for length in (1, 2, 3):
        code = prefix[:length]
        if len(code) == length and code.isdigit():
            region = phonenumbers.region_code_for_country_code(int(code))
            if region != "ZZ":
                return region
    return ""
