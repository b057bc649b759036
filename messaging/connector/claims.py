"""The connector's work in the database: claiming attempts, settling them, and the sweeps over dead connectors.

Dispatch records an SMPP route's attempt `pending` and leaves its message `sending` (routing/dispatching.py,
only while a connector reports the carrier bound). A connector process claims pending attempts of its
carriers with FOR UPDATE SKIP LOCKED, stamping them `submitting`, `claimed_by` and `claimed_at` in the same
statement: two processes, on one host or several, never claim one attempt. What it learns goes back through
dispatch.outcomes_record, as a worker's submit does. The connector sweep (beat, connector_claims_sweep_task) settles the rest:

- an attempt still `pending` after CONNECTOR_PICKUP_SECONDS (no connector took it): a route error, so the
  message fails over to its next route;
- an attempt `submitting` whose connector's lease is older than CONNECTOR_LEASE_SECONDS (it died and was not
  restarted on its host, where its journal is): outcome unknown (RELIABILITY.md decision 3, docs/carriers.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from messaging import dispatch
from messaging.carriers.base import CarrierError, PermanentError, RouteError, SubmitResult, TransientError
from messaging.lifecycle import messages_transition
from messaging.models import Message, MessageEvent, Status
from messaging.routing import dispatching
from messaging.routing.models import Carrier, ConnectorLease, MessageAttempt, Route

logger = logging.getLogger("messaging.connector")
Outcome = MessageAttempt.Outcome
SWEEP_BATCH = 1000
UNKNOWN_TEXT = ("The connector stopped after sending the message and before the carrier answered: the carrier "
                "may or may not have it, so it is not sent again.")


@dataclass
class Claimed:
    attempt: MessageAttempt | ClaimedAttempt
    message: Message | ClaimedMessage


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    """What a claim reads of an attempt: what the outcome's bookkeeping (dispatching.attempts_record) needs."""

    pk: int
    message_id: int
    route_id: int | None
    carrier: str


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """What a claim reads of a message: what the submit (routing.connectors.outbound_message), its outcome
    (dispatch.outcomes_record) and a retry (pipeline.retry_schedule) read. No model is built: a claim runs once
    per window's worth of messages, and a model costs more than the submit_sm."""

    pk: int
    tenant_id: int
    public_id: str
    to: str
    sender: str
    text: str
    message_type: str
    status: str
    encoding: str
    created_at: datetime
    expires_at: datetime | None
    attempts: int


_ATTEMPT_FIELDS = ("id", "message_id", "route_id", "carrier")
_MESSAGE_FIELDS = ("id", "tenant_id", "public_id", "to", "sender", "text", "message_type", "status", "encoding",
                   "created_at", "expires_at", "attempts")


def attempts_claim(*, carrier: str, owner: str, limit: int) -> list[Claimed]:
    """Up to `limit` pending attempts of `carrier`, oldest first, now `submitting` for `owner`, with their
    messages. An attempt whose message is no longer `sending` (canceled, expired by the sweeper) is closed."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        rows = _claimed_postgresql(carrier=carrier, owner=owner, limit=limit, now=now)
    else:
        rows = _claimed_portable(carrier=carrier, owner=owner, limit=limit, now=now)
    claimed, stale = [], []
    for attempt, message in rows:
        if message is None or message.status != Status.SENDING:
            stale.append(attempt.pk)
        else:
            claimed.append(Claimed(attempt, message))
    if stale:
        # unscoped: the attempts just claimed, by their ids
        MessageAttempt.unscoped.filter(pk__in=stale).update(outcome=Outcome.RETRY, error_code="message_moved_on",
                                                            finished_at=now)
    return claimed


def _claimed_postgresql(*, carrier: str, owner: str, limit: int,
                        now: datetime) -> list[tuple[ClaimedAttempt, ClaimedMessage | None]]:
    """One statement: lock (SKIP LOCKED: two processes never claim one attempt), stamp, and read back the
    attempts with their messages' columns."""
    columns = ", ".join([f"a.{connection.ops.quote_name(MessageAttempt._meta.get_field(f).column)}"
                         for f in _ATTEMPT_FIELDS]
                        + [f"m.{connection.ops.quote_name(Message._meta.get_field(f).column)}"
                           for f in _MESSAGE_FIELDS])
    # unscoped (raw SQL): the connector's claim, over every tenant's attempts for its carrier
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH a AS (UPDATE messaging_messageattempt SET outcome = %s, claimed_by = %s, claimed_at = %s "  # noqa: S608
            " WHERE id IN (SELECT id FROM messaging_messageattempt WHERE outcome = %s AND carrier = %s ORDER BY id"
            " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, message_id, route_id, carrier) "
            f"SELECT {columns} FROM a LEFT JOIN messaging_message m ON m.id = a.message_id ORDER BY a.id",
            [Outcome.SUBMITTING, owner, now, Outcome.PENDING, carrier, limit])
        rows = cursor.fetchall()
    split = len(_ATTEMPT_FIELDS)
    return [(ClaimedAttempt(*row[:split]), ClaimedMessage(*row[split:]) if row[split] is not None else None)
            for row in rows]


def _claimed_portable(*, carrier: str, owner: str, limit: int,
                      now: datetime) -> list[tuple[ClaimedAttempt, ClaimedMessage | None]]:
    with transaction.atomic():  # SQLite: one writer at a time, so select-then-update is the claim
        # unscoped: the connector's claim, over every tenant's attempts for its carrier
        ids = list(MessageAttempt.unscoped.filter(outcome=Outcome.PENDING, carrier=carrier)
                   .order_by("id").values_list("id", flat=True)[:limit])
        MessageAttempt.unscoped.filter(pk__in=ids, outcome=Outcome.PENDING).update(
            outcome=Outcome.SUBMITTING, claimed_by=owner, claimed_at=now)
    if not ids:
        return []
    # unscoped: the attempts just claimed, by their ids, and their messages
    attempts = [ClaimedAttempt(*row) for row in MessageAttempt.unscoped.filter(pk__in=ids).order_by("id")
                .values_list(*_ATTEMPT_FIELDS)]
    messages = Message.unscoped.filter(pk__in=[a.message_id for a in attempts]).values_list(*_MESSAGE_FIELDS)
    by_id = {row[0]: ClaimedMessage(*row) for row in messages}
    return [(attempt, by_id.get(attempt.message_id)) for attempt in attempts]


def outcomes_store(*, carrier: str, done: list[tuple[Claimed, SubmitResult | CarrierError]]) -> dict[str, int]:
    """The SMSC's answers for claimed attempts, as dispatch stores a worker's."""
    counts = {"sent": 0, "failed": 0, "retrying": 0, "expired": 0}
    if done:
        dispatch.outcomes_record(carrier=carrier, messages=[c.message for c, _ in done],
                                 outcomes=[outcome for _, outcome in done], counts=counts,
                                 attempts=[c.attempt for c, _ in done])
    return counts


def error_from_journal(error_class: str, code: str) -> CarrierError:
    kind = {"PermanentError": PermanentError, "RouteError": RouteError}.get(error_class, TransientError)
    return kind(code, "The carrier refused the message (recorded before a restart).")


def unknown_settle(attempt_ids: list[int], *, source: str = MessageEvent.Source.WORKER) -> int:
    """Attempts whose outcome nobody knows: `unknown`, and their messages `failed` with `submit_unknown`
    (at most once: not sent again). Returns how many messages ended so."""
    if not attempt_ids:
        return 0
    now = timezone.now()
    # unscoped: settling a connector's claims, by attempt ids
    message_ids = list(MessageAttempt.unscoped.filter(pk__in=attempt_ids, outcome=Outcome.SUBMITTING)
                       .values_list("message_id", flat=True))
    MessageAttempt.unscoped.filter(pk__in=attempt_ids, outcome=Outcome.SUBMITTING).update(
        outcome=Outcome.UNKNOWN, error_code="submit_unknown", finished_at=now)
    moved = messages_transition(message_ids=message_ids, to=Status.FAILED, source=source, error_code="submit_unknown",
                                error_message=UNKNOWN_TEXT, expected=frozenset({Status.SENDING}))
    if moved:
        logger.warning("connector: %d messages with an unknown outcome end failed (submit_unknown)", len(moved))
    return len(moved)


def attempts_release(attempt_ids: list[int], *, owner: str) -> int:
    """Claimed and never sent (the journal says so): pending again, for any connector to claim."""
    # unscoped: settling a connector's claims, by attempt ids
    return MessageAttempt.unscoped.filter(pk__in=attempt_ids, outcome=Outcome.SUBMITTING, claimed_by=owner).update(
        outcome=Outcome.PENDING, claimed_by="", claimed_at=None)


def claims_held(owner: str) -> list[Claimed]:
    """The attempts `owner` claimed and has not settled (after a restart: the run before's), with messages."""
    # unscoped: a connector's own claims, by its name
    attempts = list(MessageAttempt.unscoped.filter(outcome=Outcome.SUBMITTING, claimed_by=owner).order_by("id"))
    messages = {m.pk: m for m in Message.unscoped.filter(pk__in=[a.message_id for a in attempts])}
    return [Claimed(a, messages[a.message_id]) for a in attempts if a.message_id in messages]


# --- leases and session states ------------------------------------------------------------------------


def lease_beat(*, name: str, host: str, pid: int, started: bool = False) -> None:
    now = timezone.now()
    defaults = {"host": host, "pid": pid, "heartbeat_at": now}
    if started:
        defaults["started_at"] = now
    ConnectorLease.objects.update_or_create(name=name, defaults=defaults)


def lease_end(name: str) -> None:
    ConnectorLease.objects.filter(name=name).delete()


def session_state_report(*, carrier_id: int, bound: bool, stopping: bool = False) -> None:
    """This process's view of a carrier's session. `bound` always wins; `down` replaces another process's
    `bound` only once that report is stale (two heartbeats), so one process's broken link does not hide a
    carrier another process serves. A process that stops says `down` at once (another one that serves the
    carrier says `bound` again at its next heartbeat)."""
    now = timezone.now()
    if bound or stopping:
        Carrier.objects.filter(pk=carrier_id).update(session_state="bound" if bound else "down", session_state_at=now)
        return
    stale = now - timedelta(seconds=2 * settings.CONNECTOR_HEARTBEAT_SECONDS)
    Carrier.objects.filter(Q(session_state_at__lt=stale) | Q(session_state_at__isnull=True) | ~Q(session_state="bound"),
                           pk=carrier_id).update(session_state="down", session_state_at=now)


def link_failures_record(*, carrier_id: int, failures: int) -> None:
    """A carrier's failed binds or dropped links: route-level failures of each of its routes, so that a carrier
    that stays down opens their circuits (ROUTING_CIRCUIT_FAILURES in a row) as failed submits would."""
    for route_id in Route.objects.filter(carrier_id=carrier_id, enabled=True).values_list("pk", flat=True):
        dispatching.circuit_record(route_id=route_id, successes=0, failures=failures, last_failed=True)


# --- the sweep (beat: messaging.tasks.connector_claims_sweep_task) -----------------------------------------------------------


def connector_claims_sweep() -> dict[str, int]:
    """Fail over attempts no connector picked up; settle the claims of connectors that died for good."""
    now = timezone.now()
    counts = {"pickup_failovers": 0, "unknown": 0}
    pickup = now - timedelta(seconds=settings.CONNECTOR_PICKUP_SECONDS)
    with transaction.atomic():
        # unscoped: the sweep over every tenant's waiting attempts; locked so that a connector's claim skips them
        waiting = list(MessageAttempt.unscoped.select_for_update(skip_locked=True)
                       .filter(outcome=Outcome.PENDING, started_at__lte=pickup).order_by("id")[:SWEEP_BATCH])
        if waiting:
            # unscoped: as above
            MessageAttempt.unscoped.filter(pk__in=[a.pk for a in waiting]).update(outcome=Outcome.SUBMITTING,
                                                                                   claimed_by="sweeper", claimed_at=now)
    if waiting:
        messages = {m.pk: m for m in Message.unscoped.filter(pk__in=[a.message_id for a in waiting])}
        done = [(Claimed(a, messages[a.message_id]), RouteError("connector_pickup", "No connector took the message."))
                for a in waiting if a.message_id in messages]
        outcomes_store(carrier="", done=done)
        counts["pickup_failovers"] = len(done)
    dead = now - timedelta(seconds=settings.CONNECTOR_LEASE_SECONDS)
    alive = ConnectorLease.objects.filter(name=OuterRef("claimed_by"), heartbeat_at__gt=dead)
    # unscoped: as above; claims whose connector stopped beating (claimed_at: give a fresh claim its lease)
    orphaned = list(MessageAttempt.unscoped.filter(outcome=Outcome.SUBMITTING, claimed_at__lte=dead)
                    .exclude(claimed_by="").filter(~Exists(alive)).values_list("pk", flat=True)[:SWEEP_BATCH])
    counts["unknown"] = unknown_settle(orphaned, source=MessageEvent.Source.SWEEPER)
    return counts

