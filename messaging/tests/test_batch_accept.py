"""Batch accept's bulk path (messaging/accept/store.py): COPY, the message row as its first event, one
fan-out row for message.queued expanded by the worker, enqueued_at stamped at insert, and the
indexes the queries of messaging_message still use (docs/send-pipeline.md, docs/performance.md).

On the configured database (COPY and EXPLAIN on PostgreSQL; bulk_create on SQLite). Receivers are
real HTTP servers on loopback; tasks are recorded where the broker would take them.
"""
from __future__ import annotations

from datetime import timedelta
from numbers.tests.factories import shared_senders

import pytest
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks import Webhook

from accounts.models import Tenant
from accounts.services import SYSTEM
from messaging import accept, handoff, pipeline
from messaging.models import Message, MessageEvent, Status
from smsportal.events import fanout, services
from smsportal.events.models import EventFanout, WebhookDelivery
from smsportal.events.tasks import event_fanout_expand_task
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db

BATCH = "/v1/messages/batch"
FIELDS = {"sender": "Acme", "text": "Your code is 123456", "client_reference": "ref-1", "metadata": {"cart": 7}}


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def fast(world):
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=10_000)
    world.a.tenant.refresh_from_db()
    return world


@pytest.fixture
def quiet():
    """A tenant of its own (the world's tenants have an endpoint already), its rate out of the way."""
    from accounts.tests.factories import TenantFactory

    tenant = TenantFactory()
    Tenant.objects.filter(pk=tenant.pk).update(messages_per_second=10_000)
    tenant.refresh_from_db()
    return tenant


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def fanout_tasks(monkeypatch) -> list[int]:
    published: list[int] = []
    monkeypatch.setattr(event_fanout_expand_task, "apply_async", lambda args, **kw: published.append(args[0]))
    return published


def _numbers(n: int, start: int = 2000) -> list[str]:
    return [f"+1415555{start + i:04d}" for i in range(n)]


def _accept(tenant, n: int, **fields) -> list:
    drafts = accept.messages_accept(tenant=tenant, api_key=None,
                                    items=[{**FIELDS, **fields, "to": to} for to in _numbers(n)])
    assert all(d.error is None for d in drafts)
    return drafts


# --- the rows ------------------------------------------------------------------------------------------


def test_a_batch_stores_the_same_message_rows_as_a_single_send(fast):
    # given one message sent alone and the same message in a batch of three
    (single,) = accept.messages_accept(tenant=fast.a.tenant, api_key=None, items=[{**FIELDS, "to": "+14155551999"}])
    batch = _accept(fast.a.tenant, 3)
    # then every stored field but the ids, number, times and the hand-over stamp is the same
    ignore = {"id", "public_id", "to", "created_at", "status_changed_at", "expires_at", "enqueued_at"}
    fields = [f.attname for f in Message._meta.concrete_fields if f.attname not in ignore]
    alone = Message.unscoped.filter(pk=single.id).values(*fields).get()
    for draft in batch:
        assert Message.unscoped.filter(pk=draft.id).values(*fields).get() == alone
        row = Message.unscoped.get(pk=draft.id)
        assert (row.public_id, row.to, row.status, row.sequence) == (draft.public_id, draft.message.to, "queued", 1)
        assert row.expires_at == draft.expires_at and row.metadata == {"cart": 7}


def test_a_batch_writes_no_event_rows_and_its_timeline_starts_with_accepted(fast, api):
    # given a batch: no MessageEvent row is written at accept
    before = MessageEvent.unscoped.count()
    drafts = _accept(fast.a.tenant, 2)
    assert MessageEvent.unscoped.count() == before
    # when the message is read through the API; then its events start with `accepted`, from its row
    body = api.get(f"/v1/messages/{drafts[0].public_id}", **fast.a.auth).json()
    row = Message.unscoped.get(pk=drafts[0].id)
    assert [(e["sequence"], e["status"], e["source"], e["detail"]) for e in body["events"]] == [
        (1, "queued", "api", "accepted")]
    assert body["events"][0]["created_at"].replace("Z", "+00:00") == row.created_at.isoformat()


def test_the_timeline_keeps_later_events_after_the_made_up_first_one(fast, api):
    drafts = _accept(fast.a.tenant, 2)
    pipeline.message_dispatch(message_id=drafts[0].id)  # queued -> sending -> sent: events 2 and 3
    body = api.get(f"/v1/messages/{drafts[0].public_id}", **fast.a.auth).json()
    assert [(e["sequence"], e["status"]) for e in body["events"]][:3] == [(1, "queued"), (2, "sending"), (3, "sent")]


def test_a_single_send_keeps_its_stored_first_event_once(fast, api):
    (draft,) = accept.messages_accept(tenant=fast.a.tenant, api_key=None, items=[{**FIELDS, "to": "+14155551998"}])
    body = api.get(f"/v1/messages/{draft.public_id}", **fast.a.auth).json()
    assert [(e["sequence"], e["detail"]) for e in body["events"]] == [(1, "accepted")]


def test_a_scheduled_batch_message_was_accepted_as_scheduled(fast, api):
    drafts = _accept(fast.a.tenant, 2, scheduled_at=timezone.now() + timedelta(hours=1))
    body = api.get(f"/v1/messages/{drafts[0].public_id}", **fast.a.auth).json()
    assert body["status"] == "scheduled" and body["events"][0]["status"] == "scheduled"
    assert Message.unscoped.get(pk=drafts[0].id).enqueued_at is None  # the sweeper releases it, then hands it over


def test_the_portal_timeline_shows_accepted_for_a_batch_message(fast, client):
    from accounts.tests.factories import login_verified

    drafts = _accept(fast.a.tenant, 2)
    login_verified(client, fast.a.owner, tenant=fast.a.tenant)
    page = client.get(f"/portal/messages/{drafts[0].public_id}/").content.decode()
    assert "accepted" in page and 'class="count">1<' in page


# --- enqueued_at at insert ---------------------------------------------------------------------------------


def test_a_batch_is_stamped_at_insert_and_a_failed_publish_clears_the_stamp(fast, monkeypatch,
                                                                           django_capture_on_commit_callbacks):
    from messaging.tasks import messages_dispatch_task

    published = []
    monkeypatch.setattr(messages_dispatch_task, "apply_async", lambda args, **kw: published.append(args[0]))
    with django_capture_on_commit_callbacks(execute=True):
        drafts = _accept(fast.a.tenant, 3)
    ids = [d.id for d in drafts]
    # then one publish carried all three, and the rows kept the stamp they were stored with
    assert published == [ids]
    assert all(m.enqueued_at == m.created_at for m in Message.unscoped.filter(pk__in=ids))

    def refused(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(messages_dispatch_task, "apply_async", refused)
    with django_capture_on_commit_callbacks(execute=True):
        drafts = _accept(fast.a.tenant, 3)
    # then the stamp is gone, so the sweeper's hand-over takes them after the pickup time
    assert all(m.enqueued_at is None for m in Message.unscoped.filter(pk__in=[d.id for d in drafts]))


def test_handoff_without_stamp_still_stamps_after_publish(fast, monkeypatch):
    from messaging.tasks import message_dispatch_task

    (draft,) = accept.messages_accept(tenant=fast.a.tenant, api_key=None, items=[{**FIELDS, "to": "+14155551997"}])
    monkeypatch.setattr(message_dispatch_task, "apply_async", lambda *a, **kw: None)
    handoff._publish([draft.id], "transactional")
    assert Message.unscoped.get(pk=draft.id).enqueued_at is not None


# --- message.queued through one fan-out row ------------------------------------------------------------


def test_a_batch_records_one_fan_out_row_and_no_delivery_at_accept(fast, fanout_tasks,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        drafts = _accept(fast.a.tenant, 3, callback_url="https://hooks.example/sms")
    (row,) = EventFanout.unscoped.filter(tenant=fast.a.tenant)
    assert row.event_type == "message.queued" and row.items == [d.id for d in drafts] and row.expanded_at is None
    assert not WebhookDelivery.unscoped.filter(subject__in=[d.public_id for d in drafts]).exists()
    # and its expansion was handed to the worker after commit
    assert fanout_tasks == [row.pk]


def test_nobody_listening_records_no_fan_out_row(quiet, fanout_tasks):
    _accept(quiet, 3)
    assert not EventFanout.unscoped.filter(tenant=quiet).exists()


def test_a_rolled_back_batch_records_no_fan_out_row(fast, fanout_tasks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        _accept(fast.a.tenant, 3, callback_url="https://hooks.example/sms")
        raise RuntimeError("boom")
    assert not EventFanout.unscoped.exists() and fanout_tasks == []


def test_the_expansion_delivers_a_signed_message_queued_per_message_to_every_target(quiet, receiver):
    # given an endpoint subscribed to message.queued and a batch with a per-message callback
    endpoint, secret = services.webhook_endpoint_create(tenant=quiet, url=receiver.url("/ep"), actor=SYSTEM)
    _, callback_secret = services.webhook_callback_secret_rotate(tenant=quiet, actor=SYSTEM)
    drafts = _accept(quiet, 3, callback_url=receiver.url("/cb"))
    pipeline.message_dispatch(message_id=drafts[0].id)  # one of them moves on before the expansion
    (row,) = EventFanout.unscoped.filter(tenant=quiet)
    # when the worker expands the row, twice (a duplicate task)
    assert fanout.event_fanout_expand(fanout_id=row.pk) == 6
    assert fanout.event_fanout_expand(fanout_id=row.pk) is None
    # then one delivery per message and target, and each verifies with its secret
    deliveries = WebhookDelivery.unscoped.filter(event_type="message.queued",
                                                 subject__in=[d.public_id for d in drafts])
    assert deliveries.count() == 6
    for delivery in deliveries:
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert len(receiver.requests) == 6
    for request in receiver.requests:
        event = Webhook(secret if request.path == "/ep" else callback_secret).verify(request.body, request.headers)
        data = event["data"]
        # as of accept: queued, sequence 1, at created_at, even for the one already sent
        assert (event["type"], data["status"], data["sequence"], data["client_reference"]) == (
            "message.queued", "queued", 1, "ref-1")
        assert data["metadata"] == {"cart": 7} and data["error"] is None
    assert sorted(r.path for r in receiver.requests) == ["/cb"] * 3 + ["/ep"] * 3
    assert EventFanout.unscoped.get(pk=row.pk).deliveries == 6


def test_a_fan_out_whose_task_was_lost_is_expanded_by_the_beat_job(quiet, time_machine, receiver):
    # given a batch accepted while the broker is down (its fan-out task never published)
    services.webhook_endpoint_create(tenant=quiet, url=receiver.url("/ep"), actor=SYSTEM)
    time_machine.move_to(timezone.now(), tick=False)
    drafts = _accept(quiet, 2)
    # then the beat job leaves it to its task for the pickup time, then expands it, once
    assert fanout.event_fanouts_expand_due() == 0
    time_machine.shift(fanout.PICKUP + timedelta(seconds=1))
    assert fanout.event_fanouts_expand_due() == 1
    assert fanout.event_fanouts_expand_due() == 0
    subjects = WebhookDelivery.unscoped.filter(tenant=quiet, event_type="message.queued").values_list("subject",
                                                                                                   flat=True)
    assert sorted(subjects) == sorted(d.public_id for d in drafts)


def test_the_fan_out_task_expands_its_row(quiet, receiver):
    services.webhook_endpoint_create(tenant=quiet, url=receiver.url("/ep"), actor=SYSTEM)
    _accept(quiet, 2)
    (row,) = EventFanout.unscoped.filter(tenant=quiet)
    event_fanout_expand_task.run(row.pk)
    assert EventFanout.unscoped.get(pk=row.pk).expanded_at is not None
    assert WebhookDelivery.unscoped.filter(tenant=quiet, event_type="message.queued").count() == 2


def test_a_batch_of_1000_through_the_api_is_accepted_whole(fast, api):
    body = {"defaults": {"from": "Acme", "text": "Hi", "callback_url": "https://hooks.example/sms"},
            "messages": [{"to": f"+1415{2000000 + i:07d}"} for i in range(1000)]}
    before = Message.unscoped.filter(tenant=fast.a.tenant).count()
    response = api.post(BATCH, body, format="json", **fast.a.auth)
    assert response.status_code == 202 and response.json()["accepted"] == 1000
    assert Message.unscoped.filter(tenant=fast.a.tenant).count() == before + 1000
    (row,) = EventFanout.unscoped.filter(tenant=fast.a.tenant)
    assert len(row.items) == 1000


# --- the indexes the queries use (PostgreSQL) ------------------------------------------------------------------


def _fill(*, tenants: list[int], rows: int) -> None:
    """Messages in the shapes of a live table: mostly delivered, every number distinct, some with a
    client reference or a carrier id; then ANALYZE, so the planner knows."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            INSERT INTO {Message._meta.db_table} (tenant_id, public_id, mode, "to", sender, text, template_ref,
                message_type, status, sequence, encoding, segments, characters, smart_encoding, client_reference,
                metadata, callback_url, created_at, expires_at, attempts, status_changed_at, carrier,
                carrier_message_id, error_code, error_message)
            SELECT (%s::bigint[])[1 + i %% 2], 'msg_fill' || i, 'test', '+1415' || (2000000 + i), 'Acme', 'x', '',
                'transactional', CASE WHEN i %% 50 = 0 THEN 'failed' ELSE 'delivered' END, 3, 'GSM-7', 1, 1, true,
                CASE WHEN i %% 10 = 0 THEN 'ref-' || i ELSE '' END, '{{}}', '', now() - i * interval '1 second',
                now(), 1, now(), 'simulator', 'sim-' || i, '', ''
            FROM generate_series(1, %s) AS i""", [tenants, rows])  # noqa: S608 (a constant table)
        cursor.execute(f"ANALYZE {Message._meta.db_table}")


def _plan(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize(("queryset", "index"), [
    (lambda t: Message.unscoped.filter(carrier="simulator", carrier_message_id="sim-1")
     .exclude(carrier_message_id=""), "message_carrier_id"),
    (lambda t: Message.objects.filter(tenant=t, client_reference="order-42"), "message_client_reference"),
    (lambda t: Message.objects.filter(tenant=t, status=Status.FAILED).order_by("-created_at"), "8c982a"),
    (lambda t: Message.objects.filter(tenant=t, to="+14155550100").order_by("-created_at"), "c13cab"),
    (lambda t: Message.objects.filter(tenant=t).order_by("-created_at")[:50], "495b72"),  # a page
    (lambda t: Message.unscoped.filter(status=Status.SENDING, status_changed_at__lte=timezone.now())
     .order_by("status_changed_at")[:100], "fcabe8"),  # the sweeper's batches
    (lambda t: Message.unscoped.filter(status=Status.QUEUED, enqueued_at__isnull=True,
                                       status_changed_at__lte=timezone.now()).order_by("status_changed_at")[:100],
     "message_awaiting_handover|fcabe8"),
])
def test_the_queries_of_messaging_message_use_an_index(fast, queryset, index):
    """On a filled table (20,000 rows of two tenants, analysed), as the planner would see production."""
    from smsportal.tenancy import tenant_context

    _fill(tenants=[fast.a.tenant.pk, fast.b.tenant.pk], rows=20_000)
    with tenant_context(fast.a.tenant), transaction.atomic():
        sql, params = queryset(fast.a.tenant).query.sql_with_params()
        plan = _plan(sql, list(params))
        assert any(name in plan for name in index.split("|")), plan


def test_the_copy_rows_hold_every_column_in_order(fast):
    from messaging.accept import store

    for draft in _accept(fast.a.tenant, 2, scheduled_at=timezone.now() + timedelta(hours=1)):
        assert store._row_values(draft) == tuple(store._row_value(draft, name) for name, _ in store._ROW_COLUMNS)


def test_batch_public_ids_look_like_single_ones_and_are_uniform():
    from collections import Counter

    from smsportal.ids import BASE62, public_id, public_ids

    ids = public_ids("msg", 5000)
    assert len(set(ids)) == 5000 and len(ids[0]) == len(public_id("msg"))
    assert all(i.startswith("msg_") and set(i[4:]) <= set(BASE62) for i in ids)
    counts = Counter("".join(i[4:] for i in ids))  # 100,000 symbols: about 1,613 of each of 62
    assert set(counts) == set(BASE62) and max(counts.values()) < 1800 and min(counts.values()) > 1430


def test_message_events_expand_covers_batch_messages_without_a_stored_first_event(quiet):
    from messaging.events import message_events_expand

    services.webhook_endpoint_create(tenant=quiet, url="https://hooks.example.com/q", actor=SYSTEM)
    drafts = _accept(quiet, 2)
    created = message_events_expand(message_ids=[d.id for d in drafts])
    assert sorted(d.subject for d in created) == sorted(d.public_id for d in drafts)
    assert {(d.payload["data"]["status"], d.payload["data"]["sequence"]) for d in created} == {("queued", 1)}
