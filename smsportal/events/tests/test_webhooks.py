"""Webhook delivery: emit after commit, Standard Webhooks signatures, ordering, filtering, retries on the
schedule, 410/429/3xx/timeouts, claims, the beat job and resends (RELIABILITY WH-1, WH-3, WH-6, CEL-6, CEL-8).

Receivers are real HTTP servers on loopback; the clock is time-machine's; tasks are recorded, not brokered.
"""
from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from accounts.models import AuditEvent
from accounts.services import SYSTEM
from accounts.tests.factories import TenantFactory
from messaging import pipeline
from smsportal.events import delivery as delivery_module
from smsportal.events import services
from smsportal.events.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from smsportal.events.tests.webhook_helpers import Published, body_of, delivery_of, endpoint_for, send
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch) -> Published:
    return Published(monkeypatch)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def retry_due(django_capture_on_commit_callbacks):
    """The beat job, with its after-commit enqueues run (the test's own transaction never commits)."""

    def run(**kwargs) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return services.webhooks_retry_due(**kwargs)

    return run


def event_for(tenant, url: str) -> WebhookDelivery:
    """An endpoint at `url`, then a message: the delivery of its message.queued event."""
    endpoint, _ = endpoint_for(tenant, url)
    return delivery_of(send(tenant), endpoint)


def attempt(delivery) -> float | None:
    return services.webhook_delivery_attempt(delivery_id=delivery.pk)


def fresh(obj):
    obj.refresh_from_db()
    return obj


def verify(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


# --- emit: inside the status change, enqueued after commit --------------------------------------------


def test_an_event_is_recorded_with_the_status_change_and_enqueued_only_after_commit(
        tenant, receiver, published, django_capture_on_commit_callbacks):
    # given an endpoint; when a message is accepted, before its transaction commits
    endpoint, _ = endpoint_for(tenant, receiver.url())
    with django_capture_on_commit_callbacks() as callbacks:
        message = send(tenant)
        delivery = delivery_of(message, endpoint)
        # then the delivery row exists (same transaction) but no task was published yet
        assert delivery.status == DeliveryStatus.PENDING and published.webhooks == []
    # when the commit callbacks run; then one task per delivery goes to the webhooks queue, and no HTTP was made
    for callback in callbacks:
        callback()
    assert published.webhooks == [(delivery.pk, "webhooks", None)]
    assert receiver.requests == []


def test_a_rolled_back_status_change_records_and_enqueues_nothing(tenant, receiver, published,
                                                                  django_capture_on_commit_callbacks):
    # given an endpoint and a per-message callback; when the accepting transaction rolls back
    endpoint_for(tenant, receiver.url())
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            send(tenant, callback_url=receiver.url("/cb"))
            raise RuntimeError("boom")
    # then no delivery row, no task, no request
    assert WebhookDelivery.unscoped.count() == 0
    assert published.webhooks == [] and receiver.requests == []


# --- signed deliveries ---------------------------------------------------------------------------------


def test_a_delivery_is_signed_so_the_reference_library_verifies_it(tenant, receiver):
    # given an endpoint and its once-shown secret, and a message with a client reference
    endpoint, secret = endpoint_for(tenant, receiver.url())
    message = send(tenant, client_reference="order-42", metadata={"cart": 7})
    delivery = delivery_of(message, endpoint)
    # when the delivery is attempted
    assert attempt(delivery) is None
    # then the receiver got one POST that standardwebhooks verifies with the endpoint's secret
    [request] = receiver.requests
    event = verify(secret, request)
    assert request.headers["webhook-id"] == delivery.event_id and request.headers["webhook-timestamp"].isdigit()
    assert request.headers["content-type"] == "application/json"
    assert event["type"] == "message.queued" and event["timestamp"].endswith("Z")
    data = event["data"]
    assert (data["id"], data["status"], data["sequence"], data["client_reference"]) == (
        message.public_id, "queued", 1, "order-42")
    assert data["metadata"] == {"cart": 7} and data["mode"] == "test" and data["error"] is None
    assert {"to", "from", "occurred_at", "segments", "message_type"} <= set(data)
    # and another secret does not verify it
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint_for(tenant, receiver.url())[1]).verify(request.body, request.headers)
    # and the delivery is delivered, its one attempt logged with status and latency
    delivery = fresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.delivered_at and delivery.last_status_code == 200
    [logged] = WebhookAttempt.unscoped.filter(delivery=delivery)
    assert (logged.number, logged.status_code, logged.error_class) == (1, 200, "")
    assert logged.latency_ms is not None and logged.finished_at is not None


def test_a_per_message_callback_is_signed_with_the_tenants_callback_secret(tenant, receiver):
    # given the tenant's callback secret, fetched once
    _, callback_secret = services.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    _, endpoint_secret = endpoint_for(tenant, receiver.url("/endpoint"), events=["message.sent"])
    # when a message with a callback_url is accepted and its event delivered
    message = send(tenant, callback_url=receiver.url("/cb"))
    attempt(delivery_of(message))
    # then the callback received it, signed with the callback secret (not with an endpoint's)
    [request] = receiver.requests
    assert request.path == "/cb" and verify(callback_secret, request)["data"]["id"] == message.public_id
    with pytest.raises(WebhookVerificationError):
        verify(endpoint_secret, request)


def test_the_callback_secret_is_made_on_first_need_and_a_rotation_signs_with_both(tenant, receiver):
    # given a tenant that never asked for its callback secret; when a callback is delivered
    first = send(tenant, callback_url=receiver.url("/cb"))
    attempt(delivery_of(first))
    assert receiver.requests[0].headers["webhook-signature"].startswith("v1,")
    # when the customer then gets the secret (a rotation: the first one was never shown)
    _, secret = services.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    second = send(tenant, callback_url=receiver.url("/cb"))
    attempt(delivery_of(second))
    # then the next delivery carries two signatures and verifies with the new secret
    request = receiver.requests[1]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert verify(secret, request)["data"]["id"] == second.public_id


def test_lifecycle_events_carry_a_growing_sequence_and_nothing_follows_a_final_status(tenant, receiver):
    # given an endpoint for every event; when a message is sent, delivered, then gets late receipts
    endpoint, secret = endpoint_for(tenant, receiver.url())
    message = send(tenant)
    pipeline.message_dispatch(message_id=message.pk)
    message = fresh(message)
    for stat in ("delivered", "sent", "undelivered"):
        pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id, status=stat)
    # then exactly queued, sent, delivered were emitted (a final status is never followed by another)
    deliveries = list(WebhookDelivery.unscoped.filter(endpoint=endpoint).order_by("created_at", "id"))
    assert [d.event_type for d in deliveries] == ["message.queued", "message.sent", "message.delivered"]
    # and delivered in any order, receivers can order them by data.sequence
    for delivery in reversed(deliveries):
        attempt(delivery)
    events = sorted((verify(secret, r) for r in receiver.requests), key=lambda e: e["data"]["sequence"])
    assert [e["data"]["status"] for e in events] == ["queued", "sent", "delivered"]
    sequences = [e["data"]["sequence"] for e in events]
    assert sequences == sorted(set(sequences)) and sequences[-1] == fresh(message).sequence


def test_endpoints_get_only_the_events_they_subscribe_to(tenant, receiver):
    # given one endpoint for deliveries only, one for everything, one disabled, and another tenant's
    only_delivered, _ = endpoint_for(tenant, receiver.url("/d"), events=["message.delivered"])
    everything, _ = endpoint_for(tenant, receiver.url("/all"))
    disabled, _ = endpoint_for(tenant, receiver.url("/off"), enabled=False)
    foreign, _ = endpoint_for(TenantFactory(), receiver.url("/foreign"))
    # when a message goes queued -> sent -> delivered
    message = send(tenant)
    pipeline.message_dispatch(message_id=message.pk)
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=fresh(message).carrier_message_id,
                           status="delivered")

    def types(endpoint):
        return list(WebhookDelivery.unscoped.filter(endpoint=endpoint).order_by("id").values_list("event_type", flat=True))

    # then each endpoint has the events it asked for, and nothing went to the others
    assert types(only_delivered) == ["message.delivered"]
    assert types(everything) == ["message.queued", "message.sent", "message.delivered"]
    assert types(disabled) == [] and types(foreign) == []


# --- retries and outcomes -------------------------------------------------------------------------------


def test_a_failing_receiver_is_retried_on_the_schedule_then_the_delivery_fails_and_the_endpoint_is_disabled(
        tenant, published, time_machine, retry_due):
    # given a receiver that answers 500 forever
    time_machine.move_to(timezone.now(), tick=False)
    with Receiver() as failing:
        failing.default = failing.default.__class__(500, body=b"internal details")
        endpoint, secret = endpoint_for(tenant, failing.url())
        delivery = delivery_of(send(tenant), endpoint)
        started, waits = timezone.now(), []
        # when every due attempt is made (short waits by the task's countdown, long ones by the beat job)
        for number in range(1, services.MAX_ATTEMPTS + 1):
            made_at = timezone.now()
            countdown = attempt(delivery)
            delivery = fresh(delivery)
            assert delivery.attempts == number
            if delivery.status != DeliveryStatus.PENDING:
                break
            wait = (delivery.next_attempt_at - made_at).total_seconds()
            scheduled = services.SCHEDULE[number - 1]
            assert scheduled <= wait <= scheduled * 1.1 + 0.001, (number, wait)
            assert countdown == (pytest.approx(wait, abs=0.001) if wait <= 60 else None)
            waits.append(wait)
            # an early call is a no-op: not due yet
            assert attempt(delivery) is None and fresh(delivery).attempts == number
            time_machine.move_to(delivery.next_attempt_at)
            if countdown is None:
                published.webhooks.clear()
                assert retry_due() == 1 and published.delivery_ids == [delivery.pk]
    # then 11 attempts were made over about a day, every one logged, all with the same webhook-id
    assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
    assert len(failing.requests) == services.MAX_ATTEMPTS == 11 and len(waits) == 10
    assert timedelta(hours=23) < timezone.now() - started < timedelta(hours=27)
    assert {r.headers["webhook-id"] for r in failing.requests} == {delivery.event_id}
    stamps = [int(r.headers["webhook-timestamp"]) for r in failing.requests]
    assert stamps == sorted(set(stamps))
    for request in failing.requests:  # verified at the time each was sent (the library allows 5 minutes of skew)
        time_machine.move_to(datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC))
        verify(secret, request)
    logged = WebhookAttempt.unscoped.filter(delivery=delivery).order_by("number")
    assert [(a.number, a.status_code, a.error_class) for a in logged] == [
        (n, 500, "http_500") for n in range(1, 12)]
    # and the endpoint was disabled, with a reason and an audit event
    endpoint = fresh(endpoint)
    assert not endpoint.enabled and "24 hours" in endpoint.disabled_reason and endpoint.consecutive_failures == 11
    assert AuditEvent.unscoped.filter(action="webhook_endpoint.disabled", target_id=endpoint.public_id).count() == 1


def test_410_fails_the_delivery_and_disables_the_endpoint_at_once(tenant, receiver):
    # given a receiver that answers 410 Gone, and two events for it
    receiver.answer(410)
    endpoint, _ = endpoint_for(tenant, receiver.url())
    first, second = (delivery_of(send(tenant), endpoint) for _ in range(2))
    # when the first is attempted
    assert attempt(first) is None
    # then it failed with no retry, and the endpoint is disabled
    first = fresh(first)
    assert (first.status, first.next_attempt_at, first.last_status_code) == (DeliveryStatus.FAILED, None, 410)
    endpoint = fresh(endpoint)
    assert not endpoint.enabled and "410" in endpoint.disabled_reason
    # and the other pending delivery fails without a request; new events create none
    attempt(second)
    second = fresh(second)
    assert second.status == DeliveryStatus.FAILED and second.last_error_class == "endpoint_disabled"
    send(tenant)
    assert len(receiver.requests) == 1 and WebhookDelivery.unscoped.filter(endpoint=endpoint).count() == 2


def test_429_is_retried_no_sooner_than_its_retry_after(tenant, receiver, published, time_machine, retry_due):
    # given a receiver that answers 429 with Retry-After: 120 (more than the 5 s the schedule says)
    time_machine.move_to(timezone.now(), tick=False)
    receiver.answer(429, headers={"Retry-After": "120"})
    delivery = event_for(tenant, receiver.url())
    # when it is attempted
    made_at = timezone.now()
    assert attempt(delivery) is None  # 120 s is too long for a countdown: the beat job takes it
    delivery = fresh(delivery)
    # then the next attempt is at least 120 s later, and not due a second earlier
    assert delivery.next_attempt_at - made_at >= timedelta(seconds=120)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_error_class == "http_429"
    time_machine.move_to(made_at + timedelta(seconds=119))
    assert retry_due() == 0
    time_machine.move_to(delivery.next_attempt_at)
    assert retry_due() == 1 and published.delivery_ids == [delivery.pk]
    attempt(delivery)
    assert fresh(delivery).status == DeliveryStatus.DELIVERED and len(receiver.requests) == 2


def test_a_redirect_is_a_failed_attempt_and_its_location_is_never_requested(tenant, receiver):
    # given a receiver that redirects to an internal one
    with Receiver() as internal:
        receiver.answer(302, headers={"Location": internal.url("/admin")})
        delivery = event_for(tenant, receiver.url())
        # when it is attempted
        assert attempt(delivery) == pytest.approx(5, rel=0.11)
        # then the attempt failed as redirect_not_followed, a retry is scheduled, and the Location saw nothing
        delivery = fresh(delivery)
        assert (delivery.status, delivery.last_status_code, delivery.last_error_class) == (
            DeliveryStatus.PENDING, 302, "redirect_not_followed")
        assert internal.requests == []


def test_a_slow_receiver_is_cut_off_at_the_timeout(tenant, receiver, settings):
    # given a 0.5 s timeout and a receiver that takes 3 s
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    receiver.answer(200, delay=3.0)
    delivery = event_for(tenant, receiver.url())
    # when it is attempted; then the attempt is a timeout, logged with its latency, and will be retried
    attempt(delivery)
    [logged] = WebhookAttempt.unscoped.filter(delivery=delivery)
    assert logged.error_class == "timeout" and logged.status_code is None and 400 <= logged.latency_ms < 1500
    assert fresh(delivery).status == DeliveryStatus.PENDING


def test_an_unreachable_receiver_is_a_connection_error_and_retried(tenant):
    closed = Receiver()
    url = closed.url()
    closed.stop()
    delivery = event_for(tenant, url)
    attempt(delivery)
    delivery = fresh(delivery)
    assert delivery.status == DeliveryStatus.PENDING and delivery.last_error_class == "connection_error"


def test_nothing_of_the_answer_is_stored(tenant, receiver):
    # given a receiver whose error answer carries secrets
    receiver.answer(500, body=b"AWS_SECRET_ACCESS_KEY=abc123", headers={"X-Internal": "db01.corp"})
    delivery = event_for(tenant, receiver.url())
    attempt(delivery)
    # then no row holds any of it
    rows = [*WebhookAttempt.unscoped.filter(delivery=delivery).values(), *WebhookDelivery.unscoped.filter(
        pk=delivery.pk).values()]
    assert "abc123" not in repr(rows) and "db01" not in repr(rows)


# --- claims, the beat job, leases -------------------------------------------------------------------------


def test_a_duplicate_task_makes_no_second_attempt(tenant, receiver):
    delivery = event_for(tenant, receiver.url())
    attempt(delivery)
    attempt(delivery)
    assert len(receiver.requests) == 1 and WebhookAttempt.unscoped.filter(delivery=delivery).count() == 1


def test_the_beat_job_works_in_bounded_batches_and_enqueues_each_due_delivery_once(tenant, published, time_machine, retry_due):
    # given five due deliveries whose tasks were lost (enqueued long ago, never run)
    time_machine.move_to(timezone.now(), tick=False)
    endpoint, _ = endpoint_for(tenant, "http://127.0.0.1:9/never")
    due = [delivery_of(send(tenant), endpoint) for _ in range(5)]
    time_machine.move_to(timezone.now() + delivery_module.REENQUEUE_AFTER + timedelta(seconds=1))
    # when the beat job runs three times with batches of three
    counts = [retry_due(limit=3) for _ in range(3)]
    # then each delivery was enqueued exactly once, on the webhooks queue
    assert counts == [3, 2, 0]
    assert sorted(published.delivery_ids) == sorted(d.pk for d in due)
    assert {queue for _id, queue, _countdown in published.webhooks} == {"webhooks"}
    # and a delivery not yet due, or one whose task is on its way, is left alone
    published.webhooks.clear()
    send(tenant)
    assert retry_due() == 0 and published.webhooks == []


def test_an_attempt_whose_worker_died_is_retried_after_its_lease(tenant, receiver, published, time_machine, retry_due):
    # given an attempt claimed by a worker that then died (no outcome recorded)
    time_machine.move_to(timezone.now(), tick=False)
    delivery = event_for(tenant, receiver.url())
    assert delivery_module._claim(delivery) is not None
    # when the beat job runs within the lease; then it leaves the delivery alone
    assert retry_due() == 0
    # when it runs after the lease; then the delivery is enqueued and its second attempt delivers
    time_machine.move_to(timezone.now() + delivery_module.LEASE + timedelta(seconds=1))
    assert retry_due() == 1
    attempt(delivery)
    delivery = fresh(delivery)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.attempts == 2
    log = WebhookAttempt.unscoped.filter(delivery=delivery).order_by("number")
    assert [(a.number, a.finished_at is not None) for a in log] == [(1, False), (2, True)]


def test_no_countdown_exceeds_half_the_broker_visibility_timeout():
    # given the broker's visibility timeout (Redis default: one hour)
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
    # then the longest countdown the delivery task may use stays under half of it
    assert delivery_module.MAX_COUNTDOWN_SECONDS <= visibility / 2
    # and the schedule spans about a day, the jitter included
    assert timedelta(hours=23) < timedelta(seconds=sum(services.SCHEDULE)) < timedelta(hours=24)
    assert sum(services.SCHEDULE) * (1 + delivery_module.JITTER) < 27 * 3600
    for number in range(1, services.MAX_ATTEMPTS):
        assert services.SCHEDULE[number - 1] <= delivery_module.retry_delay(number) <= services.SCHEDULE[number - 1] * 1.1
    assert delivery_module.retry_delay(services.MAX_ATTEMPTS) is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_tasks_for_one_delivery_make_one_attempt(receiver):
    # given a committed delivery; when eight workers attempt it at the same instant
    tenant = TenantFactory()
    delivery = event_for(tenant, receiver.url())
    barrier = threading.Barrier(8)
    results = []

    def worker():
        from django.db import connection

        barrier.wait()
        try:
            results.append(attempt(delivery))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly one request was made and logged
    assert len(receiver.requests) == 1 and WebhookAttempt.unscoped.filter(delivery=delivery).count() == 1
    assert fresh(delivery).status == DeliveryStatus.DELIVERED


# --- resends and disabled endpoints ---------------------------------------------------------------------


def test_a_resend_is_a_new_cycle_of_the_same_event(tenant, receiver, published):
    # given a delivered event
    endpoint, secret = endpoint_for(tenant, receiver.url())
    delivery = delivery_of(send(tenant), endpoint)
    attempt(delivery)
    # when it is resent
    services.webhook_delivery_resend(tenant=tenant, delivery=fresh(delivery))
    delivery = fresh(delivery)
    # then it is pending again in a new cycle, and a task is on its way
    assert (delivery.status, delivery.cycle, delivery.attempts) == (DeliveryStatus.PENDING, 1, 0)
    attempt(delivery)
    # and the receiver got the same event twice: same webhook-id, same body, both verified
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.event_id
    assert first.body == second.body and verify(secret, second) == body_of(first)
    log = WebhookAttempt.unscoped.filter(delivery=delivery).order_by("cycle", "number")
    assert [(a.cycle, a.number, a.status_code) for a in log] == [(0, 1, 200), (1, 1, 200)]


def test_an_attempt_in_flight_during_a_resend_cannot_overwrite_the_new_cycle(tenant, receiver):
    # given an attempt claimed (in flight) when the delivery is resent
    delivery = event_for(tenant, receiver.url())
    stale = delivery_module._claim(delivery)
    services.webhook_delivery_resend(tenant=tenant, delivery=delivery)
    # when the stale attempt records its failure
    delivery_module._record(delivery, stale, delivery_module.Outcome(status_code=500, error_class="http_500"))
    # then the new cycle is untouched (due now, no attempts), and the stale attempt is still logged
    delivery = fresh(delivery)
    assert (delivery.cycle, delivery.attempts, delivery.status, delivery.last_status_code) == (
        1, 0, DeliveryStatus.PENDING, None)
    assert fresh(stale).error_class == "http_500"


def test_a_resend_to_a_disabled_endpoint_is_refused(tenant, receiver):
    endpoint, _ = endpoint_for(tenant, receiver.url())
    delivery = delivery_of(send(tenant), endpoint)
    services.webhook_endpoint_update(tenant=tenant, endpoint=endpoint, actor=SYSTEM, enabled=False)
    with pytest.raises(services.errors.WebhookEndpointDisabled):
        services.webhook_delivery_resend(tenant=tenant, delivery=delivery)


def test_reenabling_an_endpoint_clears_its_failures(tenant, receiver):
    receiver.answer(410)
    endpoint, _ = endpoint_for(tenant, receiver.url())
    attempt(delivery_of(send(tenant), endpoint))
    endpoint = services.webhook_endpoint_update(tenant=tenant, endpoint=fresh(endpoint), actor=SYSTEM, enabled=True)
    assert (endpoint.enabled, endpoint.disabled_reason, endpoint.consecutive_failures) == (True, "", 0)
    assert WebhookEndpoint.unscoped.get(pk=endpoint.pk).enabled
