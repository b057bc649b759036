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
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from messaging.events import message_event_emit, message_events_emit
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


@transaction.atomic
def messages_transition(
    *,
    message_ids: list[int],
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
) -> list[Message]:
    """message_transition for many messages at once, with the same outcome per message as one call
    each: returns the messages that moved (those the table and `expected` allow), already changed.

    A constant number of statements whatever the count: one SELECT ... FOR UPDATE (in id order, so
    two batches over the same rows cannot deadlock), one UPDATE, one INSERT of the events, and per
    tenant one endpoints query and one INSERT of the deliveries (messaging.events.message_events_emit).
    """
    # unscoped: messages by their ids, from dispatch, receipts and sweeps (any tenant's)
    rows = list(Message.unscoped.select_for_update().filter(pk__in=message_ids).order_by("pk"))
    moved = [m for m in rows if can_transition(m.status, to) and (expected is None or m.status in expected)]
    if not moved:
        return []
    now = at or timezone.now()
    changes: dict = {"status": to, "sequence": F("sequence") + 1, "status_changed_at": now, **(fields or {})}
    if error_code:
        changes.update(error_code=error_code, error_message=error_message[:500])
    if to == Status.SENT:
        changes["sent_at"] = Coalesce(F("sent_at"), now)
    if to == Status.DELIVERED:
        changes["delivered_at"] = now
    if increment_attempts:
        changes["attempts"] = F("attempts") + 1
    # unscoped: the rows locked above
    Message.unscoped.filter(pk__in=[m.pk for m in moved]).update(**changes)
    for message in moved:
        _moved_in_memory(message, to=to, now=now, changes=changes, increment_attempts=increment_attempts)
    events = MessageEvent.unscoped.bulk_create([
        MessageEvent(tenant_id=m.tenant_id, message=m, sequence=m.sequence, status=to, source=source,
                     detail=detail[:500], error_code=error_code, carrier_error_code=carrier_error_code, created_at=now)
        for m in moved])
    if webhook and to in WEBHOOK_EVENTS:
        by_tenant: dict[int, list] = {}
        for message, event in zip(moved, events, strict=True):
            by_tenant.setdefault(message.tenant_id, []).append((message, event))
        for tenant_id, pairs in by_tenant.items():
            message_events_emit(tenant_id=tenant_id, pairs=pairs, event_type=WEBHOOK_EVENTS[to])
    return moved


def _moved_in_memory(message: Message, *, to: str, now: datetime, changes: dict, increment_attempts: bool) -> None:
    """The row as the UPDATE left it (the lock held since the SELECT makes that exact)."""
    message.status, message.status_changed_at = to, now
    message.sequence += 1
    if "error_code" in changes:
        message.error_code, message.error_message = changes["error_code"], changes["error_message"]
    if to == Status.SENT and message.sent_at is None:
        message.sent_at = now
    if to == Status.DELIVERED:
        message.delivered_at = now
    if increment_attempts:
        message.attempts += 1
    for name, value in changes.items():
        if name not in _COMPUTED:
            setattr(message, name, value)


_COMPUTED = frozenset({"status", "sequence", "status_changed_at", "sent_at", "delivered_at", "attempts",
                       "error_code", "error_message"})
