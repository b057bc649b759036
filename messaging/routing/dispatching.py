"""Routing inside dispatch (messaging/dispatch.py, LIVE_CARRIER = "routes"): one route per claimed message,
its attempt recorded, and what each outcome means for the message, the attempt and the route's circuit.

- A message takes the first route of its plan (lcr.routes_plan) that has not failed it at route level in the
  last ROUTING_FAILOVER_WINDOW_SECONDS: after a RouteError (bind down, timeout, a carrier-side error) the next
  dispatch of the message takes the next route, at once, within the message's validity period.
- Every route of the plan failed it recently: back to the queue with back-off (a retry of the whole plan),
  until its validity ends (expired).
- No route at all: failed, `no_route`. A destination-level refusal (PermanentError) is final: no other route.
- Each attempt is a MessageAttempt row: the route, why it was chosen, its quality class and cost, and how it
  ended (submitted, then delivered or failed from the receipt; route_error; retry; rejected).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from accounts.services.audit import SYSTEM, audit_record
from messaging.carriers.base import (
    CarrierError,
    DeadlinePassed,
    PermanentError,
    RouteError,
    SubmitResult,
    TransientError,
)
from messaging.routing.cache import routing_table
from messaging.routing.lcr import Candidate, Plan, routes_plan
from messaging.routing.models import Carrier, MessageAttempt, RouteCircuit, RouteCircuitTransition, TenantRouting
from messaging.routing.operators import operators_of

logger = logging.getLogger("smsportal.routing")
Outcome = MessageAttempt.Outcome


@dataclass
class Routed:
    message: object  # messaging.models.Message
    candidate: Candidate
    attempt: MessageAttempt


@dataclass
class RoutingResult:
    routed: list[Routed]
    no_route: list[tuple[object, str]]  # (message, reason): no route can carry it
    exhausted: list[object]  # every route failed it recently: retry later


def messages_route(messages: Sequence) -> RoutingResult:
    """A route and a recorded attempt for each message (claimed, `sending`)."""
    table = routing_table()
    ids = [m.pk for m in messages]
    since = timezone.now() - timedelta(seconds=settings.ROUTING_FAILOVER_WINDOW_SECONDS)
    # unscoped: dispatch over claimed messages of any tenant, by their ids
    # finished_at: when the route failed it, however long the submit took
    recent = MessageAttempt.unscoped.filter(message_id__in=ids, outcome=Outcome.ROUTE_ERROR, finished_at__gte=since)
    failed: dict[int, set[int]] = {}
    for message_id, route_id in recent.values_list("message_id", "route_id"):
        failed.setdefault(message_id, set()).add(route_id)
    # unscoped: the attempt numbers so far of these messages
    numbers = dict(MessageAttempt.unscoped.filter(message_id__in=ids).values("message_id")
                   .annotate(n=Max("number")).values_list("message_id", "n"))
    policies = _policies({m.tenant_id for m in messages})
    # the destinations' operators, only when some route names one (a lookup may be a paid call)
    operators = operators_of(m.to for m in messages) if any(r.operator for r in table.routes) else {}
    result = RoutingResult([], [], [])
    attempts = []
    for message in messages:
        plan = routes_plan(to=message.to, message_type=message.message_type, sender=message.sender,
                           policy=_policy_for(policies.get(message.tenant_id), message.message_type), table=table,
                           operator=operators.get(message.to, ""))
        if not plan.candidates:
            result.no_route.append((message, plan.reason))
            continue
        untried = [c for c in plan.candidates if c.route.pk not in failed.get(message.pk, set())]
        if not untried:
            result.exhausted.append(message)
            continue
        candidate = untried[0]
        attempt = MessageAttempt(
            tenant_id=message.tenant_id, message_id=message.pk, number=numbers.get(message.pk, 0) + 1,
            route=candidate.route, carrier=candidate.carrier.name, quality_class=candidate.quality_class,
            reason=_reason(plan, candidate, untried), cost=candidate.route.cost, currency=candidate.route.currency,
            # an SMPP route's attempt waits for a connector process (messaging/connector/); the rest this worker submits
            outcome=Outcome.PENDING if connector_serves(candidate.carrier) else Outcome.SUBMITTING)
        attempts.append(attempt)
        result.routed.append(Routed(message, candidate, attempt))
    MessageAttempt.unscoped.bulk_create(attempts)
    return result


def connector_serves(carrier) -> bool:
    """A connector process holds a bound session to this SMPP carrier: its heartbeat said so within
    CONNECTOR_LEASE_SECONDS. Otherwise dispatch treats the route as down (a route error: the next route)."""
    if carrier.kind != Carrier.Kind.SMPP or carrier.session_state != "bound" or carrier.session_state_at is None:
        return False
    return timezone.now() - carrier.session_state_at < timedelta(seconds=settings.CONNECTOR_LEASE_SECONDS)


def _reason(plan: Plan, candidate: Candidate, untried: list[Candidate]) -> str:
    if candidate is plan.candidates[0]:
        return plan.reason
    return f"failover: the next of {len(plan.candidates)} routes after {len(plan.candidates) - len(untried)} failed"


def _policies(tenant_ids: set[int]) -> dict[int, TenantRouting]:
    # unscoped: dispatch reads the routing policy of each claimed message's tenant
    return {r.tenant_id: r for r in TenantRouting.unscoped.filter(tenant_id__in=tenant_ids)}


def _policy_for(routing: TenantRouting | None, message_type: str) -> str | None:
    if routing is None:
        return None
    if message_type == "otp":
        return routing.otp_policy or "quality"
    return routing.policy


def attempts_record(attempts: Sequence[MessageAttempt], outcomes: Sequence[SubmitResult | CarrierError]) -> None:
    """The attempts' outcomes, and what they tell each route's circuit."""
    now = timezone.now()
    by_outcome: dict[tuple[str, str], list[int]] = {}
    per_route: dict[int, list[bool]] = {}
    for attempt, outcome in zip(attempts, outcomes, strict=True):
        if isinstance(outcome, SubmitResult):
            key = (Outcome.SUBMITTED, "")
        elif isinstance(outcome, RouteError):
            key = (Outcome.ROUTE_ERROR, outcome.code)
        elif isinstance(outcome, PermanentError):
            key = (Outcome.REJECTED, outcome.code)
        else:
            key = (Outcome.RETRY, outcome.code if isinstance(outcome, TransientError) else "carrier_error")
        by_outcome.setdefault(key, []).append(attempt.pk)
        if key[0] in (Outcome.SUBMITTED, Outcome.ROUTE_ERROR) and attempt.route_id is not None:
            per_route.setdefault(attempt.route_id, []).append(key[0] == Outcome.SUBMITTED)
    for (outcome, code), ids in by_outcome.items():
        stamp = "submitted_at" if outcome == Outcome.SUBMITTED else "finished_at"
        if connection.vendor == "postgresql":  # as in attempts_finish
            # unscoped (raw SQL): as below
            _execute(f"UPDATE messaging_messageattempt SET outcome = %s, error_code = %s, {stamp} = %s "  # noqa: S608
                     "WHERE id = ANY(%s::bigint[])", [outcome, code, now, ids])
            continue
        # unscoped: the attempts just made, by their ids
        MessageAttempt.unscoped.filter(pk__in=ids).update(outcome=outcome, error_code=code, **{stamp: now})
    for route_id, results in per_route.items():
        circuit_record(route_id=route_id, successes=sum(results), failures=len(results) - sum(results),
                       last_failed=not results[-1])


_CUSTOMER_TEXT = {
    PermanentError: "The carrier rejected the message.",
    RouteError: "The route failed; the message goes on over the next route.",
    TransientError: "The carrier asked us to try again later.",
}


def error_for_customer(error: CarrierError, *, carrier: str) -> CarrierError:
    """The error as a routed message records it: same class and codes, a text that names no carrier (the
    connectors' texts do: "eu-twilio-1 did not answer"). The full text goes to the log, for staff."""
    logger.info("carrier %s: %s (%s)", carrier, error.message, error.code)
    if isinstance(error, DeadlinePassed):
        return error  # ours, not the carrier's: its text names none
    kind = next(k for k in (PermanentError, RouteError, TransientError, CarrierError) if isinstance(error, k))
    text = _CUSTOMER_TEXT.get(kind, "The carrier could not take the message.")
    return kind(error.code, text, carrier_error_code=error.carrier_error_code)


def attempts_finish(*, message_ids: Sequence[int], delivered: bool) -> None:
    """A receipt's outcome on the submitted attempts of these messages (route quality counts them)."""
    outcome = Outcome.DELIVERED if delivered else Outcome.FAILED
    if connection.vendor == "postgresql":  # the ids as one array: the same statement text for every batch
        # unscoped (raw SQL): as below
        _execute("UPDATE messaging_messageattempt SET outcome = %s, finished_at = %s "
                 "WHERE message_id = ANY(%s::bigint[]) AND outcome = %s",
                 [outcome, timezone.now(), list(message_ids), Outcome.SUBMITTED])
        return
    # unscoped: receipt matching found these messages; their submitted attempts
    MessageAttempt.unscoped.filter(message_id__in=list(message_ids), outcome=Outcome.SUBMITTED).update(
        outcome=outcome, finished_at=timezone.now())


def _execute(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def attempt_held() -> Exists:
    """A condition on messages: an attempt of it waits for an SMPP connector or is held by one (pending, or
    submitting with a `claimed_by`). The stuck-sending reclaim leaves those to the connector sweep."""
    held = Q(outcome=Outcome.PENDING) | (Q(outcome=Outcome.SUBMITTING) & ~Q(claimed_by=""))
    # unscoped: a subquery by message
    return Exists(MessageAttempt.unscoped.filter(held, message_id=OuterRef("pk")))


def attempts_abandon(*, message_id: int) -> None:
    """The sweeper took back a message whose worker died mid-submit: the attempt it held has no known outcome."""
    # unscoped: the reclaimed message's attempt, by its id
    MessageAttempt.unscoped.filter(message_id=message_id, outcome=Outcome.SUBMITTING, claimed_by="").update(
        outcome=Outcome.UNKNOWN, error_code="worker_lost", finished_at=timezone.now())


# --- circuits -----------------------------------------------------------------------------------


def circuit_record(*, route_id: int, successes: int, failures: int, last_failed: bool) -> None:
    """Count a batch's results on a route: ROUTING_CIRCUIT_FAILURES consecutive route-level failures open the
    circuit; a success closes a half-open (or cooled) one and resets the count; a failure while half-open opens
    it again.

    The circuit row is locked for the whole change (SELECT ... FOR UPDATE): two workers recording on one route
    at once are serialized, so neither reads a state the other is changing (no lost or doubled transition)."""
    current, _ = RouteCircuit.objects.get_or_create(route_id=route_id)
    if successes and not last_failed and current.state == RouteCircuit.State.CLOSED and not current.consecutive_failures:
        return  # the common case changes nothing: no lock, so busy routes do not queue on their circuit row
    with transaction.atomic():
        circuit = RouteCircuit.objects.select_for_update().get(route_id=route_id)
        if circuit.state == RouteCircuit.State.OPEN and _cooled(circuit, timezone.now()):
            circuit_move(circuit, RouteCircuit.State.HALF_OPEN, "the cool-down is over: trial traffic")
        if successes and not last_failed:
            if circuit.state != RouteCircuit.State.CLOSED:
                circuit_move(circuit, RouteCircuit.State.CLOSED, "a trial message went through")
            elif circuit.consecutive_failures:
                RouteCircuit.objects.filter(pk=circuit.pk).update(consecutive_failures=0)
            return
        if not failures:
            return
        circuit.consecutive_failures += failures
        RouteCircuit.objects.filter(pk=circuit.pk).update(consecutive_failures=circuit.consecutive_failures)
        if circuit.state == RouteCircuit.State.HALF_OPEN:
            circuit_move(circuit, RouteCircuit.State.OPEN, "the trial message failed")
        elif circuit.state == RouteCircuit.State.CLOSED and circuit.consecutive_failures >= settings.ROUTING_CIRCUIT_FAILURES:
            circuit_move(circuit, RouteCircuit.State.OPEN, f"{circuit.consecutive_failures} consecutive route failures")


def circuits_half_open(*, now=None) -> int:
    """Every open circuit past its cool-down becomes half-open, stored (beat, with the quality rollup: tasks.py);
    returns how many. Routing already treats a cooled open circuit as half-open (lcr.py), so trial traffic does
    not wait for this; it makes the state and its transition visible in admin, the audit log and alerts.
    Safe when two runs overlap: each row is locked and skipped when another run holds it."""
    now = now or timezone.now()
    moved = 0
    cooled = now - timedelta(seconds=settings.ROUTING_CIRCUIT_COOLDOWN_SECONDS)
    candidates = RouteCircuit.objects.filter(state=RouteCircuit.State.OPEN, opened_at__lte=cooled).values_list(
        "pk", flat=True)
    for pk in list(candidates[:500]):
        with transaction.atomic():
            circuit = RouteCircuit.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
            if circuit is not None and circuit.state == RouteCircuit.State.OPEN and _cooled(circuit, now):
                circuit_move(circuit, RouteCircuit.State.HALF_OPEN, "the cool-down is over: trial traffic")
                moved += 1
    return moved


def _cooled(circuit: RouteCircuit, now) -> bool:
    return circuit.opened_at is not None and now - circuit.opened_at >= timedelta(
        seconds=settings.ROUTING_CIRCUIT_COOLDOWN_SECONDS)


def circuit_move(circuit: RouteCircuit, to: str, reason: str) -> None:
    """Change a circuit's state: recorded for admin, in the audit log, and logged as `route.circuit` for alerts."""
    now = timezone.now()
    before = circuit.state
    circuit.state, circuit.reason, circuit.changed_at = to, reason, now
    if to == RouteCircuit.State.OPEN:
        circuit.opened_at = now
    if to == RouteCircuit.State.CLOSED:
        circuit.consecutive_failures = 0
    circuit.save()
    RouteCircuitTransition.objects.create(route_id=circuit.route_id, from_state=before, to_state=to, reason=reason)
    route = circuit.route
    audit_record(action=f"route.circuit_{to}", actor=SYSTEM, target=route,
                 changes={"route": str(route), "from": before, "to": to, "reason": reason})
    logger.warning("route.circuit %s: %s -> %s (%s)", route, before, to, reason,
                   extra={"event": "route.circuit", "route_id": route.pk, "carrier": route.carrier.name,
                          "from_state": before, "to_state": to, "reason": reason})
