"""The message lifecycle: which status may follow which, enforced in one place.

`message_transition` is the only code that changes Message.status. It locks
the row, refuses a change the table does not allow (so a late `sent` never
overwrites `delivered`, and a repeated receipt changes nothing), bumps the
message's sequence, writes the MessageEvent and emits the webhook event, all
in one transaction.
"""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from messaging.events import message_event_emit
from messaging.models import Message, MessageEvent, Status

FINAL = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED, Status.REJECTED,
                   Status.CANCELED})

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.CANCELED, Status.EXPIRED, Status.REJECTED}),
    Status.QUEUED: frozenset({Status.SENDING, Status.CANCELED, Status.EXPIRED, Status.REJECTED, Status.FAILED}),
    # sending -> queued: a transient error (or a stuck claim) puts it back for another attempt.
    # sending -> delivered/undelivered: a receipt can overtake the worker's own "sent" record.
    Status.SENDING: frozenset({Status.QUEUED, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.FAILED,
                               Status.EXPIRED}),
    Status.SENT: frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED}),
    **{final: frozenset() for final in FINAL},
}

# Status -> webhook event type; statuses not listed emit no webhook.
WEBHOOK_EVENTS = {
    Status.QUEUED: "message.queued",
    Status.SENT: "message.sent",
    Status.DELIVERED: "message.delivered",
    Status.UNDELIVERED: "message.undelivered",
    Status.FAILED: "message.failed",
    Status.EXPIRED: "message.expired",
}


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS[current]


@transaction.atomic
def message_transition(
    *,
    message_id: int,
    to: str,
    source: str,
    detail: str = "",
    error_code: str = "",
    error_message: str = "",
    carrier_error_code: str = "",
    expected: frozenset[str] | set[str] | None = None,
    fields: dict | None = None,
    increment_attempts: bool = False,
    webhook: bool = True,
    at: datetime | None = None,
) -> Message | None:
    """Move a message to `to`; returns it, or None when the move is not allowed now.

    `expected` narrows the statuses to move from (a claim: only from `queued`).
    `fields` are other columns to set in the same write (carrier id, next attempt...);
    `increment_attempts` counts a dispatch attempt on the locked row; `webhook=False`
    keeps an internal step (a retry going back to queued) out of the customer's webhooks.
    Holds the message row lock for the duration of the transaction.
    """
    # unscoped: one message by its id, from dispatch, receipts and sweeps
    message = Message.unscoped.select_for_update().get(pk=message_id)
    if not can_transition(message.status, to) or (expected is not None and message.status not in expected):
        return None
    now = at or timezone.now()
    message.status = to
    message.sequence += 1
    message.status_changed_at = now
    if error_code:
        message.error_code, message.error_message = error_code, error_message[:500]
    if to == Status.SENT and message.sent_at is None:
        message.sent_at = now
    if to == Status.DELIVERED:
        message.delivered_at = now
    if increment_attempts:
        message.attempts += 1
    for name, value in (fields or {}).items():
        setattr(message, name, value)
    message.save()
    event = MessageEvent.unscoped.create(
        tenant_id=message.tenant_id, message=message, sequence=message.sequence, status=to, source=source,
        detail=detail[:500], error_code=error_code, carrier_error_code=carrier_error_code, created_at=now,
    )
    if webhook and to in WEBHOOK_EVENTS:
        message_event_emit(message=message, event_type=WEBHOOK_EVENTS[to], event=event)
    return message
