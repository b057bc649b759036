"""The send pipeline: dispatch through the simulator, receipts, retries, expiry, the sweeper."""
from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.tests.factories import TenantFactory
from messaging import accept, pipeline, services
from messaging.lifecycle import TRANSITIONS, message_transition
from messaging.models import Message, MessageEvent, SimulatorSubmission, Status

pytestmark = pytest.mark.django_db

NUMBER = "+1415555{}"  # 555 numbers: valid to phonenumbers, fictional in use


def _send(tenant=None, ending="1234", **fields):
    tenant = tenant or TenantFactory()
    fields.setdefault("text", "Your code is 123456")
    return accept.message_send(tenant=tenant, api_key=None, to=NUMBER.format(ending), sender="Acme", **fields)


def _statuses(message) -> list[str]:
    return list(MessageEvent.unscoped.filter(message=message).order_by("sequence").values_list("status", flat=True))


def test_it_sends_through_the_simulator_and_applies_its_receipt():
    message = _send()

    assert pipeline.message_dispatch(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.status == Status.SENT and message.carrier == "simulator" and message.carrier_message_id
    assert message.attempts == 1 and message.sent_at is not None

    pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id, status="delivered")

    message.refresh_from_db()
    assert message.status == Status.DELIVERED and message.delivered_at is not None
    assert _statuses(message) == ["queued", "sending", "sent", "delivered"]
    assert list(MessageEvent.unscoped.filter(message=message).values_list("sequence", flat=True)) == [1, 2, 3, 4]
    assert message.sequence == 4


def test_a_duplicated_dispatch_task_sends_once():
    message = _send()

    pipeline.message_dispatch(message_id=message.pk)
    pipeline.message_dispatch(message_id=message.pk)

    assert SimulatorSubmission.objects.get(reference=message.public_id).submits == 1
    assert _statuses(message) == ["queued", "sending", "sent"]


def test_a_repeated_receipt_changes_nothing_and_a_late_sent_never_overwrites_delivered():
    message = _send()
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()

    first = pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id,
                                   status="delivered")
    again = pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id,
                                   status="delivered")
    late = pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id,
                                  status="enroute")

    assert first is not None and again is None and late is None
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert _statuses(message) == ["queued", "sending", "sent", "delivered"]


def test_a_receipt_that_overtakes_the_worker_still_lands():
    # given a message claimed by a worker that has not recorded `sent` yet
    message = _send()
    message_transition(message_id=message.pk, to=Status.SENDING, source="worker")

    # when the carrier's receipt arrives first (matched by our reference)
    pipeline.receipt_apply(carrier="simulator", carrier_message_id="sim_unknown", status="delivered",
                           reference=message.public_id)

    message.refresh_from_db()
    assert message.status == Status.DELIVERED


def test_a_receipt_for_an_unknown_message_is_ignored():
    assert pipeline.receipt_apply(carrier="simulator", carrier_message_id="sim_nope", status="delivered") is None
    assert pipeline.receipt_apply(carrier="simulator", carrier_message_id="x", status="no-such-status") is None


def test_0001_gets_an_undelivered_receipt():
    message = _send(ending="0001")
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()

    pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id,
                           status="undelivered", carrier_error_code="0x34")

    message.refresh_from_db()
    assert message.status == Status.UNDELIVERED and message.error_code == "carrier_undelivered"
    assert MessageEvent.unscoped.get(message=message, status=Status.UNDELIVERED).carrier_error_code == "0x34"


def test_0002_fails_permanently_without_retry():
    message = _send(ending="0002")

    assert pipeline.message_dispatch(message_id=message.pk) is None

    message.refresh_from_db()
    assert message.status == Status.FAILED and message.error_code == "carrier_rejected"
    assert message.attempts == 1
    assert not SimulatorSubmission.objects.filter(reference=message.public_id).exists()


def test_0003_is_retried_after_one_transient_error_then_sent():
    message = _send(ending="0003")

    delay = pipeline.message_dispatch(message_id=message.pk)

    message.refresh_from_db()
    assert delay is not None and 1 <= delay <= pipeline.MAX_BACKOFF_SECONDS
    assert message.status == Status.QUEUED and message.next_attempt_at > timezone.now()
    assert pipeline.message_dispatch(message_id=message.pk) is None  # too early: a duplicate does nothing
    with time_machine.travel(message.next_attempt_at + timedelta(seconds=1)):
        pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2
    assert _statuses(message) == ["queued", "sending", "queued", "sending", "sent"]


def test_0004_stays_sent():
    message = _send(ending="0004")
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_transient_errors_until_the_validity_ends_expire_the_message(settings):
    # given a carrier that always throttles (0003 fails only its first attempt, so fake attempts)
    message = _send(ending="0003", message_type="otp", validity_period=60)
    Message.unscoped.filter(pk=message.pk).update(attempts=0)

    with time_machine.travel(message.expires_at - timedelta(seconds=1)):
        pipeline.message_dispatch(message_id=message.pk)

    message.refresh_from_db()
    assert message.status == Status.EXPIRED and message.error_code == "expired"


def test_a_message_past_its_validity_is_expired_not_sent():
    message = _send()
    with time_machine.travel(message.expires_at + timedelta(seconds=1)):
        pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.EXPIRED
    assert not SimulatorSubmission.objects.filter(reference=message.public_id).exists()


def test_the_sweeper_releases_due_scheduled_messages_and_expires_overdue_ones():
    tenant = TenantFactory()
    later = _send(tenant, scheduled_at=timezone.now() + timedelta(hours=1))
    overdue = _send(tenant, message_type="otp")
    assert later.status == Status.SCHEDULED

    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=1)):
        counts = pipeline.messages_sweep()

    later.refresh_from_db()
    overdue.refresh_from_db()
    assert later.status == Status.QUEUED and overdue.status == Status.EXPIRED
    assert counts["released"] == 1 and counts["expired"] == 1


def test_the_sweeper_reclaims_a_message_a_killed_worker_left_in_sending(settings):
    # given a worker that claimed and submitted, then died before recording the outcome
    message = _send()
    claimed = message_transition(message_id=message.pk, to=Status.SENDING, source="worker", increment_attempts=True)
    from messaging.carriers.simulator import SimulatorConnector

    SimulatorConnector().submit(claimed)

    # when the sweeper runs after the stuck threshold, and dispatch runs again
    with time_machine.travel(timezone.now() + timedelta(seconds=settings.MESSAGE_STUCK_SECONDS + 1)):
        counts = pipeline.messages_sweep()
        pipeline.message_dispatch(message_id=message.pk)

    # then the message is sent once: the carrier saw our reference twice and sent one SMS
    message.refresh_from_db()
    assert counts["reclaimed"] == 1
    assert message.status == Status.SENT
    submission = SimulatorSubmission.objects.get(reference=message.public_id)
    assert submission.submits == 2 and message.carrier_message_id == submission.carrier_message_id


def test_two_overlapping_sweeps_do_not_double_anything():
    message = _send(scheduled_at=timezone.now() + timedelta(minutes=5))
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        first, second = pipeline.messages_sweep(), pipeline.messages_sweep()
    assert first["released"] == 1 and second["released"] == 0
    assert _statuses(message) == ["scheduled", "queued"]


def test_cancel_works_for_queued_and_scheduled_only():
    tenant = TenantFactory()
    queued, scheduled = _send(tenant), _send(tenant, scheduled_at=timezone.now() + timedelta(hours=2))
    services.message_cancel(tenant=tenant, message=queued)
    services.message_cancel(tenant=tenant, message=scheduled)
    assert {m.status for m in Message.unscoped.filter(tenant=tenant)} == {Status.CANCELED}

    sent = _send(tenant)
    pipeline.message_dispatch(message_id=sent.pk)
    from messaging.errors import MessageNotCancelable

    with pytest.raises(MessageNotCancelable):
        services.message_cancel(tenant=tenant, message=sent)
    assert pipeline.message_dispatch(message_id=queued.pk) is None  # a canceled message is never sent


def test_final_statuses_are_never_left():
    for final in ("delivered", "undelivered", "failed", "expired", "rejected", "canceled"):
        assert TRANSITIONS[final] == frozenset()


def test_the_retry_delay_never_exceeds_the_cap():
    for attempt in range(0, 30):
        assert 1 <= pipeline.retry_delay(attempt) <= pipeline.MAX_BACKOFF_SECONDS
