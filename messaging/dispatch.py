"""Dispatch in batches: claim many queued messages, hand them to their carrier at once, record the outcomes.

The same guarantees as one message at a time (messaging/pipeline.py message_dispatch), per message:
- at most one submit per attempt: the claim (queued -> sending, attempts + 1) is a conditional
  transition under row locks, so a duplicate task, or two tasks over the same ids, find nothing to claim;
- no database transaction is open while the carrier is called;
- a transient error goes back to `queued` with backoff (pipeline.retry_schedule), a permanent one
  ends `failed`, an unexpected failure of the connector is retried like a transient one;
- a worker killed after the claim leaves `sending` rows, which the sweeper reclaims after
  MESSAGE_STUCK_SECONDS (the carrier dedupes the resubmission on our reference);
- so a live worker is never taken for a dead one, a batch's submits end within DISPATCH_BUDGET_SHARE of
  MESSAGE_STUCK_SECONDS from its claim, over all its carrier groups: a carrier that hangs has its requests cut
  at that deadline (carrier_timeout: failover) and the messages not yet sent go back to the queue at once
  (dispatch_deadline), so none is still `sending` when the sweeper may reclaim it.
Statements are a constant number per set of outcomes, not one set per message (lifecycle.messages_transition):
one set per carrier group, or for an HTTP carrier one per ~0.2 s of requests finishing (_submit).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from itertools import groupby

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from messaging import pipeline
from messaging.carriers import (
    DEADLINE_PASSED,
    CarrierError,
    PermanentError,
    RouteError,
    SubmitResult,
    TransientError,
    submit_in_sets,
)
from messaging.lifecycle import messages_transition
from messaging.models import Message, MessageEvent, Status
from messaging.parts import parts_record
from messaging.routing import connectors, dispatching
from messaging.routing.connectors import connector_for
from messaging.routing.models import MessageAttempt
from smsportal.bulk import rows_update

logger = logging.getLogger("smsportal.pipeline")

WORKER = MessageEvent.Source.WORKER
Outcome = MessageAttempt.Outcome
# Ids per dispatch task: a 1,000-message accept becomes a few tasks, so every worker process takes a share.
DISPATCH_BATCH = 250
# The share of MESSAGE_STUCK_SECONDS a batch may spend submitting, from its claim: the rest is margin for
# recording the outcomes before the sweeper would take a `sending` message for abandoned.
DISPATCH_BUDGET_SHARE = 0.5


def messages_dispatch(*, message_ids: Sequence[int]) -> dict[str, int]:
    """One attempt for each of these messages that is queued and due; returns counts by outcome.

    Messages not queued (a duplicate task, canceled, already handled) or not yet due (an early
    duplicate of a scheduled retry) are left alone, as message_dispatch leaves them."""
    now = timezone.now()
    # unscoped: the dispatch task carries message ids, not a tenant (one accept's, or the sweeper's)
    rows = Message.unscoped.filter(pk__in=list(message_ids), status=Status.QUEUED).values_list(
        "pk", "expires_at", "next_attempt_at")
    due, expired = [], []
    for pk, expires_at, next_attempt_at in rows:
        if next_attempt_at and next_attempt_at > now + timedelta(seconds=1):
            continue
        (expired if expires_at <= now else due).append(pk)
    counts = {"expired": 0, "sent": 0, "failed": 0, "retrying": 0}
    if expired:
        counts["expired"] = len(messages_transition(
            message_ids=expired, to=Status.EXPIRED, source=WORKER, expected=frozenset({Status.QUEUED}),
            error_code="expired", error_message="The validity period ended before the message could be sent."))
    claimed = messages_transition(message_ids=due, to=Status.SENDING, source=WORKER, increment_attempts=True,
                                  expected=frozenset({Status.QUEUED}), detail="submitting to the carrier") if due else []
    deadline = time.monotonic() + settings.MESSAGE_STUCK_SECONDS * DISPATCH_BUDGET_SHARE
    routed = [m for m in claimed if _is_routed(m)]
    for connector, messages in _by_connector([m for m in claimed if not _is_routed(m)], counts):
        _submit(connector, messages, counts, deadline=deadline)
    if routed:
        _dispatch_routed(routed, counts, deadline=deadline)
    return counts


def _is_routed(message: Message) -> bool:
    """Live messages go by the routing table with LIVE_CARRIER = "routes"; test ones always to the simulator."""
    return message.mode != "test" and settings.LIVE_CARRIER == "routes"


def _dispatch_routed(messages: list[Message], counts: dict[str, int], *, deadline: float | None = None) -> None:
    """Least-cost routing with failover (messaging/routing/dispatching.py): a route and an attempt per
    message, one submit per carrier for its messages, the outcomes on the attempts and the circuits."""
    result = dispatching.messages_route(messages)
    by_reason: dict[str, list[Message]] = {}
    for message, reason in result.no_route:
        by_reason.setdefault(reason, []).append(message)
    for reason, failed in by_reason.items():
        counts["failed"] += _fail(failed, PermanentError("no_route", f"No route can carry this message ({reason})."))
    for message in result.exhausted:
        if pipeline.retry_schedule(message=message, code="all_routes_failed",
                                   text="every route failed this message; the plan is tried again",
                                   carrier_code="") is not None:
            counts["retrying"] += 1
    by_carrier: dict[int, list[dispatching.Routed]] = {}
    for item in result.routed:
        if item.attempt.outcome == Outcome.PENDING:
            counts["handed"] = counts.get("handed", 0) + 1  # to the connector process: its attempt waits for it
            continue
        by_carrier.setdefault(item.candidate.carrier.pk, []).append(item)
    for items in by_carrier.values():
        connector = connectors.connector_of(items[0].candidate.carrier)
        _submit(connector, [item.message for item in items], counts, attempts=[item.attempt for item in items],
                deadline=deadline)


def _by_connector(messages: list[Message], counts: dict[str, int]):
    """(connector, its messages); a message with no route fails here, as one submit would fail it."""
    groups: dict[str, tuple[object, list[Message]]] = {}
    unroutable: dict[tuple[str, str], list[Message]] = {}
    for message in messages:
        try:
            connector = connector_for(message)
        except PermanentError as exc:
            unroutable.setdefault((exc.code, exc.message), []).append(message)
            continue
        groups.setdefault(connector.name, (connector, []))[1].append(message)
    for (code, text), failed in unroutable.items():
        counts["failed"] += _fail(failed, PermanentError(code, text))
    return groups.values()


def _submit(connector, messages: list[Message], counts: dict[str, int],
            attempts: list[MessageAttempt] | None = None, deadline: float | None = None) -> None:
    """Submit one carrier's messages and record each set of outcomes as the connector gives it: an HTTP
    carrier's as its requests finish (at most every 0.2 s, transport.GATHER_SECONDS), so a receipt that
    overtakes a fast request's id finds it stored while a slow request of the group still runs, and a worker
    killed mid-group has stored what finished (the sweeper reclaims only the rest); other connectors' in one
    set. Counts, the sent transition, attempts and failover are outcomes_record's, set by set."""
    sets = submit_in_sets(connector, messages, deadline=deadline)
    recorded: set[int] = set()
    while len(recorded) < len(messages):
        try:
            done = next(sets, None)
        except Exception as exc:  # an unexpected connector failure: what is not recorded is retried like a transient one
            logger.exception("carrier submit of %d messages failed", len(messages) - len(recorded))
            done = [(i, TransientError("carrier_error", exc.__class__.__name__))
                    for i in range(len(messages)) if i not in recorded]
        if not done:
            break
        recorded.update(i for i, _ in done)
        outcomes_record(carrier=connector.name, messages=[messages[i] for i, _ in done],
                        outcomes=[outcome for _, outcome in done], counts=counts,
                        attempts=None if attempts is None else [attempts[i] for i, _ in done])


def outcomes_record(*, carrier: str, messages: list[Message], outcomes: Sequence[SubmitResult | CarrierError],
                    counts: dict[str, int], attempts: Sequence[MessageAttempt] | None = None) -> None:
    """What the carrier said to each message (claimed, `sending`): `sent` with its carrier id, back to the
    queue, or failed. `attempts`, for routed messages: their attempts, in the same order (the circuits and
    route quality count them). Used by dispatch and by the SMPP connector process (messaging/connector/)."""
    taken = [(m, o) for m, o in zip(messages, outcomes, strict=True) if isinstance(o, SubmitResult)]
    accepted = {m.pk: o.carrier_message_id for m, o in taken}
    if accepted:
        # The carrier ids first, whatever the status is by now: a receipt may already have moved a
        # message past `sent`, and later receipts find the message (or its part) by these ids. Then
        # `sent`, in the same transaction (one commit).
        # The ids and `sent` in one statement where there are no parts (messages_transition's `assign`: one
        # row version of each message, not two); a long message's parts are recorded under the locks that
        # _carrier_ids_record takes.
        parted = {m.pk: o.part_ids for m, o in taken if o.part_ids}
        with transaction.atomic():
            if parted:
                _carrier_ids_record(carrier=carrier, carrier_ids=accepted)
                parts_record(carrier=carrier, tenants={m.pk: m.tenant_id for m, o in taken if o.part_ids},
                             part_ids=parted)
            ids = {"carrier": dict.fromkeys(accepted, carrier), "carrier_message_id": accepted}
            counts["sent"] += len(messages_transition(message_ids=list(accepted), to=Status.SENT, source=WORKER,
                                                      # a routed message's events never name its carrier
                                                      detail="accepted by the carrier" if attempts is not None
                                                      else f"accepted by {carrier}",
                                                      expected=frozenset({Status.SENDING}),
                                                      assign=None if parted else ids))
    if attempts is not None:
        # After the carrier ids are safe: bookkeeping that fails (a deadlock on a circuit row) must not make
        # the accepted messages look unsent, or they would be sent again.
        try:
            dispatching.attempts_record(attempts, outcomes)
        except Exception:
            logger.exception("route attempts of %d messages not recorded", len(attempts))
        outcomes = [dispatching.error_for_customer(o, carrier=carrier) if isinstance(o, CarrierError) else o
                    for o in outcomes]
    errors = [(m, o) for m, o in zip(messages, outcomes, strict=True) if isinstance(o, CarrierError)]
    permanent = sorted(((m, o) for m, o in errors if isinstance(o, PermanentError)), key=_error_key)
    for _key, group in groupby(permanent, key=_error_key):
        pairs = list(group)
        counts["failed"] += _fail([m for m, _ in pairs], pairs[0][1])
    for message, error in errors:
        if not isinstance(error, PermanentError):
            # A transient error is rare and its backoff is per message: one at a time, as before. A route
            # error of a routed message goes back at once: its next dispatch takes the next route (failover).
            # Not sent for lack of time (DEADLINE_PASSED): back at once too, to the same plan.
            failover = attempts is not None and isinstance(error, RouteError)
            at_once = failover or error.code == DEADLINE_PASSED
            if pipeline.retry_schedule(message=message, code=error.code, text=error.message,
                                       carrier_code=error.carrier_error_code,
                                       delay=0.0 if at_once else None) is not None:
                counts["retrying"] += 1


def _carrier_ids_record(*, carrier: str, carrier_ids: dict[int, str]) -> None:
    """Set the carrier and each message's carrier id. The rows are locked in id order first, as every
    batch transition locks them: an UPDATE of many rows alone locks in heap order, and a receipt batch
    for the same rows could deadlock with it. On PostgreSQL in one statement."""
    if connection.vendor != "postgresql":
        # unscoped: the messages of this batch, by their ids
        list(Message.unscoped.select_for_update().filter(pk__in=list(carrier_ids)).order_by("pk").values_list("pk"))
        rows_update(model=Message, values={pk: {"carrier_message_id": cid} for pk, cid in carrier_ids.items()},
                    common={"carrier": carrier})
        return
    # unscoped (raw SQL): the messages of this batch, by their ids
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH v AS (SELECT * FROM unnest(%s::bigint[], %s::text[]) AS v(id, cid)), "
            "locked AS (SELECT m.id, v.cid FROM messaging_message m JOIN v ON v.id = m.id ORDER BY m.id FOR UPDATE OF m) "
            "UPDATE messaging_message m SET carrier = %s, carrier_message_id = locked.cid FROM locked "
            "WHERE m.id = locked.id", [list(carrier_ids), list(carrier_ids.values()), carrier])


def _error_key(pair: tuple[Message, CarrierError]) -> tuple[str, str, str]:
    error = pair[1]
    return error.code, error.message, error.carrier_error_code


def _fail(messages: list[Message], error: CarrierError) -> int:
    return len(messages_transition(
        message_ids=[m.pk for m in messages], to=Status.FAILED, source=WORKER, error_code=error.code,
        error_message=error.message, carrier_error_code=error.carrier_error_code, expected=frozenset({Status.SENDING})))


def dispatch_batches(message_ids: Sequence[int]) -> list[list[int]]:
    """The ids cut into the batches one dispatch task carries."""
    ids = list(message_ids)
    return [ids[i:i + DISPATCH_BATCH] for i in range(0, len(ids), DISPATCH_BATCH)]
