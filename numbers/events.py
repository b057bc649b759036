"""The events numbers emits: `message.received` (inbound) and `number.*` (holdings), through smsportal.events."""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import prefetch_related_objects

from smsportal.events import selectors as events_selectors
from smsportal.events import services as events
from smsportal.events.services import Event, iso

if TYPE_CHECKING:
    from numbers.models import InboundMessage, NumberAssignment, NumberLease

# Registered in NumbersConfig.ready, after messaging's (INSTALLED_APPS order).
NUMBER_EVENT_TYPES = ("message.received", "number.lease_expiring", "number.released")


def inbound_received_emit(*, inbound: InboundMessage) -> int:
    """`message.received` to the lease's callback_url (when the message reached a lease that has one) and
    to each enabled endpoint of the tenant subscribed to it. Called inside the transaction that stored the
    inbound message; returns how many deliveries it recorded."""
    if inbound.tenant_id is None:
        return 0
    lease = inbound.lease if inbound.lease_id else None
    data = {
        "id": inbound.public_id, "to": inbound.to, "from": inbound.sender, "text": inbound.text,
        "received_at": iso(inbound.received_at), "code": inbound.code or None,
        "service": inbound.service or None, "lease": lease.public_id if lease else None,
    }
    return len(events.event_emit(tenant_id=inbound.tenant_id, event_type="message.received", data=data,
                                 timestamp=inbound.created_at, callback_url=lease.callback_url if lease else "",
                                 subject=inbound.public_id))


def _holding_data(holding: NumberLease | NumberAssignment, *, kind: str, reason: str | None) -> dict:
    number = holding.number
    expires_at = getattr(holding, "expires_at", None)
    ended_at = holding.released_at if kind == "lease" else holding.ended_at
    return {
        "id": holding.public_id, "holding": kind, "number": number.number, "number_id": number.public_id,
        "country": number.country, "started_at": iso(holding.started_at),
        "expires_at": iso(expires_at) if expires_at else None,
        "released_at": iso(ended_at) if ended_at else None, "reason": reason,
    }


def lease_events_emit(*, leases: list[NumberLease], event_type: str, now: datetime) -> int:
    """`number.lease_expiring` or `number.released` for each lease: one delivery to its callback_url (signed
    with the tenant's callback secret) and one to each enabled endpoint of its tenant subscribed to the event.

    Set-based for the expiry sweep: one query for the endpoints, one for the numbers of the leases that
    have a target, one bulk INSERT; a lease with no target costs nothing. `released_at` and
    `release_reason` must already hold the release (`number.released`). Call inside the transaction that
    changed the leases; returns how many deliveries it recorded, enqueued after commit."""
    subscribers = events_selectors.event_subscribers(tenant_ids={lease.tenant_id for lease in leases},
                                                     event_type=event_type)
    wanted = [lease for lease in leases if subscribers.listening(tenant_id=lease.tenant_id,
                                                                 callback_url=lease.callback_url)]
    if not wanted:
        return 0
    prefetch_related_objects(wanted, "number")
    batch = []
    for lease in wanted:
        reason = (lease.release_reason or None) if event_type == "number.released" else None
        data = _holding_data(lease, kind="lease", reason=reason)
        if event_type == "number.lease_expiring":
            data["expiring_notice_seconds"] = lease.expiring_notice_seconds
        batch.append(Event(tenant_id=lease.tenant_id, data=data, timestamp=now, callback_url=lease.callback_url,
                           subject=lease.public_id))
    return len(events.events_emit(event_type=event_type, events=batch, subscribers=subscribers))


def assignment_released_emit(*, assignment: NumberAssignment, reason: str, now: datetime) -> int:
    """`number.released` for an ended rental, to the tenant's enabled endpoints subscribed to it (an
    assignment has no callback_url). Call inside the transaction that ended it."""
    subscribers = events_selectors.event_subscribers(tenant_ids={assignment.tenant_id}, event_type="number.released")
    if not subscribers.listening(tenant_id=assignment.tenant_id):
        return 0
    event = Event(tenant_id=assignment.tenant_id, timestamp=now, subject=assignment.public_id,
                  data=_holding_data(assignment, kind="assignment", reason=reason))
    return len(events.events_emit(event_type="number.released", events=[event], subscribers=subscribers))
