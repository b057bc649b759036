"""The send pipeline after accept: dispatch to a carrier, delivery receipts, and the sweeper.

Each step is safe to run twice: dispatch claims the row (queued -> sending)
before doing anything, receipts go through the lifecycle table, and the
sweeper's changes are conditional transitions.
"""
from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from messaging.carriers import PermanentError, TransientError, connector_for
from messaging.lifecycle import message_transition
from messaging.models import Message, MessageEvent, Status

logger = logging.getLogger("smsportal.pipeline")

WORKER, CARRIER, SWEEPER = MessageEvent.Source.WORKER, MessageEvent.Source.CARRIER, MessageEvent.Source.SWEEPER
MAX_BACKOFF_SECONDS = 300  # well under the broker's visibility timeout / 2
SWEEP_BATCH = 500


def retry_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: ~2 s, 4 s, 8 s ... capped at 5 minutes."""
    ceiling = min(MAX_BACKOFF_SECONDS, 2 ** max(attempt, 1))
    return max(1.0, random.uniform(ceiling / 2, ceiling))


def message_dispatch(*, message_id: int) -> float | None:
    """Submit one message. Returns seconds until the next attempt when a retry is due, else None.

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
        return _after_transient(message, exc.code, exc.message, exc.carrier_error_code)
    except Exception as exc:  # an unexpected connector failure is retried like a transient one
        logger.exception("carrier submit failed for %s", message.public_id)
        return _after_transient(message, "carrier_error", exc.__class__.__name__, "")
    # Record the carrier id first: a receipt may already have moved the message past `sent`.
    # unscoped: the message being dispatched, by its id
    Message.unscoped.filter(pk=message.pk).update(carrier=connector.name, carrier_message_id=result.carrier_message_id)
    message_transition(message_id=message.pk, to=Status.SENT, source=WORKER, detail=f"accepted by {connector.name}",
                       expected=frozenset({Status.SENDING}))
    return None


def _after_transient(message: Message, code: str, text: str, carrier_code: str) -> float | None:
    delay = retry_delay(message.attempts)
    next_at = timezone.now() + timedelta(seconds=delay)
    if next_at >= message.expires_at:
        message_transition(message_id=message.pk, to=Status.EXPIRED, source=WORKER, error_code="expired",
                           error_message=f"Validity period ended while retrying ({code}: {text}).",
                           carrier_error_code=carrier_code, expected=frozenset({Status.SENDING}))
        return None
    requeued = message_transition(message_id=message.pk, to=Status.QUEUED, source=WORKER,
                                  detail=f"transient error {code}: {text}; retry in {delay:.0f} s",
                                  carrier_error_code=carrier_code, expected=frozenset({Status.SENDING}),
                                  fields={"next_attempt_at": next_at}, webhook=False)
    return delay if requeued is not None else None


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
    message = Message.unscoped.filter(carrier=carrier, carrier_message_id=carrier_message_id).first()
    if message is None and reference:
        message = Message.unscoped.filter(public_id=reference).first()
    if message is None:
        logger.warning("receipt from %s for unknown message %s ignored", carrier, carrier_message_id)
        return None
    failure = mapped in (Status.UNDELIVERED, Status.FAILED)
    return message_transition(
        message_id=message.pk, to=mapped, source=CARRIER, detail=detail or f"receipt: {status}",
        error_code="carrier_" + mapped if failure else "", error_message=detail if failure else "",
        carrier_error_code=carrier_error_code,
    )


# --- The sweeper -----------------------------------------------------------------------------


def messages_sweep() -> dict[str, int]:
    """Release due scheduled messages, expire overdue queued ones, re-enqueue stuck ones.

    Runs from beat; safe when two runs overlap (every change is a conditional transition,
    and a duplicate dispatch task is a no-op)."""
    from messaging.services import message_enqueue

    now = timezone.now()
    counts = {"released": 0, "expired": 0, "requeued": 0, "reclaimed": 0}
    for message in _batch(status=Status.SCHEDULED, scheduled_at__lte=now):
        if message_transition(message_id=message.pk, to=Status.QUEUED, source=SWEEPER, detail="scheduled time"):
            message_enqueue(message=message)
            counts["released"] += 1
    for message in _batch(status=Status.QUEUED, expires_at__lte=now):
        if message_transition(message_id=message.pk, to=Status.EXPIRED, source=SWEEPER, error_code="expired",
                              error_message="The validity period ended before the message could be sent.",
                              expected=frozenset({Status.QUEUED})):
            counts["expired"] += 1
    stuck = now - timedelta(seconds=settings.MESSAGE_STUCK_SECONDS)
    for message in _batch(status=Status.QUEUED, status_changed_at__lte=stuck, expires_at__gt=now):
        if message.next_attempt_at is None or message.next_attempt_at <= stuck:
            message_enqueue(message=message)  # a lost task: dispatch again (a duplicate is a no-op)
            counts["requeued"] += 1
    for message in _batch(status=Status.SENDING, status_changed_at__lte=stuck):
        # A worker died between claim and outcome. Submitting again is safe: the carrier is
        # given our message id as its idempotency reference.
        if message_transition(message_id=message.pk, to=Status.QUEUED, source=SWEEPER,
                              detail="claim abandoned by a worker; re-enqueued",
                              expected=frozenset({Status.SENDING}), webhook=False):
            message_enqueue(message=message)
            counts["reclaimed"] += 1
    return counts


def _batch(**filters) -> list[Message]:
    # unscoped: the message sweeps, over every tenant
    return list(Message.unscoped.filter(**filters).order_by("status_changed_at")[:SWEEP_BATCH])
