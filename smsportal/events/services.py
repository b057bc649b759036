"""Webhook use cases: URL checks, endpoints and their secrets, the callback secret, emitting events, resending.

Delivery itself (attempts, the retry schedule, the beat job) is in messaging/webhooks/delivery.py and
re-exported here, so callers use `messaging.webhooks.services` for everything.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import F, prefetch_related_objects
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, audit_record
from messaging.webhooks import errors, signing
from messaging.webhooks.delivery import (
    MAX_ATTEMPTS,
    SCHEDULE,
    callback_secret_for,
    deliveries_enqueue,
    event_post,
    webhook_delivery_attempt,
    webhooks_retry_due,
)
from messaging.webhooks.models import (
    EVENT_TYPES,
    DeliveryStatus,
    WebhookCallbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
)
from smsportal import outbound
from smsportal.ids import public_id

if TYPE_CHECKING:
    from numbers.models import InboundMessage, NumberAssignment, NumberLease

    from messaging.models import Message, MessageEvent

__all__ = [
    "MAX_ATTEMPTS", "MAX_ENDPOINTS_PER_TENANT", "ROTATION_WINDOW", "SCHEDULE", "TestResult",
    "assignment_released_emit", "callback_secret_for", "callback_url_validate", "inbound_received_emit",
    "lease_events_emit", "message_event_emit", "webhook_callback_secret_rotate", "webhook_delivery_attempt",
    "webhook_delivery_resend", "webhook_endpoint_create", "webhook_endpoint_delete", "webhook_endpoint_rotate_secret",
    "webhook_endpoint_test", "webhook_endpoint_update", "webhook_payload", "webhooks_retry_due",
]

MAX_ENDPOINTS_PER_TENANT = 20
ROTATION_WINDOW = timedelta(hours=24)
UPDATABLE_FIELDS = frozenset({"url", "events", "description", "enabled"})


# --- URLs -------------------------------------------------------------------------------------------


def callback_url_validate(url: str, *, field: str = "callback_url", resolve: bool = False) -> str:
    """Check a URL that is to receive webhooks, at registration; returns it. Raises InvalidCallbackUrl (400).

    Always: http(s) only, no user name or password, no whitespace, control characters, backslashes or
    non-ASCII, a well-formed host and port. Unless WEBHOOK_ALLOW_PRIVATE_TARGETS: no `localhost` names,
    no IP literal outside public unicast space (in any notation), no internal-service port; and with
    `resolve` (endpoint registration; never inside a transaction, as the message send path is) no
    name with any non-public DNS answer. A name that does not resolve is accepted: DNS may not be
    set up yet, and the check at connect time (smsportal/outbound.py) is the one that counts.
    """
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS
    try:
        target = outbound.parse_url(url)
        outbound.check_target(target, allow_private=allow_private)
        if resolve and not allow_private and target.ip is None:
            outbound.resolve(target, allow_private=False)
    except outbound.DnsError:
        pass
    except outbound.BlockedDestination as exc:
        raise errors.InvalidCallbackUrl(exc.message, field=field) from None
    return url


def _events_clean(events: list[str] | None) -> list[str]:
    """The subscribed event types, without repeats; an empty list means every type."""
    if events is None:
        return []
    if not isinstance(events, list | tuple) or not all(isinstance(e, str) for e in events):
        raise errors.InvalidEventType("events must be a list of event types.", field="events")
    for event in events:
        if event not in EVENT_TYPES:
            raise errors.InvalidEventType(f"Unknown event type {event!r}; use {', '.join(EVENT_TYPES)}.",
                                          field="events")
    return list(dict.fromkeys(events))


# --- endpoints -----------------------------------------------------------------------------------------


def webhook_endpoint_create(*, tenant: Tenant, url: str, actor: Actor, events: list[str] | None = None,
                            description: str = "", enabled: bool = True) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its signing secret, which is stored only encrypted and
    must be shown to the caller now: nothing shows it again. Audited."""
    url = callback_url_validate(url, field="url", resolve=True)  # DNS before any transaction opens
    events = _events_clean(events)
    secret = signing.secret_generate()
    with transaction.atomic():
        # The tenant row lock serialises creations, so the limit holds under concurrency.
        Tenant.objects.select_for_update().get(pk=tenant.pk)
        if WebhookEndpoint.unscoped.filter(tenant=tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
            raise errors.TooManyWebhookEndpoints(
                f"An account can have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.")
        endpoint = WebhookEndpoint.unscoped.create(tenant=tenant, url=url, events=events, description=description,
                                                   enabled=enabled, **signing.secret_fields(secret))
        audit_record(action="webhook_endpoint.created", actor=actor, tenant=tenant, target=endpoint,
                     changes={"url": url, "events": events, "enabled": enabled})
    return endpoint, secret


def webhook_endpoint_update(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor, **changes) -> WebhookEndpoint:
    """Change url, events, description and/or enabled. Enabling clears the failure count and the
    reason it was disabled. Audited with before/after values."""
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise TypeError(f"cannot change {sorted(unknown)}")
    if "url" in changes:
        changes["url"] = callback_url_validate(changes["url"], field="url", resolve=True)
    if "events" in changes:
        changes["events"] = _events_clean(changes["events"])
    with transaction.atomic():
        row = WebhookEndpoint.unscoped.select_for_update().get(pk=endpoint.pk, tenant=tenant)
        diff = {name: [getattr(row, name), value] for name, value in changes.items() if getattr(row, name) != value}
        for name, value in changes.items():
            setattr(row, name, value)
        if "enabled" in diff:
            row.disabled_reason = "" if row.enabled else f"Disabled by {actor.label}."
            row.disabled_at = None if row.enabled else timezone.now()
            row.consecutive_failures = 0 if row.enabled else row.consecutive_failures
        row.save()
        if diff:
            audit_record(action="webhook_endpoint.changed", actor=actor, tenant=tenant, target=row, changes=diff)
    return row


def webhook_endpoint_delete(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Delete the endpoint with its deliveries and their attempt log. Audited."""
    with transaction.atomic():
        deleted, _ = WebhookEndpoint.unscoped.filter(pk=endpoint.pk, tenant=tenant).delete()
        if deleted:
            audit_record(action="webhook_endpoint.deleted", actor=actor, tenant=tenant, target=endpoint,
                         changes={"url": endpoint.url})


def webhook_endpoint_rotate_secret(*, tenant: Tenant, endpoint: WebhookEndpoint,
                                   actor: Actor) -> tuple[WebhookEndpoint, str]:
    """A new secret, returned once; the old one keeps signing beside it for ROTATION_WINDOW. Audited."""
    secret = signing.secret_generate()
    with transaction.atomic():
        row = WebhookEndpoint.unscoped.select_for_update().get(pk=endpoint.pk, tenant=tenant)
        signing.secret_replace(row, secret, now=timezone.now(), window=ROTATION_WINDOW)
        row.save()
        audit_record(action="webhook_endpoint.secret_rotated", actor=actor, tenant=tenant, target=row,
                     changes={"secret_prefix": row.secret_prefix})
    return row, secret


def webhook_callback_secret_rotate(*, tenant: Tenant, actor: Actor) -> tuple[WebhookCallbackSecret, str]:
    """The tenant's callback secret (it signs per-message callback_url deliveries): made if there is none
    yet, else replaced, the old one signing beside it for ROTATION_WINDOW. Returns the secret once. Audited."""
    secret = signing.secret_generate()
    row, created = WebhookCallbackSecret.unscoped.get_or_create(tenant=tenant, defaults=signing.secret_fields(secret))
    with transaction.atomic():
        row = WebhookCallbackSecret.unscoped.select_for_update().get(pk=row.pk)
        if not created:
            signing.secret_replace(row, secret, now=timezone.now(), window=ROTATION_WINDOW)
            row.rotated_at = timezone.now()
            row.save()
        audit_record(action="webhook_callback_secret.rotated", actor=actor, tenant=tenant, target=tenant,
                     changes={"secret_prefix": row.secret_prefix})
    return row, secret


@dataclass(frozen=True)
class TestResult:
    status_code: int | None
    latency_ms: int | None
    error_class: str


def webhook_endpoint_test(*, tenant: Tenant, endpoint: WebhookEndpoint) -> TestResult:
    """POST a signed `webhook.test` event to the endpoint now and say how it went. Nothing is stored.

    Only the status code, latency and error class come back, never the receiver's body or headers:
    the endpoint must not become a way to read what a URL answers (OWASP API7's webhook scenario).
    """
    if endpoint.tenant_id != tenant.pk:
        raise errors.WebhookNotFound()
    now = timezone.now()
    payload = {"type": "webhook.test", "timestamp": _iso(now),
               "data": {"endpoint": endpoint.public_id, "message": "A test event from smsportal."}}
    outcome = event_post(url=endpoint.url, payload=payload, msg_id=public_id("evt"),
                         secrets=signing.signing_secrets(endpoint, now=now))
    return TestResult(status_code=outcome.status_code, latency_ms=outcome.latency_ms, error_class=outcome.error_class)


# --- events -----------------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_payload(*, message: Message, event_type: str, event: MessageEvent) -> dict:
    """The event body: {"type", "timestamp", "data"}. `data.sequence` is the message's sequence at this
    event: it only grows, so receivers can put events that arrive out of order back in order."""
    error = {"code": event.error_code, "message": message.error_message} if event.error_code else None
    return {
        "type": event_type,
        "timestamp": _iso(event.created_at),
        "data": {
            "id": message.public_id,
            "status": event.status,
            "sequence": event.sequence,
            "occurred_at": _iso(event.created_at),
            "to": message.to,
            "from": message.sender,
            "message_type": message.message_type,
            "mode": message.mode,
            "segments": message.segments,
            "encoding": message.encoding,
            "client_reference": message.client_reference,
            "metadata": message.metadata,
            "error": error,
            "created_at": _iso(message.created_at),
        },
    }


def _deliveries_record(*, tenant_id: int, event_type: str, payload: dict, now: datetime, callback_url: str,
                       endpoints: list[WebhookEndpoint], message: Message | None = None) -> list[WebhookDelivery]:
    """The outbox rows of one event: one for `callback_url` (signed with the tenant's callback secret) when
    there is one, and one per endpoint. Unsaved; callers bulk-create them and enqueue (_deliveries_save)."""
    targets = ([(None, callback_url)] if callback_url else []) + [(endpoint, endpoint.url) for endpoint in endpoints]
    return [WebhookDelivery(tenant_id=tenant_id, endpoint=endpoint, url=url, event_type=event_type, message=message,
                            payload=payload, next_attempt_at=now, enqueued_at=now) for endpoint, url in targets]


def _deliveries_save(rows: list[WebhookDelivery]) -> list[WebhookDelivery]:
    """One INSERT for the rows; their tasks are enqueued after the caller's transaction commits."""
    created = WebhookDelivery.unscoped.bulk_create(rows) if rows else []
    deliveries_enqueue([delivery.pk for delivery in created])
    return created


def message_event_emit(*, message: Message, event_type: str, event: MessageEvent) -> list[WebhookDelivery]:
    """Record one delivery per target: the message's callback_url, and each enabled endpoint of the
    tenant subscribed to `event_type` (test-mode messages too).

    Called inside the transaction that changed the status: the deliveries commit or roll back with
    it, and their tasks are enqueued only after commit. No network here.
    """
    endpoints = _subscribed_endpoints(tenant_ids={message.tenant_id}, event_type=event_type).get(message.tenant_id, [])
    if not message.callback_url and not endpoints:
        return []
    return _deliveries_save(_deliveries_record(
        tenant_id=message.tenant_id, event_type=event_type, now=timezone.now(), callback_url=message.callback_url,
        endpoints=endpoints, message=message, payload=webhook_payload(message=message, event_type=event_type,
                                                                      event=event)))


def inbound_received_emit(*, inbound: InboundMessage) -> list[WebhookDelivery]:
    """`message.received` to the lease's callback_url (when the message reached a lease that has one) and
    to each enabled endpoint of the tenant subscribed to it (no message row: `message` stays empty).
    Called inside the transaction that stored the inbound message."""
    if inbound.tenant_id is None:
        return []
    lease = inbound.lease if inbound.lease_id else None
    callback_url = lease.callback_url if lease else ""
    endpoints = _subscribed_endpoints(tenant_ids={inbound.tenant_id}, event_type="message.received").get(
        inbound.tenant_id, [])
    if not callback_url and not endpoints:
        return []
    payload = {
        "type": "message.received",
        "timestamp": _iso(inbound.created_at),
        "data": {
            "id": inbound.public_id, "to": inbound.to, "from": inbound.sender, "text": inbound.text,
            "received_at": _iso(inbound.received_at), "code": inbound.code or None,
            "service": inbound.service or None, "lease": lease.public_id if lease else None,
        },
    }
    return _deliveries_save(_deliveries_record(tenant_id=inbound.tenant_id, event_type="message.received",
                                               payload=payload, now=timezone.now(), callback_url=callback_url,
                                               endpoints=endpoints))


def _holding_data(holding: NumberLease | NumberAssignment, *, kind: str, reason: str | None) -> dict:
    number = holding.number
    expires_at = getattr(holding, "expires_at", None)
    ended_at = holding.released_at if kind == "lease" else holding.ended_at
    return {
        "id": holding.public_id, "holding": kind, "number": number.number, "number_id": number.public_id,
        "country": number.country, "started_at": _iso(holding.started_at),
        "expires_at": _iso(expires_at) if expires_at else None,
        "released_at": _iso(ended_at) if ended_at else None, "reason": reason,
    }


def _subscribed_endpoints(*, tenant_ids: set[int], event_type: str) -> dict[int, list[WebhookEndpoint]]:
    """The enabled endpoints of these tenants that want `event_type`, by tenant: one query."""
    by_tenant: dict[int, list[WebhookEndpoint]] = {}
    if not tenant_ids:
        return by_tenant
    for endpoint in WebhookEndpoint.unscoped.filter(tenant_id__in=tenant_ids, enabled=True).only(
            "id", "tenant_id", "url", "events"):
        if endpoint.wants(event_type):
            by_tenant.setdefault(endpoint.tenant_id, []).append(endpoint)
    return by_tenant


def lease_events_emit(*, leases: list[NumberLease], event_type: str, now: datetime) -> int:
    """`number.lease_expiring` or `number.released` for each lease: one delivery to its callback_url (signed
    with the tenant's callback secret) and one to each enabled endpoint of its tenant subscribed to the event.

    Set-based for the expiry sweep: one query for the endpoints, one for the numbers of the leases that
    have a target, one bulk INSERT; a lease with no target costs nothing. `released_at` and
    `release_reason` must already hold the release (`number.released`). Call inside the transaction that
    changed the leases; returns how many deliveries it recorded, enqueued after commit."""
    endpoints = _subscribed_endpoints(tenant_ids={lease.tenant_id for lease in leases}, event_type=event_type)
    wanted = [lease for lease in leases if lease.callback_url or lease.tenant_id in endpoints]
    if not wanted:
        return 0
    prefetch_related_objects(wanted, "number")
    rows = []
    for lease in wanted:
        reason = (lease.release_reason or None) if event_type == "number.released" else None
        data = _holding_data(lease, kind="lease", reason=reason)
        if event_type == "number.lease_expiring":
            data["expiring_notice_seconds"] = lease.expiring_notice_seconds
        rows += _deliveries_record(tenant_id=lease.tenant_id, event_type=event_type, now=now,
                                   payload={"type": event_type, "timestamp": _iso(now), "data": data},
                                   callback_url=lease.callback_url, endpoints=endpoints.get(lease.tenant_id, []))
    return len(_deliveries_save(rows))


def assignment_released_emit(*, assignment: NumberAssignment, reason: str, now: datetime) -> int:
    """`number.released` for an ended rental, to the tenant's enabled endpoints subscribed to it (an
    assignment has no callback_url). Call inside the transaction that ended it."""
    endpoints = _subscribed_endpoints(tenant_ids={assignment.tenant_id}, event_type="number.released")
    if not endpoints:
        return 0
    payload = {"type": "number.released", "timestamp": _iso(now),
               "data": _holding_data(assignment, kind="assignment", reason=reason)}
    return len(_deliveries_save(_deliveries_record(
        tenant_id=assignment.tenant_id, event_type="number.released", payload=payload, now=now, callback_url="",
        endpoints=endpoints[assignment.tenant_id])))


def webhook_delivery_resend(*, tenant: Tenant, delivery: WebhookDelivery) -> WebhookDelivery:
    """Deliver the same event again, now: a new attempt cycle with the same webhook-id and payload
    (receivers that dedupe on webhook-id see a duplicate, as they should). Works on a delivery in any
    status; one still pending starts its new cycle at once. Refused for a disabled endpoint."""
    if delivery.tenant_id != tenant.pk:
        raise errors.WebhookNotFound()
    if delivery.endpoint_id is not None and not WebhookEndpoint.unscoped.filter(pk=delivery.endpoint_id,
                                                                                enabled=True).exists():
        raise errors.WebhookEndpointDisabled()
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.unscoped.filter(pk=delivery.pk, tenant=tenant).update(
            status=DeliveryStatus.PENDING, cycle=F("cycle") + 1, attempts=0, next_attempt_at=now, enqueued_at=now,
            delivered_at=None)
        deliveries_enqueue([delivery.pk])
    delivery.refresh_from_db()
    return delivery
