"""The dispatcher hand-over (messaging/dispatcher.py, MESSAGE_HANDOFF = "dispatcher"): accept makes no
broker call; a claim publishes one task per queue and batch, never twice, and a failed publish leaves
the rows to the next claim. The last test runs a real `manage.py dispatcher` beside a real worker.

Publishes are recorded where the broker would take them (as in test_batch_accept.py), except in the
end-to-end test, which uses the test settings' broker (Redis when CELERY_BROKER_URL says so).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
from datetime import timedelta
from numbers.tests.factories import shared_senders

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.tests.factories import TenantFactory, bearer, make_api_key
from compliance.tests.consent_helpers import opted_in
from messaging import dispatch, dispatcher
from messaging.models import Message, MessageEvent, Status
from messaging.tasks import message_dispatch_task, messages_dispatch_task
from messaging.tests import history
from smsportal.events.models import EventFanout, WebhookDelivery
from smsportal.events.tasks import event_fanout_expand_task

URL = "/v1/messages"
BODY = {"to": "+14155550123", "from": "Acme", "text": "Your code is 123456", "message_type": "otp",
        "callback_url": "https://yourapp.example/webhook"}


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def by_dispatcher(settings):
    settings.MESSAGE_HANDOFF = "dispatcher"


@pytest.fixture
def published(monkeypatch) -> list[tuple[list[int], str]]:
    """The dispatch tasks published, as (ids, queue); any other publish of accept fails the test."""
    calls: list[tuple[list[int], str]] = []
    monkeypatch.setattr(messages_dispatch_task, "apply_async", lambda args, queue=None, **kw: calls.append((args[0], queue)))

    def forbidden(*args, **kwargs):
        raise AssertionError("accept published a task")

    monkeypatch.setattr(message_dispatch_task, "apply_async", forbidden)
    monkeypatch.setattr(event_fanout_expand_task, "apply_async", forbidden)
    return calls


@pytest.fixture
def fast(world):
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=10_000)
    # The world's own queued messages count as handed over already: each test claims only its own.
    Message.unscoped.filter(status=Status.QUEUED).update(enqueued_at=timezone.now())
    return world


def _send(api, world, django_capture_on_commit_callbacks, body=None, url=URL) -> dict:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post(url, body or BODY, format="json", **world.a.auth)
    assert response.status_code == 202, response.json()
    assert callbacks == [], "the request registered an after-commit hand-over"
    return response.json()


@pytest.mark.django_db
def test_a_single_send_publishes_nothing_and_the_next_claim_hands_it_over_once(
        fast, by_dispatcher, published, api, django_capture_on_commit_callbacks):
    # given a single send accepted with the dispatcher on
    body = _send(api, fast, django_capture_on_commit_callbacks)
    message = Message.unscoped.get(public_id=body["id"])
    # then nothing was published, the row awaits hand-over, and its message.queued is one fan-out row, unexpanded
    assert published == [] and message.status == Status.QUEUED and message.enqueued_at is None
    assert history.statuses(message) == ["queued"] and not MessageEvent.unscoped.filter(message=message).exists()
    row = EventFanout.unscoped.get(items=[message.pk])
    assert row.expanded_at is None and not WebhookDelivery.unscoped.filter(subject=message.public_id).exists()
    # when the dispatcher runs a round, twice
    first, second = dispatcher.dispatcher_run_once(), dispatcher.dispatcher_run_once()
    # then the first round published one task on the otp queue and expanded the fan-out; the second did nothing
    assert first == {"handed_over": 1, "fanouts": 1} and second == {"handed_over": 0, "fanouts": 0}
    assert published == [([message.pk], "otp")]
    message.refresh_from_db()
    assert message.enqueued_at is not None
    row.refresh_from_db()
    assert row.expanded_at is not None and row.deliveries == WebhookDelivery.unscoped.filter(
        subject=message.public_id).count() >= 1  # the callback_url at least
    assert WebhookDelivery.unscoped.filter(subject=message.public_id, url=BODY["callback_url"]).count() == 1


@pytest.mark.django_db
def test_a_failed_publish_clears_the_claim_and_the_next_claim_takes_it_again(
        fast, by_dispatcher, published, api, django_capture_on_commit_callbacks, monkeypatch):
    # given a send accepted while the broker refuses
    message_id = Message.unscoped.get(public_id=_send(api, fast, django_capture_on_commit_callbacks)["id"]).pk

    def refused(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(messages_dispatch_task, "apply_async", refused)
    # when the dispatcher claims it
    handed = dispatcher.messages_hand_over()
    # then nothing was handed over and the stamp is empty again
    assert handed == 0 and Message.unscoped.get(pk=message_id).enqueued_at is None
    # and once the broker is back the next claim hands it over
    monkeypatch.setattr(messages_dispatch_task, "apply_async", lambda args, queue=None, **kw: published.append((args[0], queue)))
    assert dispatcher.messages_hand_over() == 1 and published == [([message_id], "otp")]


@pytest.mark.django_db
def test_a_batch_is_stored_unstamped_and_handed_over_in_tasks_of_dispatch_batch_ids(
        fast, by_dispatcher, published, api, django_capture_on_commit_callbacks, monkeypatch, us_daytime):
    monkeypatch.setattr(dispatch, "DISPATCH_BATCH", 2)
    # given a batch of five accepted with the dispatcher on
    items = [{"to": f"+1415555{1000 + i}"} for i in range(5)]
    opted_in(fast.a.tenant, *(item["to"] for item in items))  # marketing needs the opt-in (the consent check)
    body = _send(api, fast, django_capture_on_commit_callbacks, url=f"{URL}/batch",
                 body={"defaults": {"from": "Acme", "text": "hi", "message_type": "marketing"}, "messages": items})
    ids = sorted(Message.unscoped.filter(public_id__in=[r["id"] for r in body["results"]]).values_list("pk", flat=True))
    assert len(ids) == 5 and not Message.unscoped.filter(pk__in=ids, enqueued_at__isnull=False).exists()
    # when one claim runs
    assert dispatcher.messages_hand_over() == 5
    # then three tasks of at most two ids carried them, on their queue, each id once
    assert [queue for _, queue in published] == ["marketing"] * 3
    assert sorted(pk for batch, _ in published for pk in batch) == ids and max(len(b) for b, _ in published) == 2


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_row_another_dispatcher_holds_is_skipped_not_waited_for(published):
    # given ten queued messages awaiting hand-over, three of them locked by another dispatcher's open claim
    tenant = TenantFactory()
    ids = [_queued(tenant, i) for i in range(10)]
    locked, holding, release = ids[:3], threading.Event(), threading.Event()

    def other_claim() -> None:
        try:
            with transaction.atomic():
                list(Message.unscoped.select_for_update().filter(pk__in=locked).values_list("pk"))
                holding.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_claim)
    thread.start()
    assert holding.wait(10)
    try:
        # when this dispatcher claims
        handed = dispatcher.messages_hand_over()
    finally:
        release.set()
        thread.join(10)
    # then it handed over the seven free ones without waiting, and the three once they were free
    assert handed == 7 and sorted(pk for b, _ in published for pk in b) == ids[3:]
    assert dispatcher.messages_hand_over() == 3 and sorted(pk for b, _ in published for pk in b) == ids


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_four_dispatchers_at_once_hand_each_message_over_exactly_once(published):
    # given 400 queued messages awaiting hand-over
    tenant = TenantFactory()
    ids = [_queued(tenant, i) for i in range(400)]
    start = threading.Barrier(4)

    def run() -> None:
        try:
            start.wait(10)
            while dispatcher.messages_hand_over(limit=25):
                pass
        finally:
            connections.close_all()

    # when four dispatchers claim in small batches at the same time
    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # then every message was published exactly once
    handed = [pk for batch, _ in published for pk in batch]
    assert sorted(handed) == ids and len(handed) == len(set(handed))


def _queued(tenant, i: int) -> int:
    now = timezone.now()
    return Message.unscoped.create(tenant=tenant, to=f"+1415555{1000 + i}", sender="Acme", text="hi",
                                   status=Status.QUEUED, message_type="otp", created_at=now, segments=1, characters=2,
                                   encoding="GSM-7",
                                   status_changed_at=now, expires_at=now + timedelta(hours=1)).pk


# --- a real dispatcher process beside a real worker --------------------------------------------------


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_dispatcher_and_worker_deliver_sends_the_request_never_published(stack, settings, api, request):
    from messaging.tests.test_e2e_worker import _report, _wait_for

    # given a worker and a dispatcher process on the test database and broker, the dispatcher hand-over on
    settings.MESSAGE_HANDOFF = "dispatcher"
    stack.start_worker()
    log = stack.tmp / "dispatcher.log"
    env = {**stack.env(), "MESSAGE_HANDOFF": "dispatcher"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "manage.py", "dispatcher"], cwd=stack_repo(), env=env,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: b"handing over" in log.read_bytes() or process.poll() is not None, 30, "the dispatcher")
        assert process.poll() is None, log.read_text(errors="replace")
        tenant = TenantFactory(messages_per_second=1000)
        _, secret = make_api_key(tenant, name="dispatcher")
        # when twenty OTPs are posted
        ids = []
        for i in range(20):
            response = api.post(URL, {**BODY, "to": f"+1415555{1200 + i}", "callback_url": ""},
                                format="json", **bearer(secret))
            assert response.status_code == 202, response.json()
            ids.append(response.json()["id"])
        # then every one is delivered (the simulator's 1234-style numbers deliver), each submitted once
        _wait_for(lambda: Message.unscoped.filter(public_id__in=ids, status__in=("sent", "delivered")).count() == 20,
                  30, f"the messages to be sent; dispatcher log:\n{log.read_text(errors='replace')[-2000:]}")
        assert Message.unscoped.filter(public_id__in=ids, attempts=1).count() == 20
        latencies = [(event.created_at - event.message.created_at).total_seconds() * 1000
                     for event in MessageEvent.unscoped.filter(message__public_id__in=ids, status=Status.SENDING)
                     .select_related("message")]
        assert len(latencies) == 20
        handed = [(m.enqueued_at - m.created_at).total_seconds() * 1000
                  for m in Message.unscoped.filter(public_id__in=ids)]
        _report(request, f"dispatcher hand-over: accept -> handed over (enqueued_at) p50 {statistics.median(handed):.0f} ms"
                         f", accept -> sending p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms "
                         f"(poll {env.get('DISPATCHER_POLL_SECONDS', '0.02')} s)")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
        process.wait(timeout=10)
    assert process.returncode in (0, -15), log.read_text(errors="replace")[-2000:]


def stack_repo():
    from messaging.tests.test_e2e_worker import REPO

    return REPO


@pytest.fixture
def stack(tmp_path, settings):
    from messaging.tests import test_e2e_worker as e2e

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: the worker and dispatcher processes cannot see an in-memory SQLite database")
    e2e._purge_broker()
    stack = e2e.Stack(tmp_path)
    yield stack
    stack.stop_all()
    e2e._purge_broker()
