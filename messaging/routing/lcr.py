"""Least-cost routing on live quality: which routes may carry a message, in the order to try them, and why.

For one message:
1. candidates: each carrier's route with the longest prefix of the destination (a carrier's +4477 route
   is used over its +44 one; another carrier's +44 route still competes); a route that names an operator
   (MCC-MNC) applies only to a message of that operator (operators.py), and beats the carrier's route of the
   same prefix without one;
2. dropped: a carrier that is disabled or whose SMPP session reports down, a route whose circuit is open
   (until its cool-down ends: then it is half-open and takes trial traffic: its place in one plan of
   ROUTING_CIRCUIT_TRIAL_EVERY, last in the others while a closed route can carry the message), and a route that cannot carry
   the message's type or sender type;
3. ordered by the policy:
   - `cheapest`: cost in ROUTING_COST_CURRENCY (ROUTING_EXCHANGE_RATES), then priority;
   - `quality`: delivery rate (higher first), then p50 receipt latency (lower first), then cost;
   - `balanced` (the default): the routes whose delivery rate is at least ROUTING_MIN_DELIVERY_RATE (90 %)
     and whose p50 receipt latency is within ROUTING_MAX_LATENCY_MS, cheapest first; then the others, by
     quality.
   OTP messages use `quality` unless the tenant's routing says otherwise.

The delivery rate is the 15-minute window's when that window has at least ROUTING_MIN_SAMPLE finished
messages, else the 24-hour window's under the same rule, else none: an unrated route (new, or too little
traffic) is treated as meeting the threshold, with no latency, so `balanced` lets cost decide and it gets
the traffic that rates it; `quality` tries it after the routes measured at or above the threshold.
Failover (dispatch) takes the next route of this order.

Costs are compared in ROUTING_COST_CURRENCY: a route's cost times ROUTING_EXCHANGE_RATES[its currency]. A route
whose currency has no rate cannot be compared with the others: it is ranked after every route that has one (its
own costs compared among themselves), and a warning is logged at most once a minute per currency. It is not
dropped: a missing rate should not leave a destination without a route. Reasons never name a carrier or a cost.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from messaging.routing.cache import RoutingTable, routing_table
from messaging.routing.models import Carrier, Policy, Route, RouteCircuit, RouteQuality
from messaging.routing.operators import operator_key

_SHORT_CODE = re.compile(r"^[0-9]{3,8}$")
logger = logging.getLogger("smsportal.routing")
_unrated_warned: dict[str, float] = {}  # currency -> when its missing rate was last logged (time.monotonic)


def sender_type_of(sender: str) -> str:
    if sender.startswith("+"):
        return "long_number"
    if _SHORT_CODE.match(sender):
        return "short_code"
    return "alphanumeric"


@dataclass(frozen=True)
class Candidate:
    route: Route
    carrier: Carrier
    delivery_rate: Decimal | None  # None: unrated
    latency_p50_ms: int | None
    circuit: str  # closed | half_open
    cost: Decimal | None  # in ROUTING_COST_CURRENCY; None: no exchange rate for the route's currency

    @property
    def quality_class(self) -> str:
        rate = self.delivery_rate
        if rate is None:
            return "unrated"
        if rate >= Decimal("0.95"):
            return "premium"
        return "standard" if rate >= _threshold() else "low"


@dataclass(frozen=True)
class Plan:
    candidates: tuple[Candidate, ...]  # in the order to try
    policy: str
    reason: str  # why the first was chosen, for people ("cheapest of 3 routes above 90 % delivery")


def routes_plan(*, to: str, message_type: str, sender: str, policy: str | None = None,
                table: RoutingTable | None = None, operator: str = "") -> Plan:
    """The routes for a message, in the order to try them. No candidate: an empty plan (reason says why).
    `operator`: the destination's "MCC-MNC" (operators.operators_of), "" when not known."""
    table = table or routing_table()
    policy = policy or (Policy.QUALITY if message_type == "otp" else Policy.BALANCED)
    digits = to.removeprefix("+")
    longest: dict[int, Route] = {}
    for route in table.routes:
        if digits.startswith(route.prefix) and _operator_fits(route, operator):
            held = longest.get(route.carrier_id)
            if held is None or _specificity(route) > _specificity(held):
                longest[route.carrier_id] = route
    if not longest:
        return Plan((), policy, f"no route for +{digits[:4]}…")
    sender_type = sender_type_of(sender)
    usable = [c for c in (_candidate(table, route) for route in longest.values())
              if c is not None and c.route.carries(message_type=message_type, sender_type=sender_type)]
    if not usable:
        return Plan((), policy, f"none of {len(longest)} routes is up and can carry this message")
    ordered, reason = _order(usable, policy)
    ordered, held_back = _trials_only(table, ordered)
    if held_back:
        reason += "; a route recovering from failures takes trial traffic only"
    return Plan(tuple(ordered), policy, reason)


_trials: dict[tuple[int, object], int] = {}  # (route, when its circuit opened) -> plans it was half-open in


def _trials_only(table: RoutingTable, ordered: list[Candidate]) -> tuple[list[Candidate], bool]:
    """A half-open route keeps its place in one plan of ROUTING_CIRCUIT_TRIAL_EVERY (the first of each
    half-open spell, in this process) and goes last in the others, while a closed route can carry the
    message: trial traffic, not the whole load, on a route that may still be failing. Without another route
    it keeps its place. True when it moved a route that would have been first."""
    if all(c.circuit != RouteCircuit.State.HALF_OPEN for c in ordered) or all(
            c.circuit == RouteCircuit.State.HALF_OPEN for c in ordered):
        return ordered, False
    if len(_trials) > 10_000:
        _trials.clear()
    back = []
    for candidate in ordered:
        if candidate.circuit == RouteCircuit.State.HALF_OPEN:
            circuit = table.circuits.get(candidate.route.pk)
            key = (candidate.route.pk, circuit.opened_at if circuit is not None else None)
            seen = _trials.get(key, 0)
            _trials[key] = seen + 1
            if seen % settings.ROUTING_CIRCUIT_TRIAL_EVERY:
                back.append(candidate)
    if not back:
        return ordered, False
    return [c for c in ordered if c not in back] + back, ordered[0] in back


def _operator_fits(route: Route, operator: str) -> bool:
    return not route.operator or (bool(operator) and operator_key(route.operator) == operator)


def _specificity(route: Route) -> tuple[int, bool]:
    """The longer prefix first; at the same prefix, the route for the message's operator."""
    return len(route.prefix), bool(route.operator)


def _candidate(table: RoutingTable, route: Route) -> Candidate | None:
    carrier = table.carriers.get(route.carrier_id)
    if carrier is None or not carrier.enabled or (carrier.kind == Carrier.Kind.SMPP and carrier.session_state == "down"):
        return None
    circuit = _circuit_state(table.circuits.get(route.pk))
    if circuit == RouteCircuit.State.OPEN:
        return None
    rate, latency = _rate(table, route.pk)
    return Candidate(route=route, carrier=carrier, delivery_rate=rate, latency_p50_ms=latency, circuit=circuit,
                     cost=cost_converted(route.cost, route.currency))


def cost_converted(cost: Decimal, currency: str) -> Decimal | None:
    """A cost in ROUTING_COST_CURRENCY, or None when its currency has no rate in ROUTING_EXCHANGE_RATES."""
    currency = currency.upper()
    if currency == settings.ROUTING_COST_CURRENCY.upper():
        return cost
    rate = settings.ROUTING_EXCHANGE_RATES.get(currency)
    if rate is None:
        now = time.monotonic()
        if now - _unrated_warned.get(currency, -120.0) >= 60:
            _unrated_warned[currency] = now
            logger.warning("routes in %s have no exchange rate to %s (ROUTING_EXCHANGE_RATES): ranked last by cost",
                           currency, settings.ROUTING_COST_CURRENCY,
                           extra={"event": "routing.rate_missing", "currency": currency})
        return None
    return cost * Decimal(str(rate))


def amount_converted(amount: Decimal, *, currency: str, to: str) -> Decimal | None:
    """`amount` in `currency` as `to`, by the same ROUTING_EXCHANGE_RATES routing compares costs with (each rate:
    what one unit is worth in ROUTING_COST_CURRENCY), to 6 places; None when either currency has no rate. Static
    rates set by the operator: a figure converted with them is an estimate, shown as one (routing/margins.py)."""
    currency, to = currency.upper(), to.upper()
    if currency == to:
        return amount
    base = settings.ROUTING_COST_CURRENCY.upper()
    rates = {**settings.ROUTING_EXCHANGE_RATES, base: Decimal(1)}
    if currency not in rates or to not in rates:
        return None
    return (amount * Decimal(str(rates[currency])) / Decimal(str(rates[to]))).quantize(Decimal("0.000001"))


def _circuit_state(circuit: RouteCircuit | None) -> str:
    if circuit is None or circuit.state == RouteCircuit.State.CLOSED:
        return RouteCircuit.State.CLOSED
    if circuit.state == RouteCircuit.State.OPEN:
        cooled = circuit.opened_at and timezone.now() - circuit.opened_at >= timedelta(
            seconds=settings.ROUTING_CIRCUIT_COOLDOWN_SECONDS)
        return RouteCircuit.State.HALF_OPEN if cooled else RouteCircuit.State.OPEN
    return circuit.state


def _rate(table: RoutingTable, route_id: int) -> tuple[Decimal | None, int | None]:
    for window in (RouteQuality.Window.QUARTER_HOUR, RouteQuality.Window.DAY):
        quality = table.quality.get((route_id, window))
        if quality is not None and quality.delivered + quality.failed >= settings.ROUTING_MIN_SAMPLE:
            return quality.delivery_rate, quality.latency_p50_ms
    return None, None


def _threshold() -> Decimal:
    return Decimal(str(settings.ROUTING_MIN_DELIVERY_RATE))


def _meets(candidate: Candidate) -> bool:
    if candidate.delivery_rate is None:
        return True
    latency_ok = candidate.latency_p50_ms is None or candidate.latency_p50_ms <= settings.ROUTING_MAX_LATENCY_MS
    return candidate.delivery_rate >= _threshold() and latency_ok


def _cost_key(c: Candidate) -> tuple[int, Decimal]:
    """Converted costs first; a route with no exchange rate after them, by its own cost."""
    return (0, c.cost) if c.cost is not None else (1, c.route.cost)


def _by_cost(c: Candidate):
    return (*_cost_key(c), c.route.priority, c.carrier.name)


def _by_quality(c: Candidate):
    rate = c.delivery_rate if c.delivery_rate is not None else _threshold()
    measured = 0 if c.delivery_rate is not None else 1  # a measured route before an unrated one at equal rate
    latency = c.latency_p50_ms if c.latency_p50_ms is not None else 10**9
    return (-rate, measured, latency, *_cost_key(c), c.route.priority, c.carrier.name)


def _order(usable: list[Candidate], policy: str) -> tuple[list[Candidate], str]:
    count = len(usable)
    routes = f"{count} route{'s' if count != 1 else ''}"
    if policy == Policy.CHEAPEST:
        return sorted(usable, key=_by_cost), f"cheapest of {routes}"
    if policy == Policy.QUALITY:
        ordered = sorted(usable, key=_by_quality)
        best = ordered[0].delivery_rate
        return ordered, (f"highest delivery rate ({_percent(best)}) of {routes}" if best is not None
                         else f"no delivery rate measured yet on {routes}: cheapest")
    good = sorted((c for c in usable if _meets(c)), key=_by_cost)
    rest = sorted((c for c in usable if not _meets(c)), key=_by_quality)
    threshold = _percent(_threshold())
    if good:
        return good + rest, f"cheapest of {len(good)} of {routes} at or above {threshold} delivery"
    return rest, f"none of {routes} at {threshold} delivery: the best by delivery rate"


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).quantize(Decimal('0.1'))} %"
