"""Event use cases: emitting events (any app), URL checks, endpoints and their secrets, the callback secret,
resending.

Delivery itself (attempts, the retry schedule, the beat job) is in smsportal/events/delivery.py and
re-exported here, so callers use `smsportal.events.services` for everything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.services import Actor, audit_record, tenant_lock
from smsportal import outbound
from smsportal.events import errors, registry, selectors, signing
from smsportal.events.delivery import (
    MAX_ATTEMPTS,
    SCHEDULE,
    callback_secret_for,
    deliveries_enqueue,
    event_post,
    webhook_deliveries_attempt,
    webhook_delivery_attempt,
    webhooks_retry_due,
)
from smsportal.events.models import (
    DeliveryStatus,
    WebhookCallbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
)
from smsportal.ids import public_id
from smsportal.ids import public_ids as public_ids_draw
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

__all__ = [
    "MAX_ATTEMPTS", "MAX_ENDPOINTS_PER_TENANT", "ROTATION_WINDOW", "SCHEDULE", "Event", "TestResult",
    "callback_secret_for", "callback_url_validate", "event_emit", "events_emit", "iso",
    "webhook_callback_secret_rotate", "webhook_deliveries_attempt", "webhook_delivery_attempt", "webhook_delivery_resend",
    "webhook_endpoint_create", "webhook_endpoint_delete", "webhook_endpoint_rotate_secret", "webhook_endpoint_test",
    "webhook_endpoint_update", "webhooks_retry_due",
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
        if event not in registry.event_types():
            raise errors.InvalidEventType(f"Unknown event type {event!r}; use {', '.join(registry.event_types())}.",
                                          field="events")
    return list(dict.fromkeys(events))


# --- endpoints -----------------------------------------------------------------------------------------


@tenant_scoped
def webhook_endpoint_create(*, tenant: Tenant, url: str, actor: Actor, events: list[str] | None = None,
                            description: str = "", enabled: bool = True) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its signing secret, which is stored only encrypted and
    must be shown to the caller now: nothing shows it again. Audited."""
    url = callback_url_validate(url, field="url", resolve=True)  # DNS before any transaction opens
    events = _events_clean(events)
    secret = signing.secret_generate()
    with transaction.atomic():
        # The tenant row lock serialises creations, so the limit holds under concurrency.
        tenant_lock(tenant=tenant)
        if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS_PER_TENANT:
            raise errors.TooManyWebhookEndpoints(
                f"An account can have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints.")
        endpoint = WebhookEndpoint.objects.create(tenant=tenant, url=url, events=events, description=description,
                                                  enabled=enabled, **signing.secret_fields(secret))
        audit_record(action="webhook_endpoint.created", actor=actor, tenant=tenant, target=endpoint,
                     changes={"url": url, "events": events, "enabled": enabled})
    return endpoint, secret


@tenant_scoped
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
        row = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
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


@tenant_scoped
def webhook_endpoint_delete(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor) -> None:
    """Delete the endpoint with its deliveries and their attempt log. Audited."""
    with transaction.atomic():
        deleted, _ = WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()
        if deleted:
            audit_record(action="webhook_endpoint.deleted", actor=actor, tenant=tenant, target=endpoint,
                         changes={"url": endpoint.url})


@tenant_scoped
def webhook_endpoint_rotate_secret(*, tenant: Tenant, endpoint: WebhookEndpoint,
                                   actor: Actor) -> tuple[WebhookEndpoint, str]:
    """A new secret, returned once; the old one keeps signing beside it for ROTATION_WINDOW. Audited."""
    secret = signing.secret_generate()
    with transaction.atomic():
        row = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        signing.secret_replace(row, secret, now=timezone.now(), window=ROTATION_WINDOW)
        row.save()
        audit_record(action="webhook_endpoint.secret_rotated", actor=actor, tenant=tenant, target=row,
                     changes={"secret_prefix": row.secret_prefix})
    return row, secret


@tenant_scoped
def webhook_callback_secret_rotate(*, tenant: Tenant, actor: Actor) -> tuple[WebhookCallbackSecret, str]:
    """The tenant's callback secret (it signs per-message callback_url deliveries): made if there is none
    yet, else replaced, the old one signing beside it for ROTATION_WINDOW. Returns the secret once. Audited."""
    secret = signing.secret_generate()
    row, created = WebhookCallbackSecret.objects.get_or_create(tenant=tenant, defaults=signing.secret_fields(secret))
    with transaction.atomic():
        row = WebhookCallbackSecret.objects.select_for_update().get(pk=row.pk)
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
    payload = {"type": "webhook.test", "timestamp": iso(now),
               "data": {"endpoint": endpoint.public_id, "message": "A test event from smsportal."}}
    outcome = event_post(url=endpoint.url, payload=payload, msg_id=public_id("evt"),
                         secrets=signing.signing_secrets(endpoint, now=now))
    return TestResult(status_code=outcome.status_code, latency_ms=outcome.latency_ms, error_class=outcome.error_class)


# --- events -----------------------------------------------------------------------------------------------


def iso(moment: datetime) -> str:
    """A moment as event payloads write it: ISO 8601 in UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Event:
    """One event to emit, as its app built it: `data` becomes the body's `data`, `timestamp` its timestamp.

    `callback_url`: a per-object target besides the subscribed endpoints (a message's or a lease's),
    signed with the tenant's callback secret. `subject`: the public id of what the event is about, so
    deliveries can be found by it (GET /v1/webhook-deliveries?message=msg_…).
    """

    tenant_id: int
    data: dict
    timestamp: datetime
    callback_url: str = ""
    subject: str = ""


def events_emit(*, event_type: str, events: list[Event],
                subscribers: selectors.Subscribers | None = None) -> list[WebhookDelivery]:
    """Record the outbox rows of many events of one type: one per callback_url, one per enabled endpoint of
    the event's tenant subscribed to `event_type`. An event with no target costs nothing.

    Set-based: one query for the endpoints (none when the caller passes the `subscribers` it already
    read), one bulk INSERT. Call inside the transaction that made the change: the rows commit or roll
    back with it, and their tasks are enqueued only after commit. No network here.
    """
    if event_type not in registry.event_types():
        raise ValueError(f"unregistered event type {event_type!r}: register it in the emitting app's ready()")
    if subscribers is None:
        subscribers = selectors.event_subscribers(tenant_ids={e.tenant_id for e in events}, event_type=event_type)
    now = timezone.now()
    rows = []
    for event in events:
        targets = [(None, event.callback_url)] if event.callback_url else []
        targets += [(endpoint.pk, endpoint.url) for endpoint in subscribers.endpoints(tenant_id=event.tenant_id)]
        payload = {"type": event_type, "timestamp": iso(event.timestamp), "data": event.data} if targets else None
        rows += [{"tenant_id": event.tenant_id, "endpoint_id": endpoint_id, "url": url, "subject": event.subject,
                  "payload": payload} for endpoint_id, url in targets]
    created = _deliveries_insert(rows, event_type=event_type, now=now) if rows else []
    deliveries_enqueue([delivery.pk for delivery in created])
    return created


_DELIVERY_FIELDS = WebhookDelivery._meta.concrete_fields


def _deliveries_insert(rows: list[dict], *, event_type: str, now: datetime) -> list[WebhookDelivery]:
    """INSERT the outbox rows (tenant_id, endpoint_id, url, subject, payload each), pending and due now.

    On PostgreSQL one INSERT from a single JSON parameter (jsonb_to_recordset): Django's bulk_create
    builds a model and prepares every field per row, and psycopg escapes each text of its arrays, which
    cost more than the write for a batch of 250. Elsewhere bulk_create."""
    public_ids, event_ids = public_ids_draw("whd", len(rows)), public_ids_draw("evt", len(rows))
    if connection.vendor != "postgresql":
        # unscoped: the events of a batch may belong to several tenants (each row carries its own)
        return WebhookDelivery.unscoped.bulk_create([
            WebhookDelivery(**row, public_id=delivery_id, event_id=event_id, event_type=event_type,
                            next_attempt_at=now, enqueued_at=now)
            for row, delivery_id, event_id in zip(rows, public_ids, event_ids, strict=True)])
    for row, delivery_id, event_id in zip(rows, public_ids, event_ids, strict=True):
        row.update(public_id=delivery_id, event_id=event_id)
    columns = [field.column for field in _DELIVERY_FIELDS]
    statement = (  # names from the model's meta, values as parameters
        f"INSERT INTO {WebhookDelivery._meta.db_table} (tenant_id, endpoint_id, url, subject, payload, public_id, "  # noqa: S608
        "event_id, event_type, status, cycle, attempts, next_attempt_at, enqueued_at, last_error_class, created_at) "
        "SELECT tenant_id, endpoint_id, url, subject, payload, public_id, event_id, %s, %s, 0, 0, %s, %s, '', %s "
        "FROM jsonb_to_recordset(%s::jsonb) AS r(tenant_id bigint, endpoint_id bigint, url text, subject text, "
        f"payload jsonb, public_id text, event_id text) RETURNING {', '.join(columns)}")
    with connection.cursor() as cursor:
        cursor.execute(statement, [event_type, DeliveryStatus.PENDING, now, now, now, json.dumps(rows)])
        found = cursor.fetchall()
    names = [field.attname for field in _DELIVERY_FIELDS]
    payload = names.index("payload")
    return [WebhookDelivery.from_db(connection.alias, names, _json_loaded(row, payload)) for row in found]


def _json_loaded(row: tuple, index: int) -> list:
    """A raw row as the ORM loads it: Django's psycopg loader hands jsonb over as text."""
    values = list(row)
    if isinstance(values[index], str):
        values[index] = json.loads(values[index])
    return values


def event_emit(*, tenant_id: int, event_type: str, data: dict, timestamp: datetime, callback_url: str = "",
               subject: str = "") -> list[WebhookDelivery]:
    """One event (events_emit with a batch of one); returns its deliveries, none when nobody listens."""
    return events_emit(event_type=event_type, events=[Event(tenant_id=tenant_id, data=data, timestamp=timestamp,
                                                            callback_url=callback_url, subject=subject)])


@tenant_scoped
def webhook_delivery_resend(*, tenant: Tenant, delivery: WebhookDelivery) -> WebhookDelivery:
    """Deliver the same event again, now: a new attempt cycle with the same webhook-id and payload
    (receivers that dedupe on webhook-id see a duplicate, as they should). Works on a delivery in any
    status; one still pending starts its new cycle at once. Refused for a disabled endpoint."""
    if delivery.tenant_id != tenant.pk:
        raise errors.WebhookNotFound()
    if delivery.endpoint_id is not None and not WebhookEndpoint.objects.filter(pk=delivery.endpoint_id,
                                                                                enabled=True).exists():
        raise errors.WebhookEndpointDisabled()
    now = timezone.now()
    with transaction.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, cycle=F("cycle") + 1, attempts=0, next_attempt_at=now, enqueued_at=now,
            delivered_at=None)
        deliveries_enqueue([delivery.pk])
    delivery.refresh_from_db()
    return delivery
