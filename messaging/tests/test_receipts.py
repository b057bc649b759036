"""Delivery receipts repeated, late and out of order (pipeline.receipt_apply), and the simulator's receipts."""
from __future__ import annotations

import itertools
from numbers.tests.factories import shared_senders

import pytest

from accounts.tests.factories import TenantFactory
from messaging import accept, pipeline, services
from messaging.carriers.simulator import SimulatorConnector
from messaging.lifecycle import FINAL, can_transition, message_transition
from messaging.models import Message, MessageEvent, SimulatorSubmission, Status
from messaging.tests import history

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def receipts(monkeypatch):
    """The simulator's scheduled receipts, as (carrier id, status, reference); nothing reaches a broker."""
    from messaging.tasks import simulator_receipts_task

    scheduled: list[tuple[str, str, str]] = []
    monkeypatch.setattr(simulator_receipts_task, "apply_async",
                        lambda args, **kw: scheduled.extend(tuple(receipt) for receipt in args[0]))
    return scheduled


def _sent(ending: str = "1234") -> Message:
    """A message the worker has handed to the simulator and recorded as sent."""
    message = accept.message_send(tenant=TenantFactory(), api_key=None, to=f"+1415555{ending}", sender="Acme",
                                    text="Your code is 123456")
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == Status.SENT
    return message


def _receipt(message: Message, status: str, **kwargs) -> Message | None:
    return pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id, status=status,
                                  **kwargs)


def _history(message: Message) -> list[tuple[int, str]]:
    return history.sequences(message)


def _assert_history_is_sound(message: Message) -> None:
    """One event per sequence number 1..n (n = the message's sequence), each step an allowed one."""
    message.refresh_from_db()
    history = _history(message)
    assert [sequence for sequence, _ in history] == list(range(1, message.sequence + 1))
    assert history[-1][1] == message.status
    assert all(can_transition(a, b) for (_, a), (_, b) in itertools.pairwise(history)), history


@pytest.mark.parametrize("first, later, final", [
    ("undelivered", "sent", Status.UNDELIVERED),  # a late `sent` never reopens a final status
    ("undelivered", "enroute", Status.UNDELIVERED),
    ("undelivered", "delivered", Status.UNDELIVERED),  # the first outcome wins
    ("delivered", "undelivered", Status.DELIVERED),
    ("delivered", "failed", Status.DELIVERED),
    ("failed", "delivered", Status.FAILED),
    ("expired", "delivered", Status.UNDELIVERED),
    ("rejected", "sent", Status.UNDELIVERED),
])
def test_a_receipt_after_a_final_one_changes_nothing(receipts, first, later, final):
    # given a sent message that got a final receipt
    message = _sent()
    assert _receipt(message, first) is not None
    before = _history(message)
    # when a later receipt says something else
    assert _receipt(message, later) is None
    # then the status, its error and the history stay as they were
    message.refresh_from_db()
    assert message.status == final and _history(message) == before
    assert message.error_code == ("" if final == Status.DELIVERED else f"carrier_{final}")
    _assert_history_is_sound(message)


@pytest.mark.parametrize("status", ["sent", "delivered", "undelivered", "failed"])
def test_the_same_receipt_twice_writes_one_event(receipts, status):
    message = _sent()
    _receipt(message, status)
    _receipt(message, status)
    expected = ["queued", "sending", "sent"] + ([] if status == "sent" else [status])
    assert [s for _, s in _history(message)] == expected


@pytest.mark.parametrize("order", list(itertools.permutations(["enroute", "delivered", "undelivered", "sent"])))
def test_receipts_in_any_order_end_in_the_first_outcome(receipts, order):
    # given a sent message, when four receipts arrive in this order
    message = _sent()
    for status in order:
        _receipt(message, status)
    # then the first outcome among them holds, written once, after queued/sending/sent
    outcome = next(s for s in order if s in ("delivered", "undelivered"))
    message.refresh_from_db()
    assert message.status == outcome
    assert [s for _, s in _history(message)] == ["queued", "sending", "sent", outcome]
    _assert_history_is_sound(message)


def test_a_sent_receipt_that_overtakes_the_worker_is_recorded_once(receipts):
    # given a message claimed by a worker that is about to record `sent` itself
    message = accept.message_send(tenant=TenantFactory(), api_key=None, to="+14155551234", sender="Acme",
                                    text="hi")
    message_transition(message_id=message.pk, to=Status.SENDING, source="worker", increment_attempts=True)
    # when the carrier's `sent` receipt, matched by our reference, arrives first
    assert pipeline.receipt_apply(carrier="simulator", carrier_message_id="sim_not_recorded_yet",
                                  status="sent", reference=message.public_id) is not None
    # and the worker then records its own outcome
    assert pipeline._submit(Message.unscoped.get(pk=message.pk)) is None
    # then `sent` is written once, by the carrier, and the carrier id the worker got is kept
    message.refresh_from_db()
    assert [(s, e.source) for e in history.timeline(message) for s in [e.status]] == [
        ("queued", "api"), ("sending", "worker"), ("sent", "carrier")]
    assert message.status == Status.SENT and message.sent_at is not None
    assert message.carrier_message_id == SimulatorSubmission.objects.get(reference=message.public_id).carrier_message_id


def test_a_delivered_receipt_that_overtakes_the_worker_is_final(receipts):
    message = accept.message_send(tenant=TenantFactory(), api_key=None, to="+14155551234", sender="Acme",
                                    text="hi")
    message_transition(message_id=message.pk, to=Status.SENDING, source="worker", increment_attempts=True)
    pipeline.receipt_apply(carrier="simulator", carrier_message_id="x", status="delivered", reference=message.public_id)
    pipeline._submit(Message.unscoped.get(pk=message.pk))
    message.refresh_from_db()
    assert message.status == Status.DELIVERED and message.sent_at is None and message.delivered_at is not None
    assert [s for _, s in _history(message)] == ["queued", "sending", "delivered"]
    _assert_history_is_sound(message)


def test_a_receipt_for_a_message_that_is_not_with_the_carrier_is_ignored(receipts):
    # a canceled message, and a queued one (its claim was reclaimed by the sweeper)
    tenant = TenantFactory()
    canceled = accept.message_send(tenant=tenant, api_key=None, to="+14155551234", sender="Acme", text="hi")
    services.message_cancel(tenant=tenant, message=canceled)
    queued = accept.message_send(tenant=tenant, api_key=None, to="+14155551235", sender="Acme", text="hi")
    for message in (canceled, queued):
        assert pipeline.receipt_apply(carrier="simulator", carrier_message_id="x", status="delivered",
                                      reference=message.public_id) is None
    assert [s for _, s in _history(canceled)] == ["queued", "canceled"]
    assert [s for _, s in _history(queued)] == ["queued"]


def test_a_receipt_is_matched_by_our_ids_only(receipts):
    message = _sent()
    other = _sent(ending="1235")
    # another carrier's receipt with this carrier id matches nothing
    assert pipeline.receipt_apply(carrier="othercarrier", carrier_message_id=message.carrier_message_id,
                                  status="delivered") is None
    # the carrier id wins over a reference naming another message
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id, status="delivered",
                           reference=other.public_id)
    message.refresh_from_db()
    other.refresh_from_db()
    assert (message.status, other.status) == (Status.DELIVERED, Status.SENT)


def test_a_carrier_id_used_again_names_the_newest_message(receipts):
    """A restarted SMSC may count its ids from the start again: the receipt is the newer message's."""
    older, newer = _sent(), _sent(ending="1235")
    assert _receipt(older, "delivered") is not None
    Message.unscoped.filter(pk=newer.pk).update(carrier_message_id=older.carrier_message_id)
    pipeline.receipts_apply(carrier="simulator",
                            receipts=[pipeline.Receipt(carrier_message_id=older.carrier_message_id, status="delivered")])
    newer.refresh_from_db()
    assert newer.status == Status.DELIVERED


@pytest.mark.parametrize("status, mapped", [("DELIVERED", Status.DELIVERED), ("Undelivered", Status.UNDELIVERED),
                                            ("expired", Status.UNDELIVERED), ("rejected", Status.UNDELIVERED),
                                            ("failed", Status.FAILED), ("accepted", Status.SENT)])
def test_receipt_statuses_are_mapped_whatever_their_case(receipts, status, mapped):
    message = _sent()
    _receipt(message, status, carrier_error_code="0x34", detail="carrier said so")
    message.refresh_from_db()
    assert message.status == mapped
    if mapped in (Status.UNDELIVERED, Status.FAILED):
        assert (message.error_code, message.error_message) == (f"carrier_{mapped}", "carrier said so")
        assert MessageEvent.unscoped.get(message=message, status=mapped).carrier_error_code == "0x34"


def test_final_statuses_never_move_whatever_the_receipt():
    for final, receipt in itertools.product(FINAL, pipeline.RECEIPT_STATUSES.values()):
        assert not can_transition(final, receipt)


# --- the simulator's receipts --------------------------------------------------------------------------


def test_the_simulator_schedules_one_receipt_per_submission_and_none_for_0004(receipts, settings):
    settings.SIMULATOR_RECEIPT_DELAY = 0.2
    delivered, undelivered, silent = _sent("1234"), _sent("0001"), _sent("0004")
    assert receipts == [(delivered.carrier_message_id, "delivered", delivered.public_id),
                        (undelivered.carrier_message_id, "undelivered", undelivered.public_id)]
    assert silent.carrier_message_id


def test_a_resubmission_after_a_crash_still_gets_its_receipt(receipts, settings):
    # given a worker that logged the submission at the carrier and was killed before the receipt
    # was scheduled (the window between the simulator's insert and its apply_async)
    message = accept.message_send(tenant=TenantFactory(), api_key=None, to="+14155551234", sender="Acme",
                                    text="hi")
    claimed = message_transition(message_id=message.pk, to=Status.SENDING, source="worker", increment_attempts=True)
    SimulatorConnector().submit(claimed)
    receipts.clear()  # the receipt scheduled by that submission is the one the crash lost
    # when the sweeper reclaims it and dispatch runs again
    message_transition(message_id=message.pk, to=Status.QUEUED, source="sweeper", webhook=False)
    pipeline.message_dispatch(message_id=message.pk)
    # then the carrier counted a second submit, sent one SMS, and a receipt is on its way again
    submission = SimulatorSubmission.objects.get(reference=message.public_id)
    assert submission.submits == 2
    assert len(receipts) == 1
    # and applying it delivers the message
    carrier_id, status, reference = receipts[0]
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=carrier_id, status=status, reference=reference)
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert [s for _, s in _history(message)] == ["queued", "sending", "queued", "sending", "sent", "delivered"]


def test_a_receipt_dropped_while_the_message_was_requeued_is_made_good_by_the_resubmission(receipts):
    # given a worker killed after submitting: the message sits in `sending`, its receipt scheduled
    message = accept.message_send(tenant=TenantFactory(), api_key=None, to="+14155551234", sender="Acme",
                                    text="hi")
    claimed = message_transition(message_id=message.pk, to=Status.SENDING, source="worker", increment_attempts=True)
    SimulatorConnector().submit(claimed)
    first_receipt = receipts.pop()
    # when the sweeper requeues it and the receipt lands in that moment, it is refused
    message_transition(message_id=message.pk, to=Status.QUEUED, source="sweeper", webhook=False)
    assert pipeline.receipt_apply(carrier="simulator", carrier_message_id=first_receipt[0], status=first_receipt[1],
                                  reference=first_receipt[2]) is None
    # then the re-dispatch's receipt delivers it
    pipeline.message_dispatch(message_id=message.pk)
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=receipts[-1][0], status=receipts[-1][1])
    message.refresh_from_db()
    assert message.status == Status.DELIVERED
    assert SimulatorSubmission.objects.get(reference=message.public_id).submits == 2
    _assert_history_is_sound(message)
