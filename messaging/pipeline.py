"""The send pipeline after accept: dispatch to a carrier, delivery receipts, and the sweeper.

Each step is safe to run twice: dispatch claims the row (queued -> sending)
before doing anything, receipts go through the lifecycle table, and the
sweeper's changes are conditional transitions. The message row is the durable
record of what is due: a dispatch task in the broker only makes it happen sooner.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from messaging.carriers import PermanentError, TransientError
from messaging.lifecycle import message_transition, messages_transition
from messaging.models import Message, MessageEvent, Status
from messaging.parts import PartReceipt, part_receipts_apply, receipts_match
from messaging.routing import dispatching
from messaging.routing.connectors import connector_for, connector_named
from smsportal.countdowns import countdown_limit

logger = logging.getLogger("smsportal.pipeline")

WORKER, CARRIER, SWEEPER = MessageEvent.Source.WORKER, MessageEvent.Source.CARRIER, MessageEvent.Source.SWEEPER
MAX_BACKOFF_SECONDS = 300
# A retry due within this long rides on a task countdown; a later one waits in `next_attempt_at`
# and the sweeper hands it over when due. At most half the broker's visibility timeout (checked at
# start: smsportal/countdowns.py).
MAX_COUNTDOWN_SECONDS = countdown_limit("messaging.pipeline.MAX_COUNTDOWN_SECONDS", 30)
SWEEP_BATCH = 500


def retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: ~2 s, 4 s, 8 s ... capped at 5 minutes."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2 ** max(attempt, 1))
    return max(1.0, random.uniform(ceiling / 2, ceiling))


def message_dispatch(*, message_id: int) -> float | None:
    """Submit one message. Returns seconds until the next attempt when a retry is due, else None;
    the retry is already handed over (a task countdown, or `next_attempt_at` for the sweeper).

    No database transaction is open while the carrier is called.
    """
    now = timezone.now()
    # unscoped: the dispatch task carries the message id, not a tenant
    message = Message.unscoped.filter(pk=message_id).first()
    if message is None or message.status != Status.QUEUED:
        return None  # a duplicate task, a canceled or already-handled message
    if message.next_attempt_at and message.next_attempt_at > now + timedelta(seconds=1):
        return None  # early duplicate; the scheduled retry (or the sweeper) will come
    if message.expires_at <= now:
        message_transition(message_id=message_id, to=Status.EXPIRED, source=WORKER, error_code="expired",
                           error_message="The validity period ended before the message could be sent.")
        return None
    claimed = message_transition(message_id=message_id, to=Status.SENDING, source=WORKER,
                                 expected=frozenset({Status.QUEUED}), increment_attempts=True,
                                 detail="submitting to the carrier")
    if claimed is None:
        return None
    return _submit(claimed)


def _submit(message: Message) -> float | None:
    try:
        connector = connector_for(message)
        result = connector.submit(message)
    except PermanentError as exc:
        message_transition(message_id=message.pk, to=Status.FAILED, source=WORKER, error_code=exc.code,
                           error_message=exc.message, carrier_error_code=exc.carrier_error_code,
                           expected=frozenset({Status.SENDING}))
        return None
    except TransientError as exc:
        return retry_schedule(message=message, code=exc.code, text=exc.message, carrier_code=exc.carrier_error_code)
    except Exception as exc:  # an unexpected connector failure is retried like a transient one
        logger.exception("carrier submit failed for %s", message.public_id)
        return retry_schedule(message=message, code="carrier_error", text=exc.__class__.__name__, carrier_code="")
    # Record the carrier id first: a receipt may already have moved the message past `sent`.
    # unscoped: the message being dispatched, by its id
    Message.unscoped.filter(pk=message.pk).update(carrier=connector.name, carrier_message_id=result.carrier_message_id)
    message_transition(message_id=message.pk, to=Status.SENT, source=WORKER, detail=f"accepted by {connector.name}",
                       expected=frozenset({Status.SENDING}))
    return None


def retry_schedule(*, message: Message, code: str, text: str, carrier_code: str,
                   delay: float | None = None) -> float | None:
    """After a transient error of the attempt `message` (claimed, `sending`) made: back to queued with
    backoff (or after `delay`: 0 for a failover to the next route), or expired when the next try would
    come after its validity. Returns the delay, or None."""
    delay = retry_delay(message.attempts) if delay is None else delay
    next_at = timezone.now() + timedelta(seconds=delay)
    if next_at >= message.expires_at:
        message_transition(message_id=message.pk, to=Status.EXPIRED, source=WORKER, error_code="expired",
                           error_message=f"Validity period ended while retrying ({code}: {text}).",
                           carrier_error_code=carrier_code, expected=frozenset({Status.SENDING}))
        return None
    requeued = message_transition(message_id=message.pk, to=Status.QUEUED, source=WORKER,
                                  detail=f"transient error {code}: {text}; retry in {delay:.0f} s",
                                  carrier_error_code=carrier_code, expected=frozenset({Status.SENDING}),
                                  fields={"next_attempt_at": next_at, "enqueued_at": None}, webhook=False)
    if requeued is None:
        return None
    if delay <= MAX_COUNTDOWN_SECONDS:
        from messaging.services import message_dispatch_publish

        message_dispatch_publish(message=requeued, countdown=delay)
    return delay


# --- Delivery receipts ----------------------------------------------------------------------

RECEIPT_STATUSES = {
    "accepted": Status.SENT, "enroute": Status.SENT, "sent": Status.SENT,
    "delivered": Status.DELIVERED, "undelivered": Status.UNDELIVERED, "rejected": Status.UNDELIVERED,
    "expired": Status.UNDELIVERED, "failed": Status.FAILED,
}


def receipt_apply(
    *, carrier: str, carrier_message_id: str, status: str, reference: str | None = None,
    carrier_error_code: str = "", detail: str = "",
) -> Message | None:
    """Apply a delivery receipt from any connector. Idempotent (a repeated receipt changes
    nothing) and order-safe (a late `sent` never overwrites `delivered`): both follow from the
    lifecycle table. The message is found by our own ids, never by fields the carrier could lie about."""
    mapped = RECEIPT_STATUSES.get(status.lower())
    if mapped is None:
        logger.warning("receipt from %s with unknown status %r ignored", carrier, status)
        return None
    # unscoped: carrier receipt matching: the carrier's id names the message, any tenant's
    # carrier_message_id != "" spelled out: the partial index `message_carrier_id` then serves the query
    # under any parameter binding, and an empty id never matches a message not yet dispatched.
    message = (Message.unscoped.filter(carrier=carrier, carrier_message_id=carrier_message_id)
               .exclude(carrier_message_id="").first())
    if message is None and reference:
        message = Message.unscoped.filter(public_id=reference).first()
    if message is None:
        logger.warning("receipt from %s for unknown message %s ignored", carrier, carrier_message_id)
        return None
    failure = mapped in (Status.UNDELIVERED, Status.FAILED)
    moved = message_transition(
        message_id=message.pk, to=mapped, source=CARRIER, detail=detail or f"receipt: {status}",
        error_code="carrier_" + mapped if failure else "", error_message=detail if failure else "",
        carrier_error_code=carrier_error_code,
    )
    if moved is not None:
        _attempts_finish([moved.pk], mapped)
    return moved


@dataclass(frozen=True)
class Receipt:
    carrier_message_id: str
    status: str
    reference: str | None = None
    carrier_error_code: str = ""
    detail: str = ""


def receipts_apply(*, carrier: str, receipts: list[Receipt]) -> int:
    """receipt_apply for many receipts of one carrier at once, with the same outcome per receipt;
    returns how many changed a message. A receipt may name a part of a long message (messaging/parts.py):
    the message is delivered with its last part and undelivered or failed with its first failed one. One
    query matches the whole batch; then a few statements per distinct status, not per receipt."""
    known = receipts_match(carrier=carrier, carrier_ids=[r.carrier_message_id for r in receipts])
    missing = [r.reference for r in receipts if r.carrier_message_id not in known and r.reference]
    # unscoped: carrier receipt matching; a receipt that overtook the worker's record of the carrier id, by our reference
    by_reference = dict(Message.unscoped.filter(public_id__in=missing).values_list("public_id", "pk")) if missing else {}
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    parted: list[PartReceipt] = []
    for receipt in receipts:
        mapped = RECEIPT_STATUSES.get(receipt.status.lower())
        match = known.get(receipt.carrier_message_id)
        pk = match.message_id if match is not None else by_reference.get(receipt.reference or "")
        if mapped is None or pk is None:
            logger.warning("receipt from %s for %s (%r) ignored: unknown %s", carrier, receipt.carrier_message_id,
                           receipt.status, "status" if mapped is None else "message")
            continue
        detail = receipt.detail or f"receipt: {receipt.status}"
        if match is not None and match.part_id and mapped != Status.SENT:
            parted.append(PartReceipt(match, mapped, detail, receipt.carrier_error_code))
            continue
        groups.setdefault((mapped, detail, receipt.carrier_error_code, receipt.detail), []).append(pk)
    changed = 0
    for (mapped, detail, carrier_code, error_detail), ids in groups.items():
        failure = mapped in (Status.UNDELIVERED, Status.FAILED)
        moved = messages_transition(
            message_ids=ids, to=mapped, source=CARRIER, detail=detail, carrier_error_code=carrier_code,
            error_code="carrier_" + mapped if failure else "", error_message=error_detail if failure else "")
        _attempts_finish([m.pk for m in moved], mapped)
        changed += len(moved)
    by_status: dict[str, list[int]] = {}
    for message in part_receipts_apply(parted):
        by_status.setdefault(message.status, []).append(message.pk)
    for status, ids in by_status.items():
        _attempts_finish(ids, status)
        changed += len(ids)
    return changed


def receipts_unmatched(*, carrier: str, receipts: list[Receipt]) -> set[str]:
    """The carrier ids of these receipts that name no message of the carrier, nor a part of one (nor by our
    reference), yet."""
    known = set(receipts_match(carrier=carrier, carrier_ids=list({r.carrier_message_id for r in receipts})))
    references = [r.reference for r in receipts if r.carrier_message_id not in known and r.reference]
    # unscoped: as above, by our reference
    referenced = set(Message.unscoped.filter(public_id__in=references).values_list("public_id", flat=True))
    return {r.carrier_message_id for r in receipts
            if r.carrier_message_id not in known and (r.reference or "") not in referenced}


def _attempts_finish(message_ids: list[int], status: str) -> None:
    """A final receipt's outcome on the routed attempt (route quality counts it: routing/quality.py)."""
    if message_ids and settings.LIVE_CARRIER == "routes" and status in (Status.DELIVERED, Status.UNDELIVERED,
                                                                        Status.FAILED):
        dispatching.attempts_finish(message_ids=message_ids, delivered=status == Status.DELIVERED)


# --- The sweeper -----------------------------------------------------------------------------


def messages_sweep() -> dict[str, int]:
    """Every few seconds from beat: release due scheduled messages, expire overdue queued ones,
    hand over queued messages no dispatch task is known for, re-enqueue lost tasks, reclaim
    abandoned claims, and resolve `sent` messages whose receipt is overdue.

    Safe when two runs overlap: every change is a conditional transition, a duplicate dispatch task
    is a no-op and a repeated receipt changes nothing. Each step handles at most SWEEP_BATCH rows."""
    now = timezone.now()
    counts = {"released": 0, "expired": 0, "handed_over": 0, "requeued": 0, "reclaimed": 0,
              "receipts": 0, "receipt_timeouts": 0}
    _release_scheduled(now, counts)
    for message in _batch(status=Status.QUEUED, expires_at__lte=now):
        if message_transition(message_id=message.pk, to=Status.EXPIRED, source=SWEEPER, error_code="expired",
                              error_message="The validity period ended before the message could be sent.",
                              expected=frozenset({Status.QUEUED})):
            counts["expired"] += 1
    _hand_over(now, counts)
    _reclaim(now, counts)
    _receipts_overdue(now, counts)
    _receipts_timed_out(now, counts)
    return counts


def _release_scheduled(now, counts: dict[str, int]) -> None:
    for message in _batch(status=Status.SCHEDULED, scheduled_at__lte=now):
        released = message_transition(message_id=message.pk, to=Status.QUEUED, source=SWEEPER,
                                      detail="scheduled time", fields={"enqueued_at": None})
        if released is not None:
            counts["released"] += 1
            if not _publish(released):
                return  # the broker is down: the hand-over step takes them once it is back


def _hand_over(now, counts: dict[str, int]) -> None:
    """Queued messages that are due and have no dispatch task known to be in the broker: their publish
    failed (broker down), their process died before it, or a retry waited in `next_attempt_at`. A
    fresh message is given MESSAGE_DISPATCH_PICKUP_SECONDS for its own publish; a task published this
    sweeper stamps `enqueued_at`, so the next run does not publish it again. Then tasks published more
    than MESSAGE_STUCK_SECONDS ago that never ran (lost with a broker's data): once per that period,
    so a long backlog is not flooded with duplicates."""
    pickup = now - timedelta(seconds=settings.MESSAGE_DISPATCH_PICKUP_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    awaiting = _batch(Q(next_attempt_at__isnull=True, status_changed_at__lte=pickup) | Q(next_attempt_at__lte=now),
                      status=Status.QUEUED, enqueued_at__isnull=True, expires_at__gt=now)
    lost = _batch(due, status=Status.QUEUED, expires_at__gt=now,
                  enqueued_at__lte=now - timedelta(seconds=settings.MESSAGE_STUCK_SECONDS))
    for name, messages in (("handed_over", awaiting), ("requeued", lost)):
        for message in messages:
            if not _publish(message):
                return
            counts[name] += 1


def _reclaim(now, counts: dict[str, int]) -> None:
    stuck = now - timedelta(seconds=settings.MESSAGE_STUCK_SECONDS)
    # A message whose attempt waits for or is held by an SMPP connector is the connector sweep's
    # (messaging/connector/claims.py), not this one's.
    for message in _batch(~dispatching.attempt_held(), status=Status.SENDING, status_changed_at__lte=stuck):
        # A worker died between claim and outcome. Submitting again is safe: the carrier is
        # given our message id as its idempotency reference. A routed attempt the worker held ends unknown.
        reclaimed = message_transition(message_id=message.pk, to=Status.QUEUED, source=SWEEPER,
                                       detail="claim abandoned by a worker; re-enqueued",
                                       expected=frozenset({Status.SENDING}), webhook=False,
                                       fields={"enqueued_at": None, "next_attempt_at": None})
        if reclaimed is not None:
            counts["reclaimed"] += 1
            dispatching.attempts_abandon(message_id=reclaimed.pk)
            if not _publish(reclaimed):
                return


def _receipts_overdue(now, counts: dict[str, int]) -> None:
    """`sent` for MESSAGE_RECEIPT_OVERDUE_SECONDS without a receipt (its receipt task lost, or held by
    a killed worker until the visibility timeout): ask the carrier again where it allows it. The
    simulator answers as it first did; the receipt is idempotent. A message with no answer is asked
    again one period later (`next_attempt_at`), so it does not hold up the batch."""
    overdue = timedelta(seconds=settings.MESSAGE_RECEIPT_OVERDUE_SECONDS)
    for message in _batch(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status=Status.SENT,
                          status_changed_at__lte=now - overdue):
        query = getattr(connector_named(message.carrier), "receipt_query", None)
        status = query(message) if query is not None else None
        if status is not None and receipt_apply(carrier=message.carrier, carrier_message_id=message.carrier_message_id,
                                                status=status, reference=message.public_id,
                                                detail=f"receipt: {status} (asked again: overdue)"):
            counts["receipts"] += 1
        else:
            # unscoped: the receipt sweep, over every tenant
            Message.unscoped.filter(pk=message.pk, status=Status.SENT).update(next_attempt_at=now + overdue)


def _receipts_timed_out(now, counts: dict[str, int]) -> None:
    """A `sent` message whose receipt never came ends `undelivered` (`receipt_timeout`) once its
    validity period and MESSAGE_RECEIPT_GRACE_SECONDS are over: no carrier reports later than that."""
    grace = settings.MESSAGE_RECEIPT_GRACE_SECONDS
    for message in _batch(status=Status.SENT, expires_at__lte=now - timedelta(seconds=grace)):
        if message_transition(message_id=message.pk, to=Status.UNDELIVERED, source=SWEEPER,
                              error_code="receipt_timeout", expected=frozenset({Status.SENT}),
                              error_message=f"No delivery receipt came within the validity period and {grace} s."):
            counts["receipt_timeouts"] += 1


def _publish(message: Message) -> bool:
    from messaging.services import message_dispatch_publish

    return message_dispatch_publish(message=message)


def _batch(*conditions: Q, **filters) -> list[Message]:
    # unscoped: the message sweeps, over every tenant
    return list(Message.unscoped.filter(*conditions, **filters).order_by("status_changed_at")[:SWEEP_BATCH])
