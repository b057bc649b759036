"""The message.* events: their payload, emitted through the shared outbox (smsportal.events)."""
from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from messaging.models import Message, Status
from smsportal.events import services as events
from smsportal.events.selectors import event_subscribers_cached

if TYPE_CHECKING:
    from messaging.models import MessageEvent
    from smsportal.events.models import WebhookDelivery

# The events a message emits (lifecycle.WEBHOOK_EVENTS), in lifecycle order; registered in MessagingConfig.ready.
MESSAGE_EVENT_TYPES = ("message.queued", "message.sent", "message.delivered", "message.undelivered",
                       "message.failed", "message.expired")


def message_payload_data(*, message: Message, event: MessageEvent) -> dict:
    """The event's `data`. `sequence` is the message's sequence at this event: it only grows, so
    receivers can put events that arrive out of order back in order."""
    error = {"code": event.error_code, "message": message.error_message} if event.error_code else None
    return {
        "id": message.public_id,
        "status": event.status,
        "sequence": event.sequence,
        "occurred_at": events.iso(event.created_at),
        "to": message.to,
        "from": message.sender,
        "message_type": message.message_type,
        "mode": message.mode,
        "segments": message.segments,
        "encoding": message.encoding,
        "client_reference": message.client_reference,
        "metadata": message.metadata,
        "error": error,
        "created_at": events.iso(message.created_at),
    }


def message_events_emit(*, tenant_id: int, pairs: list[tuple[Message, MessageEvent]],
                        event_type: str) -> list[WebhookDelivery]:
    """message_event_emit for many messages of one tenant (an accepted batch): the endpoints from the
    process's short-lived cache (no query per accept: event_subscribers_cached), one INSERT for every delivery."""
    subscribers = event_subscribers_cached(tenant_id=tenant_id, event_type=event_type)
    # No payload is built for an event nobody receives (`message.sent` when only `delivered` is subscribed).
    batch = [events.Event(tenant_id=tenant_id, timestamp=event.created_at, callback_url=message.callback_url,
                          subject=message.public_id, data=message_payload_data(message=message, event=event))
             for message, event in pairs if subscribers.listening(tenant_id=tenant_id, callback_url=message.callback_url)]
    if not batch:
        return []
    return events.events_emit(event_type=event_type, events=batch, subscribers=subscribers)


def message_events_expand(*, message_ids: Sequence[int], event_type: str = "message.queued") -> list[WebhookDelivery]:
    """The webhook outbox rows of events already recorded, for many messages: each message's first
    event of the event type's status (`message.queued`: the accept's), emitted as it was then, per
    tenant in one endpoints query and one INSERT. For an accept that records one fan-out entry instead
    of the deliveries; call it in the transaction that consumes that entry, so a retry emits nothing twice."""
    from messaging.models import MessageEvent

    status = event_type.removeprefix("message.")
    # unscoped: the messages of a fan-out entry, by their ids (one accept's, so one tenant's)
    found = (MessageEvent.unscoped.filter(message_id__in=list(message_ids), status=status)
             .select_related("message").order_by("message_id", "sequence"))
    by_tenant: dict[int, dict[int, tuple]] = {}
    for event in found:
        by_tenant.setdefault(event.tenant_id, {}).setdefault(event.message_id, (event.message, event))
    created: list[WebhookDelivery] = []
    for tenant_id, pairs in by_tenant.items():
        created += message_events_emit(tenant_id=tenant_id, pairs=list(pairs.values()), event_type=event_type)
    if event_type == "message.queued":  # a batch's messages have no stored first event: their row is it
        seen = {message_id for pairs in by_tenant.values() for message_id in pairs}
        # unscoped: the same fan-out entry's messages, by their ids
        rest = Message.unscoped.filter(pk__in=[i for i in message_ids if i not in seen]).values_list("tenant_id", "pk")
        by_rest: dict[int, list[int]] = {}
        for tenant_id, message_id in rest:
            by_rest.setdefault(tenant_id, []).append(message_id)
        for tenant_id, ids in by_rest.items():
            created += events.events_emit(event_type=event_type,
                                          events=message_queued_events(tenant_id=tenant_id, items=ids))
    return created


def message_event_emit(*, message: Message, event_type: str, event: MessageEvent) -> list[WebhookDelivery]:
    """One delivery per target: the message's callback_url, and each enabled endpoint of the tenant
    subscribed to `event_type` (test-mode messages too). Called inside the transaction that changed
    the status, so the deliveries commit or roll back with it."""
    return events.event_emit(tenant_id=message.tenant_id, event_type=event_type, timestamp=event.created_at,
                             data=message_payload_data(message=message, event=event),
                             callback_url=message.callback_url, subject=message.public_id)


def message_queued_events(*, tenant_id: int, items: list[int]) -> list[events.Event]:
    """The `message.queued` events of an accepted batch (a fan-out row's message ids), as the direct emit
    of a single send builds them: status queued, sequence 1, at the message's created_at, whatever the
    message went on to since. One query; a message deleted since has no event."""
    # unscoped: the webhook worker expanding a fan-out row, for its own tenant and ids only
    messages = Message.unscoped.filter(tenant_id=tenant_id, pk__in=items).order_by("pk").only(
        "pk", "tenant_id", "public_id", "mode", "to", "sender", "message_type", "segments", "encoding",
        "client_reference", "metadata", "callback_url", "created_at", "error_message")
    queued = [(message, SimpleNamespace(status=Status.QUEUED, sequence=1, created_at=message.created_at, error_code=""))
              for message in messages]
    return [events.Event(tenant_id=tenant_id, timestamp=event.created_at, callback_url=message.callback_url,
                         subject=message.public_id, data=message_payload_data(message=message, event=event))
            for message, event in queued]
