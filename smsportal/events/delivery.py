"""Delivering webhooks: one attempt (claim, sign, POST, record), the retry schedule and the beat job.

At-least-once: a delivery row is the outbox; every attempt is claimed by a conditional UPDATE (so a
duplicate task does nothing), made with no database transaction open, and recorded afterwards in a
short transaction. Waits of up to MAX_COUNTDOWN_SECONDS ride on a Celery countdown; longer ones live
only in `next_attempt_at`, picked up by `webhooks_retry_due` (beat, every 15 s). Either way the row
is the truth: a lost task is found again by the beat job.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services import SYSTEM, audit_record
from smsportal import outbound
from smsportal.bulk import rows_update
from smsportal.countdowns import countdown_limit
from smsportal.events import signing
from smsportal.events.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookCallbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
)

logger = logging.getLogger("smsportal.webhooks")

QUEUE = "webhooks"
USER_AGENT = "smsportal-webhooks/1.0"
# Seconds to wait after failed attempt n (n = 1..10): 11 attempts over about 24 hours, then `failed`.
SCHEDULE = (5, 30, 2 * 60, 10 * 60, 30 * 60, 60 * 60, 2 * 3600, 4 * 3600, 8 * 3600, 8 * 3600)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1  # each wait is stretched by up to 10 %, so failed receivers are not hit in lockstep
MAX_RETRY_AFTER = timedelta(hours=24)  # a receiver's Retry-After is honoured up to this
# Waits up to this ride on a Celery countdown; at most half the broker's visibility timeout
# (checked at start: smsportal/countdowns.py).
MAX_COUNTDOWN_SECONDS = countdown_limit("smsportal.events.delivery.MAX_COUNTDOWN_SECONDS", 60)
# An attempt in flight holds its delivery this long (timeout plus margin); if its worker dies, the beat retries after.
LEASE = timedelta(minutes=2)
# A delivery whose task was enqueued this long ago without running is enqueued again by the beat job.
REENQUEUE_AFTER = timedelta(minutes=10)
DUE_BATCH = 200
# Deliveries per batch task, and how many of a batch's POSTs are in flight at once (threads of the
# worker process: the wait is the network's, not the CPU's).
DELIVERY_BATCH = 100
DELIVERY_CONCURRENCY = 16
CLOCK_SLACK = timedelta(seconds=1)  # a countdown may fire a little early


@dataclass(frozen=True)
class Outcome:
    """What one POST came to. Only the status, latency and error class: never the body or headers."""

    status_code: int | None = None
    latency_ms: int | None = None
    error_class: str = ""
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(attempt: int, *, retry_after: float | None = None) -> float | None:
    """Seconds before the attempt after failed attempt `attempt` (1-based); None when the schedule is spent.

    A receiver's Retry-After (429/503) is honoured when it asks for longer than the schedule would wait.
    """
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = SCHEDULE[attempt - 1] * (1 + random.uniform(0, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER.total_seconds()))
    return delay


def body_bytes(payload: dict) -> bytes:
    """The JSON body as sent (and signed): type, timestamp, data first; compact; UTF-8."""
    ordered = {key: payload[key] for key in ("type", "timestamp", "data") if key in payload}
    ordered.update(payload)
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")).encode()


def event_post(*, url: str, payload: dict, msg_id: str, secrets: list[str],
               pool: outbound.ConnectionPool | None = None) -> Outcome:
    """Sign and POST one event; never raises for a network problem (it becomes the outcome's error_class).
    With a `pool` the connection is kept alive for the next event to the same receiver (batch deliveries)."""
    body = body_bytes(payload)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        **signing.headers(secrets=secrets, msg_id=msg_id, timestamp=int(time.time()), body=body),
    }
    try:
        response = outbound.post(url, body=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
                                 allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS, pool=pool)
    except outbound.OutboundError as exc:
        return Outcome(latency_ms=exc.latency_ms, error_class=exc.error_class)
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(status_code=code, latency_ms=response.latency_ms)
    retry_after = response.retry_after() if code in (429, 503) else None
    error_class = "redirect_not_followed" if 300 <= code < 400 else f"http_{code}"
    return Outcome(status_code=code, latency_ms=response.latency_ms, error_class=error_class, retry_after=retry_after)


def callback_secret_for(tenant_id: int) -> WebhookCallbackSecret:
    """The tenant's callback secret, made on first need (race-safe: one row per tenant)."""
    # unscoped: the signing secret of the delivery's own tenant, by its id
    secret = WebhookCallbackSecret.unscoped.filter(tenant_id=tenant_id).first()
    if secret is not None:
        return secret
    row, _created = WebhookCallbackSecret.unscoped.get_or_create(
        tenant_id=tenant_id, defaults=signing.secret_fields(signing.secret_generate()))
    return row


def deliveries_enqueue(delivery_ids: list[int], *, countdown: float | None = None) -> None:
    """Enqueue the deliveries after the current transaction commits: one task for one delivery, tasks
    of up to DELIVERY_BATCH ids for more (their attempts are made concurrently: webhook_deliveries_attempt).

    `robust`: a broker outage at that moment must not fail the caller; the beat job enqueues again.
    """
    if not delivery_ids:
        return
    from smsportal.events.tasks import webhook_deliver_task, webhooks_deliver_task

    def enqueue() -> None:
        if len(delivery_ids) == 1:
            webhook_deliver_task.apply_async((delivery_ids[0],), queue=QUEUE, countdown=countdown)
            return
        for start in range(0, len(delivery_ids), DELIVERY_BATCH):
            webhooks_deliver_task.apply_async((delivery_ids[start:start + DELIVERY_BATCH],), queue=QUEUE,
                                              countdown=countdown)

    transaction.on_commit(enqueue, robust=True)


# --- one attempt ----------------------------------------------------------------------------------------


def webhook_delivery_attempt(*, delivery_id: int) -> float | None:
    """Make one attempt of a delivery, if it is due and nobody else holds it.

    Returns the seconds until the next attempt when that wait is short enough for a task countdown
    (the caller enqueues it); None otherwise (delivered, final, not due, or a long wait for the beat
    job). Safe to call twice: the claim is a conditional UPDATE, so a duplicate does nothing.
    """
    # unscoped: the delivery task carries the delivery id, not a tenant
    delivery = WebhookDelivery.unscoped.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    if delivery.endpoint is not None and not delivery.endpoint.enabled:
        _give_up(delivery, "endpoint_disabled")
        return None
    attempt = _claim(delivery)
    if attempt is None:
        return None
    try:
        outcome = _send(delivery)
    except Exception:  # a bug or an undecryptable secret must not lose the delivery: it is retried on schedule
        logger.exception("webhook delivery %s failed before sending", delivery.public_id)
        outcome = Outcome(error_class="internal_error")
    return _record(delivery, attempt, outcome)


def _claim(delivery: WebhookDelivery) -> WebhookAttempt | None:
    """Compare-and-swap on (status, cycle, attempts, due): exactly one caller gets attempt n."""
    now = timezone.now()
    number = delivery.attempts + 1
    with transaction.atomic():
        # unscoped: the delivery task carries the delivery id, not a tenant
        claimed = WebhookDelivery.unscoped.filter(
            pk=delivery.pk, status=DeliveryStatus.PENDING, cycle=delivery.cycle, attempts=delivery.attempts,
            next_attempt_at__lte=now + CLOCK_SLACK,
        ).update(attempts=number, next_attempt_at=now + LEASE, enqueued_at=None)
        if not claimed:
            return None
        return WebhookAttempt.unscoped.create(tenant_id=delivery.tenant_id, delivery=delivery, cycle=delivery.cycle,
                                              number=number, started_at=now)


def _send(delivery: WebhookDelivery) -> Outcome:
    endpoint = delivery.endpoint
    holder = endpoint if endpoint is not None else callback_secret_for(delivery.tenant_id)
    secrets = signing.signing_secrets(holder, now=timezone.now())
    url = endpoint.url if endpoint is not None else delivery.url
    return event_post(url=url, payload=delivery.payload, msg_id=delivery.event_id, secrets=secrets)


def _record(delivery: WebhookDelivery, attempt: WebhookAttempt, outcome: Outcome) -> float | None:
    now = timezone.now()
    fields: dict = {"last_status_code": outcome.status_code, "last_error_class": outcome.error_class,
                    "next_attempt_at": None}
    delay, exhausted = None, False
    if outcome.delivered:
        fields.update(status=DeliveryStatus.DELIVERED, delivered_at=now)
    elif outcome.error_class == outbound.BlockedDestination.error_class:
        fields.update(status=DeliveryStatus.BLOCKED)  # a policy refusal; retrying cannot change it
    elif outcome.status_code == 410:
        fields.update(status=DeliveryStatus.FAILED)  # Gone: the receiver asks us to stop
    else:
        delay = retry_delay(attempt.number, retry_after=outcome.retry_after)
        if delay is None:
            fields.update(status=DeliveryStatus.FAILED)
            exhausted = True
        else:
            short = delay <= MAX_COUNTDOWN_SECONDS
            fields.update(next_attempt_at=now + timedelta(seconds=delay), enqueued_at=now if short else None)
    with transaction.atomic():
        # unscoped: the delivery and attempt being recorded, by their ids
        WebhookAttempt.unscoped.filter(pk=attempt.pk).update(
            finished_at=now, status_code=outcome.status_code, latency_ms=outcome.latency_ms,
            error_class=outcome.error_class)
        # Only the holder of this (cycle, attempt) may move the delivery on; a resend meanwhile started a new cycle.
        current = WebhookDelivery.unscoped.filter(pk=delivery.pk, status=DeliveryStatus.PENDING, cycle=attempt.cycle,
                                                  attempts=attempt.number).update(**fields)
        if current and delivery.endpoint_id is not None:
            _endpoint_after(delivery.endpoint, outcome, exhausted=exhausted, now=now)
    if not current or delay is None or delay > MAX_COUNTDOWN_SECONDS:
        return None
    return delay


def _give_up(delivery: WebhookDelivery, error_class: str) -> None:
    # unscoped: the delivery being sent, by its id
    WebhookDelivery.unscoped.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.FAILED, last_error_class=error_class, next_attempt_at=None, enqueued_at=None)


def _endpoint_after(endpoint: WebhookEndpoint, outcome: Outcome, *, exhausted: bool, now) -> None:
    """Failure bookkeeping: a 410 disables the endpoint at once; so does a delivery that spent its
    whole schedule (about 24 h) while every attempt since the endpoint's last success failed."""
    # unscoped: the endpoint of the delivery being sent, by its id
    rows = WebhookEndpoint.unscoped.filter(pk=endpoint.pk)
    if outcome.delivered:
        rows.filter(consecutive_failures__gt=0).update(consecutive_failures=0)
        return
    rows.update(consecutive_failures=F("consecutive_failures") + 1)
    if outcome.status_code == 410:
        _endpoint_disable(endpoint, "The endpoint answered 410 Gone.", now=now)
    elif exhausted and rows.filter(consecutive_failures__gte=MAX_ATTEMPTS).exists():
        _endpoint_disable(endpoint, "Every delivery attempt failed for about 24 hours.", now=now)


def _endpoint_disable(endpoint: WebhookEndpoint, reason: str, *, now) -> None:
    # unscoped: the endpoint of the delivery being sent, by its id
    changed = WebhookEndpoint.unscoped.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now)
    if changed:
        logger.warning("webhook endpoint %s disabled: %s", endpoint.public_id, reason)
        audit_record(action="webhook_endpoint.disabled", actor=SYSTEM, tenant=endpoint.tenant, target=endpoint,
                     changes={"reason": reason})


# --- many attempts at once -------------------------------------------------------------------------------


def webhook_deliveries_attempt(*, delivery_ids: list[int]) -> dict[int, float]:
    """webhook_delivery_attempt for many deliveries: claimed in one transaction, POSTed concurrently
    (DELIVERY_CONCURRENCY at a time), successes recorded in a few statements and every other outcome
    as one attempt records it (retry schedule, Retry-After, 410, endpoint bookkeeping unchanged).

    Returns {delivery id: seconds} for the retries short enough for a task countdown (the caller
    enqueues them). Safe to call twice: the claim is conditional, so a duplicate does nothing."""
    claimed = _claim_many(delivery_ids)
    if not claimed:
        return {}
    try:
        secrets = _secrets_for([delivery for delivery, _ in claimed])
    except Exception:  # an undecryptable secret: every claimed attempt fails and is retried on schedule
        logger.exception("webhook secrets of %d deliveries not available", len(claimed))
        secrets = None
    if secrets is None:
        outcomes = [Outcome(error_class="internal_error") for _ in claimed]
    else:
        outcomes = list(_pool().map(lambda pair: _send_guarded(pair[0], secrets[pair[0].pk]), claimed))
    delivered = [(d, a, o) for (d, a), o in zip(claimed, outcomes, strict=True) if o.delivered]
    _record_delivered(delivered)
    retries = {}
    for (delivery, attempt), outcome in zip(claimed, outcomes, strict=True):
        if not outcome.delivered:
            delay = _record(delivery, attempt, outcome)
            if delay is not None:
                retries[delivery.pk] = delay
    return retries


_executor = None
# The batch threads' kept-alive connections (one set per thread): receivers get many events in a row.
_CONNECTIONS = outbound.ConnectionPool()


def _pool():
    """One thread pool per worker process, made on first use (after the prefork pool forked)."""
    global _executor  # noqa: PLW0603 (a per-process singleton)
    if _executor is None:
        from concurrent.futures import ThreadPoolExecutor

        _executor = ThreadPoolExecutor(max_workers=DELIVERY_CONCURRENCY, thread_name_prefix="webhooks")
    return _executor


def _secrets_for(deliveries: list[WebhookDelivery]) -> dict[int, list[str]]:
    """{delivery id: signing secrets}, each endpoint's (or tenant's callback secret) decrypted once, here
    in the task's thread: the POSTing threads then need no database connection of their own."""
    now = timezone.now()
    by_holder: dict[tuple[str, int], list[str]] = {}
    found = {}
    for delivery in deliveries:
        key = ("endpoint", delivery.endpoint_id) if delivery.endpoint_id else ("tenant", delivery.tenant_id)
        if key not in by_holder:
            holder = delivery.endpoint if delivery.endpoint is not None else callback_secret_for(delivery.tenant_id)
            by_holder[key] = signing.signing_secrets(holder, now=now)
        found[delivery.pk] = by_holder[key]
    return found


def _send_guarded(delivery: WebhookDelivery, secrets: list[str]) -> Outcome:
    try:
        url = delivery.endpoint.url if delivery.endpoint is not None else delivery.url
        return event_post(url=url, payload=delivery.payload, msg_id=delivery.event_id, secrets=secrets,
                          pool=_CONNECTIONS)
    except Exception:  # as in webhook_delivery_attempt: retried on schedule, never lost
        logger.exception("webhook delivery %s failed before sending", delivery.public_id)
        return Outcome(error_class="internal_error")


def _claim_many(delivery_ids: list[int]) -> list[tuple]:
    """The due pending deliveries among these, each with its new attempt: rows locked (skipping any
    another worker holds), moved on by one attempt and leased, and their attempts logged, in one
    transaction. Deliveries of a disabled endpoint give up, as one attempt does.

    On PostgreSQL one statement (_CLAIM_SQL) returning plain rows (ClaimedDelivery, ClaimedAttempt):
    building two model instances per delivery cost more than the statement. Elsewhere the ORM."""
    if connection.vendor == "postgresql":
        return _claim_many_sql(delivery_ids)
    now = timezone.now()
    with transaction.atomic():
        # unscoped: a batch task's deliveries, by id, of any tenants
        rows = list(WebhookDelivery.unscoped.select_for_update(skip_locked=True)
                    .filter(pk__in=delivery_ids, status=DeliveryStatus.PENDING, next_attempt_at__lte=now + CLOCK_SLACK)
                    .order_by("pk"))
        endpoints = WebhookEndpoint.unscoped.in_bulk({row.endpoint_id for row in rows if row.endpoint_id})
        ready = []
        for row in rows:
            row.endpoint = endpoints.get(row.endpoint_id) if row.endpoint_id else None
            if row.endpoint is not None and not row.endpoint.enabled:
                _give_up(row, "endpoint_disabled")
            else:
                ready.append(row)
        if not ready:
            return []
        WebhookDelivery.unscoped.filter(pk__in=[row.pk for row in ready]).update(
            attempts=F("attempts") + 1, next_attempt_at=now + LEASE, enqueued_at=None)
        # unscoped: the attempts of claimed deliveries, any tenant's (each row carries its own)
        attempts = WebhookAttempt.unscoped.bulk_create([
            WebhookAttempt(tenant_id=row.tenant_id, delivery=row, cycle=row.cycle, number=row.attempts + 1,
                           started_at=now) for row in ready])
    return list(zip(ready, attempts, strict=True))


@dataclass(slots=True)
class ClaimedDelivery:
    """What the batch path needs of a claimed delivery (the attributes it reads of a WebhookDelivery)."""

    pk: int
    tenant_id: int
    public_id: str
    endpoint_id: int | None
    url: str
    event_id: str
    payload: dict
    cycle: int
    attempts: int  # as before the claim, like a WebhookDelivery read then
    endpoint: WebhookEndpoint | None = None


@dataclass(slots=True)
class ClaimedAttempt:
    pk: int
    cycle: int
    number: int


# Lock the due pending rows (in id order; skipping those another worker holds), give up the ones of a
# disabled endpoint, move the others on by one attempt under a lease, and log their attempts. The two
# UPDATEs touch disjoint rows; data-modifying CTEs all run whether or not the last SELECT reads them.
_CLAIM_SQL = """
WITH picked AS (
    SELECT d.id, d.endpoint_id FROM messaging_webhookdelivery d
    WHERE d.id = ANY(%(ids)s) AND d.status = 'pending' AND d.next_attempt_at <= %(due)s
    ORDER BY d.id FOR UPDATE SKIP LOCKED
), gave_up AS (
    UPDATE messaging_webhookdelivery d SET status = 'failed', last_error_class = 'endpoint_disabled',
        next_attempt_at = NULL, enqueued_at = NULL
    FROM picked p JOIN messaging_webhookendpoint e ON e.id = p.endpoint_id
    WHERE d.id = p.id AND NOT e.enabled
    RETURNING d.id
), claimed AS (
    UPDATE messaging_webhookdelivery d SET attempts = d.attempts + 1, next_attempt_at = %(lease)s,
        enqueued_at = NULL
    FROM picked p LEFT JOIN messaging_webhookendpoint e ON e.id = p.endpoint_id
    WHERE d.id = p.id AND (p.endpoint_id IS NULL OR e.enabled)
    RETURNING d.id, d.tenant_id, d.public_id, d.endpoint_id, d.url, d.event_id, d.payload::text AS payload,
        d.cycle, d.attempts
), logged AS (
    INSERT INTO messaging_webhookattempt (tenant_id, delivery_id, cycle, number, started_at, error_class)
    SELECT tenant_id, id, cycle, attempts, %(now)s, '' FROM claimed
    RETURNING delivery_id, id
)
SELECT c.id, c.tenant_id, c.public_id, c.endpoint_id, c.url, c.event_id, c.payload, c.cycle, c.attempts, l.id
FROM claimed c JOIN logged l ON l.delivery_id = c.id ORDER BY c.id
"""


def _claim_many_sql(delivery_ids: list[int]) -> list[tuple[ClaimedDelivery, ClaimedAttempt]]:
    now = timezone.now()
    with transaction.atomic():
        # unscoped (raw SQL): a batch task's deliveries, by id, of any tenants
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, {"ids": list(delivery_ids), "due": now + CLOCK_SLACK, "lease": now + LEASE,
                                        "now": now})
            rows = cursor.fetchall()
        # unscoped: the endpoints of a batch's deliveries (one instance each: their secrets and failure counters)
        endpoints = WebhookEndpoint.unscoped.in_bulk({row[3] for row in rows if row[3] is not None})
    claimed = []
    for pk, tenant_id, public_id, endpoint_id, url, event_id, payload, cycle, number, attempt_id in rows:
        delivery = ClaimedDelivery(pk=pk, tenant_id=tenant_id, public_id=public_id, endpoint_id=endpoint_id, url=url,
                                   event_id=event_id, payload=json.loads(payload), cycle=cycle, attempts=number - 1,
                                   endpoint=endpoints.get(endpoint_id) if endpoint_id is not None else None)
        claimed.append((delivery, ClaimedAttempt(pk=attempt_id, cycle=cycle, number=number)))
    return claimed


# The 2xx outcomes of a batch in one statement: their attempts finished, their deliveries delivered (per
# (cycle, attempt): only the holder of it moves a delivery on), their endpoints' failure counters reset.
_DELIVERED_SQL = """
WITH v AS (
    SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::int[], %s::int[], %s::int[])
        AS v(delivery_id, attempt_id, cycle, number, code, latency)
), attempts AS (
    UPDATE messaging_webhookattempt a SET finished_at = %s, status_code = v.code, latency_ms = v.latency,
        error_class = ''
    FROM v WHERE a.id = v.attempt_id
), deliveries AS (
    UPDATE messaging_webhookdelivery d SET status = 'delivered', delivered_at = %s, last_status_code = v.code,
        last_error_class = '', next_attempt_at = NULL
    FROM v WHERE d.id = v.delivery_id AND d.status = 'pending' AND d.cycle = v.cycle AND d.attempts = v.number
)
UPDATE messaging_webhookendpoint e SET consecutive_failures = 0
WHERE e.id = ANY(%s) AND e.consecutive_failures > 0
"""


def _record_delivered(delivered: list[tuple]) -> None:
    """_record for the 2xx outcomes of a batch: one statement on PostgreSQL, a few elsewhere."""
    if not delivered:
        return
    now = timezone.now()
    endpoint_ids = sorted({d.endpoint_id for d, _, _ in delivered if d.endpoint_id is not None})
    if connection.vendor == "postgresql":
        # unscoped (raw SQL): the deliveries of a batch just sent, their attempts and endpoints, by id
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_DELIVERED_SQL, [
                [d.pk for d, _, _ in delivered], [a.pk for _, a, _ in delivered], [a.cycle for _, a, _ in delivered],
                [a.number for _, a, _ in delivered], [o.status_code for _, _, o in delivered],
                [o.latency_ms for _, _, o in delivered], now, now, endpoint_ids])
        return
    with transaction.atomic():
        rows_update(model=WebhookAttempt,
                    values={a.pk: {"status_code": o.status_code, "latency_ms": o.latency_ms} for _, a, o in delivered},
                    common={"finished_at": now, "error_class": ""})
        groups: dict[tuple[int, int, int | None], list] = {}
        for delivery, attempt, outcome in delivered:
            groups.setdefault((attempt.cycle, attempt.number, outcome.status_code), []).append(delivery)
        for (cycle, number, code), deliveries in groups.items():
            # unscoped: the deliveries of a batch just sent, by their ids
            WebhookDelivery.unscoped.filter(pk__in=[d.pk for d in deliveries], status=DeliveryStatus.PENDING,
                                            cycle=cycle, attempts=number).update(
                status=DeliveryStatus.DELIVERED, delivered_at=now, last_status_code=code, last_error_class="",
                next_attempt_at=None)
        if endpoint_ids:
            # unscoped: the endpoints of a batch just sent, by their ids
            WebhookEndpoint.unscoped.filter(pk__in=endpoint_ids, consecutive_failures__gt=0).update(
                consecutive_failures=0)


# --- the beat job ------------------------------------------------------------------------------------------


def webhooks_retry_due(*, limit: int = DUE_BATCH) -> int:
    """Enqueue due deliveries that no task is on the way for; returns how many.

    Safe when two runs overlap: rows are picked with SELECT ... FOR UPDATE SKIP LOCKED (where the
    database has it) and marked `enqueued_at` in the same transaction, so the other run skips them;
    and a duplicate task anyway loses the claim. Bounded: at most `limit` rows per run.
    """
    now = timezone.now()
    with transaction.atomic():
        # unscoped: the retry sweep, over every tenant's deliveries
        due = (WebhookDelivery.unscoped.select_for_update(skip_locked=True)
               .filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
               .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=now - REENQUEUE_AFTER))
               .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
        ids = list(due)
        WebhookDelivery.unscoped.filter(pk__in=ids).update(enqueued_at=now)
        deliveries_enqueue(ids)
    return len(ids)
