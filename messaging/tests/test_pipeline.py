"""The send pipeline: dispatch through the simulator, receipts, retries, expiry, the sweeper."""
from __future__ import annotations

from datetime import timedelta
from numbers.tests.factories import shared_senders

import pytest
import time_machine
from django.utils import timezone

from accounts.tests.factories import TenantFactory
from messaging import accept, pipeline, services
from messaging.lifecycle import TRANSITIONS, message_transition
from messaging.models import Message, MessageEvent, SimulatorSubmission, Status
from messaging.tests import history

pytestmark = pytest.mark.django_db

NUMBER = "+1415555{}"  # 555 numbers: valid to phonenumbers, fictional in use


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


def _send(tenant=None, ending="1234", **fields):
    tenant = tenant or TenantFactory()
    fields.setdefault("text", "Your code is 123456")
    return accept.message_send(tenant=tenant, api_key=None, to=NUMBER.format(ending), sender="Acme", **fields)


def _statuses(message) -> list[str]:
    return history.statuses(message)


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
    assert [sequence for sequence, _ in history.sequences(message)] == [1, 2, 3, 4]
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


# --- Hand-over to dispatch when no task reached the broker (issue 8, item 5) -----------------------


def _after(seconds: float):
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds))


def test_the_sweeper_hands_over_a_queued_message_whose_dispatch_task_never_reached_the_broker(settings):
    # given a committed message whose publish never happened (on_commit does not run in this test's
    # transaction, as when the broker refused it): nothing records a task for it
    message = _send()
    assert message.enqueued_at is None
    pickup = settings.MESSAGE_DISPATCH_PICKUP_SECONDS
    # when the sweeper runs within the pickup delay; then it leaves the message to its own publish
    assert pipeline.messages_sweep()["handed_over"] == 0
    # when it runs after the pickup delay; then it publishes the dispatch task, once
    with _after(pickup + 1):
        assert pipeline.messages_sweep()["handed_over"] == 1
        message.refresh_from_db()
        assert message.enqueued_at is not None
        again = pipeline.messages_sweep()
    assert again["handed_over"] == 0 and again["requeued"] == 0
    # and a task that never ran is published again only after MESSAGE_STUCK_SECONDS, not every sweep
    with _after(pickup + settings.MESSAGE_STUCK_SECONDS - 1):
        assert pipeline.messages_sweep()["requeued"] == 0
    with _after(pickup + settings.MESSAGE_STUCK_SECONDS + 2):
        assert pipeline.messages_sweep()["requeued"] == 1
        assert pipeline.messages_sweep()["requeued"] == 0
    # and the dispatch it leads to sends the message once
    pipeline.message_dispatch(message_id=message.pk)
    pipeline.message_dispatch(message_id=message.pk)
    assert SimulatorSubmission.objects.get(reference=message.public_id).submits == 1


def test_a_message_with_a_published_task_is_not_handed_over_again(settings):
    # given a message whose dispatch task reached the broker (the after-commit publish ran)
    message = _send()
    assert services.message_dispatch_publish(message=message) is True
    # when the sweeper runs after the pickup delay, as under a normal backlog; then it adds no duplicate
    with _after(settings.MESSAGE_DISPATCH_PICKUP_SECONDS + 1):
        counts = pipeline.messages_sweep()
    assert counts["handed_over"] == 0 and counts["requeued"] == 0


def test_a_retry_longer_than_a_countdown_waits_in_the_database_for_the_sweeper(monkeypatch):
    # given a carrier error whose backoff is longer than the longest dispatch countdown
    message = _send(ending="0003")
    monkeypatch.setattr(pipeline, "retry_delay", lambda attempt: 200.0)
    assert pipeline.MAX_COUNTDOWN_SECONDS < 200 <= pipeline.MAX_BACKOFF_SECONDS
    # when dispatch meets the transient error
    assert pipeline.message_dispatch(message_id=message.pk) == 200.0
    # then no task was published for the retry: it waits in next_attempt_at
    message.refresh_from_db()
    assert message.status == Status.QUEUED and message.enqueued_at is None
    assert message.next_attempt_at > timezone.now() + timedelta(seconds=199)
    # and the sweeper leaves it until it is due, then hands it over, and the retry sends it
    with _after(100):
        assert pipeline.messages_sweep()["handed_over"] == 0
    with time_machine.travel(message.next_attempt_at + timedelta(seconds=1)):
        assert pipeline.messages_sweep()["handed_over"] == 1
        pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2


def test_a_short_retry_rides_on_a_countdown_task():
    # given the simulator's one transient error (a backoff of 1-2 s)
    message = _send(ending="0003")
    # when dispatch meets it; then the retry task is published at once (stamped on the row)
    delay = pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert delay <= pipeline.MAX_COUNTDOWN_SECONDS
    assert message.status == Status.QUEUED and message.enqueued_at is not None


# --- `sent` messages whose receipt is overdue (issue 8, item 8) ------------------------------------


def _sent(ending: str = "1234", **fields) -> Message:
    """Sent through the simulator, whose receipt task is in the broker but never runs here (as when
    the worker holding it was killed)."""
    message = _send(ending=ending, **fields)
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.SENT
    return message


@pytest.mark.parametrize("ending, outcome", [("1234", Status.DELIVERED), ("0001", Status.UNDELIVERED)])
def test_the_sweeper_asks_the_simulator_again_for_an_overdue_receipt(settings, ending, outcome):
    message = _sent(ending)
    # when the sweeper runs before the receipt is overdue; then nothing happens
    assert pipeline.messages_sweep()["receipts"] == 0
    # when it runs after MESSAGE_RECEIPT_OVERDUE_SECONDS, twice (overlapping beats)
    with _after(settings.MESSAGE_RECEIPT_OVERDUE_SECONDS + 1):
        first, second = pipeline.messages_sweep(), pipeline.messages_sweep()
    # then the receipt is applied once
    message.refresh_from_db()
    assert (first["receipts"], second["receipts"]) == (1, 0)
    assert message.status == outcome
    assert _statuses(message) == ["queued", "sending", "sent", outcome]
    assert MessageEvent.unscoped.get(message=message, status=outcome).source == MessageEvent.Source.CARRIER


def test_a_sent_message_whose_receipt_never_comes_ends_undelivered_receipt_timeout(settings):
    # given the simulator's 0004 (a carrier that never reports) and a message of another carrier,
    # which cannot be asked
    quiet = _sent("0004", message_type="otp")
    other = _sent("5678", message_type="otp")
    Message.unscoped.filter(pk=other.pk).update(carrier="acme", carrier_message_id="acme-1")
    # when the receipts are overdue; then they are asked about (where possible) and left sent
    with _after(settings.MESSAGE_RECEIPT_OVERDUE_SECONDS + 1):
        counts = pipeline.messages_sweep()
    assert counts["receipts"] == 0 and counts["receipt_timeouts"] == 0
    assert set(Message.unscoped.filter(pk__in=[quiet.pk, other.pk]).values_list("status", flat=True)) == {"sent"}
    # when the validity period plus the grace time is not yet over; then still sent
    grace = settings.MESSAGE_RECEIPT_GRACE_SECONDS
    with time_machine.travel(quiet.expires_at + timedelta(seconds=grace - 5)):
        assert pipeline.messages_sweep()["receipt_timeouts"] == 0
    # when it is over; then both end undelivered with receipt_timeout, once
    with time_machine.travel(quiet.expires_at + timedelta(seconds=grace + 1)):
        first, second = pipeline.messages_sweep(), pipeline.messages_sweep()
    assert (first["receipt_timeouts"], second["receipt_timeouts"]) == (2, 0)
    for message in (quiet, other):
        message.refresh_from_db()
        assert (message.status, message.error_code) == (Status.UNDELIVERED, "receipt_timeout")
        assert _statuses(message) == ["queued", "sending", "sent", "undelivered"]
        assert MessageEvent.unscoped.get(message=message, status=Status.UNDELIVERED).source == MessageEvent.Source.SWEEPER
