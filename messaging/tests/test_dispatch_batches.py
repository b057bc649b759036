"""Dispatch, receipts and webhooks in batches (messaging/dispatch.py, lifecycle.messages_transition,
pipeline.receipts_apply, smsportal/events/delivery.py webhook_deliveries_attempt): the same outcome per
message as one at a time, in a constant number of statements; and a batch through the real worker."""
from __future__ import annotations

import json
from datetime import timedelta
from numbers.tests.factories import shared_senders

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import SYSTEM
from accounts.tests.factories import TenantFactory, bearer, make_api_key
from messaging import accept, dispatch, pipeline
from messaging.lifecycle import messages_transition
from messaging.models import Message, SimulatorSubmission, Status
from messaging.tests import history
from smsportal.events import services as events
from smsportal.events.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def receipts(monkeypatch):
    """The simulator's receipt tasks as published (one list of receipts each); nothing reaches a broker."""
    from messaging.tasks import simulator_receipts_task

    tasks: list[list[tuple[str, str, str]]] = []
    monkeypatch.setattr(simulator_receipts_task, "apply_async", lambda args, **kw: tasks.append(list(args[0])))
    return tasks


@pytest.fixture
def deliveries(monkeypatch):
    """The webhook batch tasks as published: lists of delivery ids."""
    from smsportal.events.tasks import webhook_deliver_task, webhooks_deliver_task

    tasks: list[list[int]] = []
    monkeypatch.setattr(webhooks_deliver_task, "apply_async", lambda args, **kw: tasks.append(list(args[0])))
    monkeypatch.setattr(webhook_deliver_task, "apply_async", lambda args, **kw: tasks.append([args[0]]))
    return tasks


def _tenant():
    return TenantFactory(messages_per_second=10_000)  # the tests accept faster than the default 20 a second


def _queued(tenant, endings: list[str]) -> list[Message]:
    return [accept.message_send(tenant=tenant, api_key=None, to=f"+1415{5550000 + i:07d}"[:-4] + ending,
                                sender="Acme", text="Your code is 123456") for i, ending in enumerate(endings)]


def _history(message: Message) -> list[str]:
    return history.statuses(message)


# --- messages_transition --------------------------------------------------------------------------------


def test_a_bulk_transition_moves_only_what_the_table_allows_with_one_event_each():
    tenant = _tenant()
    queued = _queued(tenant, ["1234", "1235"])
    canceled = _queued(tenant, ["1236"])[0]
    Message.unscoped.filter(pk=canceled.pk).update(status=Status.CANCELED)
    moved = messages_transition(message_ids=[m.pk for m in [*queued, canceled]], to=Status.SENDING,
                                source="worker", expected=frozenset({Status.QUEUED}), increment_attempts=True)
    assert sorted(m.pk for m in moved) == sorted(m.pk for m in queued)
    for message in queued:
        message.refresh_from_db()
        assert (message.status, message.sequence, message.attempts) == (Status.SENDING, 2, 1)
        assert _history(message) == ["queued", "sending"]
    assert Message.unscoped.get(pk=canceled.pk).status == Status.CANCELED
    # and the same move again changes nothing
    assert messages_transition(message_ids=[m.pk for m in queued], to=Status.SENDING, source="worker",
                               expected=frozenset({Status.QUEUED})) == []


def test_the_moved_messages_are_the_rows_as_the_orm_loads_them():
    """On PostgreSQL the moved rows are built without Model.__init__ (lifecycle._instance): each must equal a
    fresh ORM load, field by field, and behave as one (saved as an UPDATE, related objects resolve)."""
    from django.db.models.signals import post_init, pre_init

    assert not pre_init.receivers and not post_init.receivers  # what skipping __init__ relies on
    tenant = _tenant()
    queued = _queued(tenant, ["1240", "1241"])
    Message.unscoped.filter(pk=queued[0].pk).update(metadata={"order": "A-1", "n": 2})
    moved = messages_transition(message_ids=[m.pk for m in queued], to=Status.SENDING, source="worker")
    assert len(moved) == 2
    for message in moved:
        loaded = Message.unscoped.get(pk=message.pk)
        for field in Message._meta.concrete_fields:
            assert getattr(message, field.attname) == getattr(loaded, field.attname), field.name
        assert (message._state.adding, message._state.db) == (False, "default")
        assert message.tenant == tenant
    assert moved[0].metadata == {"order": "A-1", "n": 2}
    moved[0].client_reference = "saved"
    with CaptureQueriesContext(connection) as captured:
        moved[0].save(update_fields=["client_reference"])
    assert captured[0]["sql"].startswith("UPDATE")
    assert Message.unscoped.get(pk=moved[0].pk).client_reference == "saved"


def test_assigned_values_land_on_every_message_and_only_the_movable_ones_move():
    """`assign` (the carrier ids with `sent`): set on each message, moved or not; a message a receipt already
    took past `sent` keeps its status and gets no event, but gets its carrier id."""
    tenant = _tenant()
    first, second = _queued(tenant, ["1250", "1251"])
    ids = [first.pk, second.pk]
    messages_transition(message_ids=ids, to=Status.SENDING, source="worker")
    messages_transition(message_ids=[second.pk], to=Status.DELIVERED, source="carrier")
    events_before = len(_history(second))
    moved = messages_transition(message_ids=ids, to=Status.SENT, source="worker", expected=frozenset({Status.SENDING}),
                                assign={"carrier": {first.pk: "c1", second.pk: "c1"},
                                        "carrier_message_id": {first.pk: "id-1", second.pk: "id-2"}})
    assert [m.pk for m in moved] == [first.pk]
    assert (moved[0].status, moved[0].carrier_message_id, moved[0].carrier) == (Status.SENT, "id-1", "c1")
    stored = {m.pk: m for m in Message.unscoped.filter(pk__in=ids)}
    assert (stored[first.pk].status, stored[first.pk].carrier_message_id) == (Status.SENT, "id-1")
    assert (stored[second.pk].status, stored[second.pk].carrier_message_id) == (Status.DELIVERED, "id-2")
    assert len(_history(second)) == events_before
    assert _history(first)[-1] == Status.SENT


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="counts row versions in PostgreSQL's statistics")
def test_the_carrier_ids_and_sent_are_one_row_version_of_each_message():
    """What the carrier took is recorded as one UPDATE of each message row (ids and `sent` together), not two:
    each row version costs an entry in every index of the table."""
    from messaging.carriers.base import SubmitResult

    tenant = _tenant()
    messages = _queued(tenant, ["1260", "1261", "1262"])
    ids = [m.pk for m in messages]
    sending = messages_transition(message_ids=ids, to=Status.SENDING, source="worker")

    def updates() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'messaging_message'")
            return cursor.fetchone()[0]

    before = updates()
    counts = {"sent": 0, "failed": 0, "retrying": 0, "expired": 0}
    dispatch.outcomes_record(carrier="c1", messages=sending, counts=counts,
                             outcomes=[SubmitResult.of((f"cid-{m.pk}",)) for m in sending])
    assert updates() - before == 3
    assert counts["sent"] == 3
    assert sorted(Message.unscoped.filter(pk__in=ids).values_list("carrier_message_id", "status")) == sorted(
        (f"cid-{pk}", Status.SENT) for pk in ids)


def test_a_bulk_transition_costs_the_same_statements_for_5_or_50_messages():
    tenant = _tenant()
    events.webhook_endpoint_create(tenant=tenant, url="https://hooks.example.com/a", actor=SYSTEM)

    def statements(count: int) -> int:
        ids = [m.pk for m in _queued(tenant, [f"{2000 + i}" for i in range(count)])]
        with CaptureQueriesContext(connection) as captured:
            assert len(messages_transition(message_ids=ids, to=Status.EXPIRED, source="sweeper")) == count
        return len(captured)

    assert statements(5) == statements(50)


def test_a_bulk_transition_emits_each_tenants_webhooks_to_its_own_endpoints():
    a, b = _tenant(), _tenant()
    endpoint_a, _ = events.webhook_endpoint_create(tenant=a, url="https://a.example.com/h", actor=SYSTEM,
                                                   events=["message.expired"])
    endpoint_b, _ = events.webhook_endpoint_create(tenant=b, url="https://b.example.com/h", actor=SYSTEM,
                                                   events=["message.expired"])
    messages = _queued(a, ["3001", "3002"]) + _queued(b, ["3003"])
    messages_transition(message_ids=[m.pk for m in messages], to=Status.EXPIRED, source="sweeper")
    got = sorted(WebhookDelivery.unscoped.filter(event_type="message.expired").values_list("subject", "endpoint_id"))
    assert got == sorted([(messages[0].public_id, endpoint_a.pk), (messages[1].public_id, endpoint_a.pk),
                          (messages[2].public_id, endpoint_b.pk)])
    payload = WebhookDelivery.unscoped.get(subject=messages[2].public_id).payload
    assert payload["data"]["sequence"] == 2 and payload["data"]["status"] == "expired"


# --- messages_dispatch ------------------------------------------------------------------------------------


def test_a_batch_gets_each_simulator_outcome_and_one_receipt_task(receipts):
    tenant = _tenant()
    plain, undelivered, rejected, throttled, silent = _queued(tenant, ["1234", "0001", "0002", "0003", "0004"])
    expired = _queued(tenant, ["1240"])[0]
    Message.unscoped.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    ids = [m.pk for m in (plain, undelivered, rejected, throttled, silent, expired)]
    counts = dispatch.messages_dispatch(message_ids=ids)
    assert counts == {"expired": 1, "sent": 3, "failed": 1, "retrying": 1}
    status = dict(Message.unscoped.filter(pk__in=ids).values_list("pk", "status"))
    assert status == {plain.pk: Status.SENT, undelivered.pk: Status.SENT, rejected.pk: Status.FAILED,
                      throttled.pk: Status.QUEUED, silent.pk: Status.SENT, expired.pk: Status.EXPIRED}
    assert Message.unscoped.get(pk=rejected.pk).error_code == "carrier_rejected"
    retry = Message.unscoped.get(pk=throttled.pk)
    assert retry.next_attempt_at > timezone.now() and retry.attempts == 1
    assert _history(plain) == ["queued", "sending", "sent"]
    # one receipt task for the batch (0004 never gets one), carrying the carrier ids recorded on the rows
    assert len(receipts) == 1
    carrier_ids = dict(Message.unscoped.filter(pk__in=[plain.pk, undelivered.pk]).values_list("public_id",
                                                                                             "carrier_message_id"))
    assert sorted(receipts[0]) == sorted([(carrier_ids[plain.public_id], "delivered", plain.public_id),
                                          (carrier_ids[undelivered.public_id], "undelivered", undelivered.public_id)])


def test_a_duplicate_batch_task_submits_nothing_again(receipts):
    tenant = _tenant()
    messages = _queued(tenant, ["1234", "1235", "1236"])
    ids = [m.pk for m in messages]
    dispatch.messages_dispatch(message_ids=ids)
    assert dispatch.messages_dispatch(message_ids=ids) == {"expired": 0, "sent": 0, "failed": 0, "retrying": 0}
    assert sorted(SimulatorSubmission.objects.filter(reference__in=[m.public_id for m in messages])
                  .values_list("submits", flat=True)) == [1, 1, 1]
    assert all(_history(m) == ["queued", "sending", "sent"] for m in messages)
    assert len(receipts) == 1


def test_a_scheduled_retry_is_not_taken_early_by_a_batch(receipts):
    message = _queued(_tenant(), ["1234"])[0]
    Message.unscoped.filter(pk=message.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=30))
    assert dispatch.messages_dispatch(message_ids=[message.pk])["sent"] == 0
    assert Message.unscoped.get(pk=message.pk).status == Status.QUEUED


def test_a_connector_that_blows_up_puts_the_whole_batch_back_for_a_retry(receipts, monkeypatch):
    from messaging.carriers.simulator import SimulatorConnector

    def broken(self, messages):
        raise RuntimeError("connector bug")

    monkeypatch.setattr(SimulatorConnector, "submit_many", broken)
    messages = _queued(_tenant(), ["1234", "1235"])
    assert dispatch.messages_dispatch(message_ids=[m.pk for m in messages])["retrying"] == 2
    assert set(Message.unscoped.filter(pk__in=[m.pk for m in messages]).values_list("status", flat=True)) == {"queued"}


def test_the_hand_off_cuts_a_large_accept_into_batches(monkeypatch, django_capture_on_commit_callbacks):
    from messaging import handoff
    from messaging.tasks import messages_dispatch_task

    published: list[list[int]] = []
    monkeypatch.setattr(messages_dispatch_task, "apply_async", lambda args, **kw: published.append(list(args[0])))
    ids = list(range(1, 2 * dispatch.DISPATCH_BATCH + 2))
    with django_capture_on_commit_callbacks(execute=True):
        handoff.dispatch_handoff(message_ids=ids, queue="otp")
    assert [len(batch) for batch in published] == [dispatch.DISPATCH_BATCH, dispatch.DISPATCH_BATCH, 1]
    assert [i for batch in published for i in batch] == ids


# --- receipts_apply -----------------------------------------------------------------------------------------


def test_receipts_in_bulk_are_idempotent_and_order_safe(receipts):
    tenant = _tenant()
    messages = _queued(tenant, ["1234", "0001"])
    dispatch.messages_dispatch(message_ids=[m.pk for m in messages])
    batch = [pipeline.Receipt(carrier_message_id=c, status=s, reference=r) for c, s, r in receipts[0]]
    assert pipeline.receipts_apply(carrier="simulator", receipts=batch) == 2
    # the same receipts again, and a late `sent`, change nothing
    late = [pipeline.Receipt(carrier_message_id=r.carrier_message_id, status="sent") for r in batch]
    assert pipeline.receipts_apply(carrier="simulator", receipts=batch + late) == 0
    delivered, undelivered = (Message.unscoped.get(pk=m.pk) for m in messages)
    assert (delivered.status, undelivered.status) == (Status.DELIVERED, Status.UNDELIVERED)
    assert undelivered.error_code == "carrier_undelivered"
    assert _history(delivered) == ["queued", "sending", "sent", "delivered"]


def test_a_bulk_receipt_matches_by_reference_before_the_carrier_id_is_recorded_and_ignores_strangers():
    message = _queued(_tenant(), ["1234"])[0]
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING, sequence=2)
    changed = pipeline.receipts_apply(carrier="simulator", receipts=[
        pipeline.Receipt(carrier_message_id="sim_not_yet_recorded", status="delivered", reference=message.public_id),
        pipeline.Receipt(carrier_message_id="sim_nobody", status="delivered"),
        pipeline.Receipt(carrier_message_id="sim_other", status="teleported", reference=message.public_id),
    ])
    assert changed == 1
    assert Message.unscoped.get(pk=message.pk).status == Status.DELIVERED


# --- webhook deliveries in batches ----------------------------------------------------------------------------


def _delivered_events(tenant, url: str, count: int) -> list[WebhookDelivery]:
    events.webhook_endpoint_create(tenant=tenant, url=url, actor=SYSTEM, events=["message.expired"])
    messages = _queued(tenant, [f"{4000 + i}" for i in range(count)])
    messages_transition(message_ids=[m.pk for m in messages], to=Status.EXPIRED, source="sweeper")
    return list(WebhookDelivery.unscoped.filter(event_type="message.expired").order_by("pk"))


def test_a_batch_of_deliveries_is_posted_signed_and_recorded(settings, deliveries):
    from standardwebhooks.webhooks import Webhook

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    tenant = _tenant()
    with Receiver() as receiver:
        endpoint, secret = events.webhook_endpoint_create(tenant=tenant, url=receiver.url("/h"), actor=SYSTEM,
                                                          events=["message.expired"])
        messages = _queued(tenant, [f"{4100 + i}" for i in range(12)])
        messages_transition(message_ids=[m.pk for m in messages], to=Status.EXPIRED, source="sweeper")
        rows = list(WebhookDelivery.unscoped.filter(endpoint=endpoint))
        receiver.answer(500)  # the first POST fails: that one is retried on schedule, the others are delivered
        retries = events.webhook_deliveries_attempt(delivery_ids=[row.pk for row in rows])
        # a duplicate task finds nothing left to claim
        assert events.webhook_deliveries_attempt(delivery_ids=[row.pk for row in rows]) == {}
    assert len(receiver.requests) == 12
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    assert len(retries) == 1 and 5 <= next(iter(retries.values())) <= 6
    statuses = sorted(WebhookDelivery.unscoped.filter(endpoint=endpoint).values_list("status", flat=True))
    assert statuses == [DeliveryStatus.DELIVERED] * 11 + [DeliveryStatus.PENDING]
    attempts = WebhookAttempt.unscoped.filter(delivery__endpoint=endpoint)
    assert attempts.count() == 12 and not attempts.filter(finished_at__isnull=True).exists()
    assert sorted(attempts.values_list("status_code", flat=True)) == [200] * 11 + [500]
    failed = WebhookDelivery.unscoped.get(pk=next(iter(retries)))
    assert failed.attempts == 1 and failed.last_status_code == 500


def test_a_batch_of_many_deliveries_is_published_as_batch_tasks(deliveries, django_capture_on_commit_callbacks):
    from smsportal.events.delivery import DELIVERY_BATCH

    tenant = _tenant()
    with django_capture_on_commit_callbacks(execute=True):
        rows = _delivered_events(tenant, "https://hooks.example.com/x", DELIVERY_BATCH + 1)
    assert [len(ids) for ids in deliveries] == [DELIVERY_BATCH, 1]
    assert sorted(i for ids in deliveries for i in ids) == sorted(row.pk for row in rows)


def test_a_disabled_endpoints_deliveries_give_up_in_a_batch(settings):
    tenant = _tenant()
    rows = _delivered_events(tenant, "https://hooks.example.com/y", 3)
    rows[0].endpoint.__class__.unscoped.filter(pk=rows[0].endpoint_id).update(enabled=False)
    assert events.webhook_deliveries_attempt(delivery_ids=[row.pk for row in rows]) == {}
    assert set(WebhookDelivery.unscoped.filter(pk__in=[r.pk for r in rows]).values_list("last_error_class", flat=True)) \
        == {"endpoint_disabled"}


def test_a_410_in_a_batch_fails_that_delivery_and_disables_its_endpoint_while_the_others_are_delivered(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    tenant = _tenant()
    with Receiver() as receiver:
        rows = _delivered_events(tenant, receiver.url("/gone"), 3)
        receiver.answer(410)  # the first POST to arrive; the others get the default 200
        assert events.webhook_deliveries_attempt(delivery_ids=[row.pk for row in rows]) == {}
    statuses = sorted(WebhookDelivery.unscoped.filter(pk__in=[r.pk for r in rows]).values_list("status", flat=True))
    assert statuses == sorted([DeliveryStatus.DELIVERED] * 2 + [DeliveryStatus.FAILED])
    endpoint = rows[0].endpoint.__class__.unscoped.get(pk=rows[0].endpoint_id)
    assert not endpoint.enabled and "410" in endpoint.disabled_reason and endpoint.consecutive_failures == 1


def test_a_batch_of_callback_url_deliveries_is_signed_with_the_tenants_callback_secret(settings):
    from standardwebhooks.webhooks import Webhook

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    tenant = _tenant()
    _, secret = events.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    with Receiver() as receiver:
        rows = [WebhookDelivery.unscoped.create(tenant=tenant, url=receiver.url(f"/cb{i}"), event_type="message.expired",
                                                payload={"type": "message.expired", "data": {"n": i, "text": "é"}})
                for i in range(3)]
        assert events.webhook_deliveries_attempt(delivery_ids=[row.pk for row in rows]) == {}
    assert sorted(request.path for request in receiver.requests) == ["/cb0", "/cb1", "/cb2"]
    for request in receiver.requests:
        body = Webhook(secret).verify(request.body, request.headers)
        assert body["data"]["text"] == "é"
    assert set(WebhookDelivery.unscoped.filter(pk__in=[r.pk for r in rows]).values_list("status", flat=True)) \
        == {DeliveryStatus.DELIVERED}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a row lock held by a second connection")
def test_a_batch_skips_a_delivery_another_worker_holds_and_leaves_it_pending(settings):
    import psycopg

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    tenant = _tenant()
    with Receiver() as receiver:
        rows = _delivered_events(tenant, receiver.url("/held"), 3)
        params = connection.get_connection_params()
        with psycopg.connect(**params) as other:  # a second worker, mid-claim of the first row
            other.execute("SELECT id FROM messaging_webhookdelivery WHERE id = %s FOR UPDATE", [rows[0].pk])
            assert events.webhook_deliveries_attempt(delivery_ids=[row.pk for row in rows]) == {}
            other.rollback()
    assert len(receiver.requests) == 2
    held = WebhookDelivery.unscoped.get(pk=rows[0].pk)
    assert held.status == DeliveryStatus.PENDING and held.attempts == 0
    assert not WebhookAttempt.unscoped.filter(delivery=held).exists()


def test_the_payload_of_a_batch_delivery_is_the_event_as_emitted():
    tenant = _tenant()
    (row,) = _delivered_events(tenant, "https://hooks.example.com/z", 1)
    body = json.loads(json.dumps(row.payload))
    assert body["type"] == "message.expired" and body["data"]["id"] == row.subject


# --- through the real worker (PostgreSQL and Redis: see test_e2e_worker.py) ----------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs the PostgreSQL test database")
def test_an_accepted_batch_is_delivered_by_the_real_worker_with_one_webhook_each(tmp_path, settings, api):
    from standardwebhooks.webhooks import Webhook

    from messaging.tests import test_e2e_worker as e2e

    if not (e2e.ON_REDIS or e2e.ON_FILESYSTEM):
        pytest.skip("needs the Redis or filesystem broker")
    settings.MESSAGE_STUCK_SECONDS = e2e.STUCK_SECONDS
    e2e._purge_broker()
    stack, receiver = e2e.Stack(tmp_path), e2e.Receiver()
    try:
        tenant = TenantFactory(messages_per_second=10_000)
        _, key = make_api_key(tenant, name="batch")
        _, secret = events.webhook_endpoint_create(tenant=tenant, url=f"{receiver.url}/hook", actor=SYSTEM,
                                                   events=["message.delivered"])
        worker = stack.start_worker()
        endings = [f"{7000 + i}" for i in range(300)] + ["0001", "0002", "0003"]
        body = {"defaults": {"from": "Acme", "text": "Your code is 123456"},
                "messages": [{"to": f"+1415{5500000 + i:07d}"[:-4] + e} for i, e in enumerate(endings)]}
        response = api.post("/v1/messages/batch", body, format="json", **bearer(key))
        assert response.status_code == 202, response.json()
        ids = [item["id"] for item in response.json()["results"]]

        def done() -> bool:
            final = Message.unscoped.filter(public_id__in=ids, status__in=["delivered", "undelivered", "failed"])
            return final.count() == len(ids) and len(receiver.received("/hook")) >= len(ids) - 2

        e2e._wait_for(done, 60, "every message final and its webhook in", interval=0.2)
        import time

        time.sleep(0.5)  # a duplicate would come right behind
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{worker.tail()}") from None
    finally:
        stack.stop_all()
        receiver.stop()
        e2e._purge_broker()
    statuses = dict(Message.unscoped.filter(public_id__in=ids).values_list("public_id", "status"))
    assert sorted(statuses.values()).count("delivered") == len(ids) - 2
    hooks = receiver.received("/hook")
    subjects = [Webhook(secret).verify(body, headers)["data"]["id"] for headers, body in hooks]
    assert sorted(subjects) == sorted(i for i in ids if statuses[i] == "delivered")  # one each, no duplicates
    assert SimulatorSubmission.objects.filter(reference__in=ids, submits__gt=1).count() == 0


def test_the_queued_events_of_an_accept_expand_into_deliveries_in_one_call(receipts):
    from messaging.events import message_events_expand

    tenant = _tenant()
    endpoint, _ = events.webhook_endpoint_create(tenant=tenant, url="https://hooks.example.com/q", actor=SYSTEM,
                                                 events=["message.queued"])
    messages = _queued(tenant, ["5001", "5002", "5003"])
    WebhookDelivery.unscoped.all().delete()  # as an accept that wrote no delivery per message
    dispatch.messages_dispatch(message_ids=[messages[0].pk])  # one has moved on meanwhile: still its queued event
    created = message_events_expand(message_ids=[m.pk for m in messages])
    assert sorted(d.subject for d in created) == sorted(m.public_id for m in messages)
    assert {d.endpoint_id for d in created} == {endpoint.pk}
    assert {d.payload["data"]["status"] for d in created} == {"queued"}
    assert {d.payload["data"]["sequence"] for d in created} == {1}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_hand_offs_stamp_skips_rows_a_worker_holds_instead_of_waiting_for_them(monkeypatch):
    # (an UPDATE of many rows waiting on a claim's row locks, in another order, deadlocked in bench/e2e.py)
    import threading

    from django.db import connections, transaction

    from messaging import handoff
    from messaging.tasks import message_dispatch_task

    monkeypatch.setattr(message_dispatch_task, "apply_async", lambda *args, **kwargs: None)
    held, other = _queued(_tenant(), ["6001", "6002"])
    Message.unscoped.filter(pk__in=[held.pk, other.pk]).update(enqueued_at=None)
    locked, release = threading.Event(), threading.Event()

    def worker() -> None:
        try:
            with transaction.atomic():
                list(Message.unscoped.select_for_update().filter(pk=held.pk))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(10)
        handoff._stamp([held.pk, other.pk])
        stamped = dict(Message.unscoped.filter(pk__in=[held.pk, other.pk]).values_list("pk", "enqueued_at"))
    finally:
        release.set()
        thread.join(10)
    assert stamped[held.pk] is None and stamped[other.pk] is not None


# --- the worker's set-based statements (issue 9, end to end) ---------------------------------------------


def test_a_bulk_transition_returns_the_rows_as_stored():
    # given queued messages with metadata
    tenant = _tenant()
    messages = _queued(tenant, ["6101", "6102"])
    Message.unscoped.filter(pk=messages[0].pk).update(metadata={"order": 7})
    # when they are claimed and then sent, with a field set on the way
    messages_transition(message_ids=[m.pk for m in messages], to=Status.SENDING, source="worker",
                        increment_attempts=True)
    moved = messages_transition(message_ids=[m.pk for m in messages], to=Status.SENT, source="worker",
                                fields={"carrier": "simulator"})
    # then every returned field is what the database holds, and each move wrote its event
    names = [field.attname for field in Message._meta.concrete_fields]
    for message in moved:
        stored = Message.unscoped.get(pk=message.pk)
        assert {n: getattr(message, n) for n in names} == {n: getattr(stored, n) for n in names}
        assert (message.status, message.sequence, message.attempts, message.carrier) == ("sent", 3, 1, "simulator")
        assert message.sent_at is not None and _history(message) == ["queued", "sending", "sent"]
    assert moved[0].metadata == {"order": 7}


@pytest.mark.django_db(transaction=True)
def test_a_bulk_transition_that_waited_for_a_lock_sees_the_status_it_then_finds():
    # (a late `sent` must never overwrite the `delivered` a receipt batch wrote while it waited)
    import threading

    from django.db import connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    tenant = _tenant()
    message = _queued(tenant, ["6201"])[0]
    messages_transition(message_ids=[message.pk], to=Status.SENDING, source="worker")
    locked, release = threading.Event(), threading.Event()

    def receipt() -> None:
        try:
            with transaction.atomic():
                messages_transition(message_ids=[message.pk], to=Status.DELIVERED, source="carrier")
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=receipt)
    thread.start()
    assert locked.wait(10)
    threading.Timer(0.3, release.set).start()  # the sent transition below waits on the receipt's lock meanwhile
    moved = messages_transition(message_ids=[message.pk], to=Status.SENT, source="worker")
    thread.join(10)
    assert moved == []
    assert Message.unscoped.get(pk=message.pk).status == Status.DELIVERED
    assert _history(message) == ["queued", "sending", "delivered"]


def test_a_resubmission_to_the_simulator_is_counted_not_logged_again(receipts):
    tenant = _tenant()
    messages = _queued(tenant, ["6301", "6302"])
    dispatch.messages_dispatch(message_ids=[m.pk for m in messages])
    # when the sweeper's reclaim submits the first one again (the claim back to queued, then a new batch)
    Message.unscoped.filter(pk=messages[0].pk).update(status=Status.QUEUED)
    dispatch.messages_dispatch(message_ids=[m.pk for m in messages])
    submissions = dict(SimulatorSubmission.objects.filter(reference__in=[m.public_id for m in messages])
                       .values_list("reference", "submits"))
    assert submissions == {messages[0].public_id: 2, messages[1].public_id: 1}
    assert len(receipts) == 2  # the resubmission reports its status again


def test_a_transition_nobody_listens_to_builds_no_payload_and_stores_no_delivery(monkeypatch):
    from messaging import events as message_events

    tenant = _tenant()
    events.webhook_endpoint_create(tenant=tenant, url="https://hooks.example.com/d", actor=SYSTEM,
                                   events=["message.delivered"])
    messages = _queued(tenant, ["6401", "6402"])
    built = []
    original = message_events.message_payload_data
    monkeypatch.setattr(message_events, "message_payload_data", lambda **kw: built.append(kw) or original(**kw))
    messages_transition(message_ids=[m.pk for m in messages], to=Status.SENDING, source="worker")
    messages_transition(message_ids=[m.pk for m in messages], to=Status.SENT, source="worker")
    assert built == [] and not WebhookDelivery.unscoped.filter(event_type="message.sent").exists()
    messages_transition(message_ids=[m.pk for m in messages], to=Status.DELIVERED, source="carrier")
    assert len(built) == 2
    rows = WebhookDelivery.unscoped.filter(event_type="message.delivered").order_by("subject")
    assert sorted(r.subject for r in rows) == sorted(m.public_id for m in messages)
    assert all(r.status == "pending" and r.attempts == 0 and r.public_id.startswith("whd_")
               and r.event_id.startswith("evt_") and r.payload["type"] == "message.delivered" for r in rows)
