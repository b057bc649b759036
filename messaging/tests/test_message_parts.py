"""Long messages a carrier took in parts (messaging/parts.py): every part's carrier id is stored with the outcome,
each part's receipt finds its message, and the message is delivered with its last part, undelivered with its first
failed one, with one webhook; through dispatch's own path (a generic HTTP partner on loopback) and the batch one."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from decimal import Decimal
from numbers.tests.factories import shared_senders

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import SYSTEM
from accounts.tests.factories import TenantFactory, make_api_key
from messaging import dispatch, pipeline
from messaging.accept import message_send
from messaging.carriers.base import SubmitResult
from messaging.models import Carrier, Message, MessageAttempt, MessagePart, Route, Status
from messaging.routing.cache import routing_cache_clear
from messaging.routing.credentials import credentials_encrypt
from messaging.tests import history
from smsportal.events import services as events
from smsportal.events.models import WebhookDelivery

pytestmark = pytest.mark.django_db
LONG = "A long message. " * 20  # 320 GSM-7 characters: 3 parts


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def tenant():
    tenant = TenantFactory(messages_per_second=10_000)
    events.webhook_endpoint_create(tenant=tenant, url="https://hooks.example.com/sms", actor=SYSTEM,
                                   events=["message.delivered", "message.undelivered"])
    return tenant


def _sending(tenant, count: int = 1) -> list[Message]:
    """Messages claimed by dispatch (`sending`), as a carrier's answer finds them."""
    messages = [message_send(tenant=tenant, api_key=None, to=f"+1415555{1000 + i:04d}", sender="Acme", text=LONG)
                for i in range(count)]
    Message.unscoped.filter(pk__in=[m.pk for m in messages]).update(status=Status.SENDING, sequence=2)
    for message in messages:
        message.refresh_from_db()
    return messages


def _record(messages: list[Message], ids: list[tuple[str, ...]], carrier: str = "eu-smpp") -> None:
    dispatch.outcomes_record(carrier=carrier, messages=messages, outcomes=[SubmitResult.of(i) for i in ids],
                             counts={"sent": 0, "failed": 0, "retrying": 0})


def _receipts(*pairs: tuple[str, str], carrier: str = "eu-smpp") -> int:
    return pipeline.receipts_apply(carrier=carrier, receipts=[
        pipeline.Receipt(carrier_message_id=cid, status=status) for cid, status in pairs])


def _status(message: Message) -> str:
    message.refresh_from_db()
    return message.status


def _webhooks(message: Message, event_type: str) -> int:
    return WebhookDelivery.unscoped.filter(subject=message.public_id, event_type=event_type).count()


def _parts(message: Message) -> list[tuple[int, str, str]]:
    return list(MessagePart.unscoped.filter(message=message).order_by("number")
                .values_list("number", "carrier_message_id", "status"))


def test_every_parts_id_is_stored_with_the_outcome(tenant):
    # given three messages the carrier took: in 3 parts, in one piece, and in 2 parts it gave the same id
    long, whole, same = _sending(tenant, 3)
    # when their outcomes are recorded
    _record([long, whole, same], [("P1", "P2", "P3"), ("W1",), ("S1", "S1")])
    # then the long one has a row per part, the others none; each message has its first id
    assert _parts(long) == [(1, "P1", ""), (2, "P2", ""), (3, "P3", "")]
    assert _parts(whole) == [] and _parts(same) == []
    assert [_status(m) for m in (long, whole, same)] == [Status.SENT] * 3
    long.refresh_from_db()
    assert (long.carrier, long.carrier_message_id) == ("eu-smpp", "P1")
    assert MessagePart.unscoped.filter(message=long, tenant=tenant).count() == 3


def test_a_long_message_is_delivered_with_its_last_parts_receipt_and_one_webhook(tenant):
    [message] = _sending(tenant)
    _record([message], [("P1", "P2", "P3")])
    # when the receipts of parts 3 and 2 come, in one batch: not delivered yet
    assert _receipts(("P3", "delivered"), ("P2", "delivered")) == 0
    assert _status(message) == Status.SENT
    # when the first part's receipt comes, three times over
    assert _receipts(("P1", "delivered"), ("P1", "delivered")) == 1
    assert _receipts(("P1", "delivered"), ("P3", "delivered")) == 0
    # then it is delivered once, with one webhook, and every part is marked
    assert _status(message) == Status.DELIVERED
    assert history.statuses(message).count("delivered") == 1
    assert _webhooks(message, "message.delivered") == 1
    assert [status for _, _, status in _parts(message)] == ["delivered"] * 3


def test_one_failed_part_makes_the_message_undelivered_at_once(tenant):
    [message] = _sending(tenant)
    _record([message], [("P1", "P2", "P3")])
    # when part 2 is undelivered while the others have not reported yet
    assert _receipts(("P2", "undelivered")) == 1
    # then the message is undelivered at once, and the others' deliveries change nothing
    message.refresh_from_db()
    assert (message.status, message.error_code) == (Status.UNDELIVERED, "carrier_undelivered")
    assert _receipts(("P1", "delivered"), ("P3", "delivered")) == 0
    assert _status(message) == Status.UNDELIVERED
    assert _webhooks(message, "message.undelivered") == 1 and _webhooks(message, "message.delivered") == 0
    assert history.statuses(message)[-1] == "undelivered"
    assert _parts(message) == [(1, "P1", "delivered"), (2, "P2", "undelivered"), (3, "P3", "delivered")]


def test_a_parts_intermediate_receipt_moves_the_message_to_sent_only(tenant):
    [message] = _sending(tenant)
    _record([message], [("P1", "P2")])
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING)  # a receipt that overtook `sent`
    assert _receipts(("P2", "enroute")) == 1
    assert _status(message) == Status.SENT and [s for _, _, s in _parts(message)] == ["", ""]


def test_a_part_keeps_its_receipt_when_its_outcome_is_recorded_again(tenant):
    # given a message whose first part is delivered
    [message] = _sending(tenant)
    _record([message], [("P1", "P2")])
    _receipts(("P1", "delivered"))
    # when its outcome is recorded again (a connector's journal after a restart) with the same ids
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING)
    _record([message], [("P1", "P2")])
    # then part 1 is still delivered, and part 2's receipt delivers the message
    assert _parts(message) == [(1, "P1", "delivered"), (2, "P2", "")]
    assert _receipts(("P2", "delivered")) == 1 and _status(message) == Status.DELIVERED


def test_a_message_recorded_with_other_ids_has_only_those_parts(tenant):
    [message] = _sending(tenant)
    _record([message], [("P1", "P2", "P3")])
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING)
    _record([message], [("Q1", "Q2")], carrier="other")
    assert [(n, cid) for n, cid, _ in _parts(message)] == [(1, "Q1"), (2, "Q2")]
    assert _receipts(("Q1", "delivered"), ("Q2", "delivered"), carrier="other") == 1


def test_a_recycled_carrier_id_names_the_newest_message(tenant):
    old, new = _sending(tenant, 2)
    _record([old], [("R1", "R2")])
    _record([new], [("R1", "R3")])
    assert _receipts(("R1", "undelivered")) == 1
    assert (_status(old), _status(new)) == (Status.SENT, Status.UNDELIVERED)


def test_a_receipt_batch_costs_the_same_statements_for_5_or_50_long_messages(tenant):
    def statements(count: int, prefix: str) -> int:
        messages = _sending(tenant, count)
        _record(messages, [(f"{prefix}{i}.1", f"{prefix}{i}.2") for i in range(count)])
        receipts = [(f"{prefix}{i}.{n}", "delivered") for i in range(count) for n in (1, 2)]
        receipts += [(f"{prefix}{i}.w", "delivered") for i in range(count)]  # strangers: matched by nobody
        with CaptureQueriesContext(connection) as captured:
            assert _receipts(*receipts) == count
        assert all(_status(m) == Status.DELIVERED for m in messages)
        matching = [q["sql"] for q in captured if "messaging_messagepart" in q["sql"] and "UNION" in q["sql"]]
        assert len(matching) == 1  # one lookup for the whole batch
        return len(captured)

    assert statements(5, "a") == statements(50, "b")


# --- dispatch's own path: a generic HTTP partner that answers an id per segment ---------------------------------


@pytest.fixture
def partner(settings, monkeypatch):
    from messaging.tasks import simulator_receipts_task
    from messaging.tests.fake_carriers import FakeCarriers

    settings.LIVE_CARRIER = "routes"
    monkeypatch.setattr(simulator_receipts_task, "apply_async", lambda *a, **kw: None)
    with FakeCarriers() as fake:
        carrier = Carrier.objects.create(name="partner-x", kind=Carrier.Kind.HTTP, settings={
            "preset": "generic", "url": f"{fake.base_url}/partner/send", "method": "POST", "auth": {"type": "bearer"},
            "body": {"format": "json", "fields": {"to": "{to}", "from": "{from}", "text": "{text}", "ref": "{id}"}},
            "response": {"message_id": "/parts"},
            "receipt": {"message_id": "/ref_id", "status": "/state",
                        "map": {"DELIVERED": "delivered", "FAILED": "undelivered"}},
            "allow_private_network": True, "timeout_seconds": 2},
            credentials_encrypted=credentials_encrypt({"token": fake.partner_token,
                                                       "receipt_secret": fake.partner_secret}))
        Route.objects.create(carrier=carrier, prefix="1", country="US", cost=Decimal("0.0050"), currency="USD",
                             cost_from=timezone.now())
        routing_cache_clear()
        yield fake
    routing_cache_clear()


def _signed_receipt(client, fake, cid: str, state: str):
    body = json.dumps({"ref_id": cid, "state": state}).encode()
    signature = "sha256=" + hmac.new(fake.partner_secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/carriers/partner-x/receipts", body, content_type="application/json",
                       HTTP_X_SIGNATURE=signature)


def test_a_long_message_dispatched_to_an_http_partner_is_delivered_by_its_parts_receipts(tenant, partner, client):
    # given a live message of 3 segments, dispatched by the worker to the partner, which answers 3 ids
    api_key, _ = make_api_key(tenant, mode="live", scopes=["messages:send"])
    message = message_send(tenant=tenant, api_key=api_key, to="+14155550123", sender="Acme", text=LONG)
    dispatch.messages_dispatch(message_ids=[message.pk])
    [accepted] = partner.accepted
    ids = [f"{accepted.carrier_id}.{n}" for n in (1, 2, 3)]
    assert [cid for _, cid, _ in _parts(message)] == ids
    message.refresh_from_db()
    assert (message.status, message.carrier_message_id) == (Status.SENT, ids[0])
    # when the partner reports parts 2, 3, then 1 delivered (signed callbacks, in-process)
    for cid in (ids[1], ids[2]):
        assert _signed_receipt(client, partner, cid, "DELIVERED").status_code == 204
        assert _status(message) == Status.SENT
    assert _signed_receipt(client, partner, ids[0], "DELIVERED").status_code == 204
    # then the message and its route attempt are delivered, with one webhook
    assert _status(message) == Status.DELIVERED and _webhooks(message, "message.delivered") == 1
    assert list(MessageAttempt.unscoped.filter(message=message).values_list("outcome", flat=True)) == ["delivered"]


# --- two receipt batches at once, each with one part of the same messages ---------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL")
def test_two_batches_with_the_other_parts_of_the_same_messages_deliver_every_message(tenant):
    messages = _sending(tenant, 40)
    _record(messages, [(f"C{i}.1", f"C{i}.2") for i in range(40)])
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def apply(number: int) -> None:
        try:
            start.wait()
            _receipts(*[(f"C{i}.{number}", "delivered") for i in range(40)])
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=apply, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert Message.unscoped.filter(pk__in=[m.pk for m in messages], status=Status.DELIVERED).count() == 40
