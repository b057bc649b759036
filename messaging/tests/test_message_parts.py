"""Long messages a carrier took in parts (messaging/parts.py): every part's carrier id is stored with the outcome,
through dispatch's own path (a generic HTTP partner on loopback) and the batch one."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.services import SYSTEM
from accounts.tests.factories import TenantFactory, make_api_key
from messaging import dispatch
from messaging.accept import message_send
from messaging.carriers.base import SubmitResult
from messaging.models import Carrier, Message, MessagePart, Route, Status
from messaging.routing.cache import routing_cache_clear
from messaging.routing.credentials import credentials_encrypt
from smsportal.events import services as events

pytestmark = pytest.mark.django_db
LONG = "A long message. " * 20  # 320 GSM-7 characters: 3 parts


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


def _status(message: Message) -> str:
    message.refresh_from_db()
    return message.status


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


def test_a_message_recorded_with_other_ids_has_only_those_parts(tenant):
    [message] = _sending(tenant)
    _record([message], [("P1", "P2", "P3")])
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING)
    _record([message], [("Q1", "Q2")], carrier="other")
    assert [(n, cid) for n, cid, _ in _parts(message)] == [(1, "Q1"), (2, "Q2")]


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


def test_a_long_message_dispatched_to_an_http_partner_has_every_parts_id_stored(tenant, partner):
    # given a live message of 3 segments, dispatched by the worker to the partner, which answers 3 ids
    api_key, _ = make_api_key(tenant, mode="live", scopes=["messages:send"])
    message = message_send(tenant=tenant, api_key=api_key, to="+14155550123", sender="Acme", text=LONG)
    dispatch.messages_dispatch(message_ids=[message.pk])
    [accepted] = partner.accepted
    ids = [f"{accepted.carrier_id}.{n}" for n in (1, 2, 3)]
    assert [cid for _, cid, _ in _parts(message)] == ids
    message.refresh_from_db()
    assert (message.status, message.carrier_message_id) == (Status.SENT, ids[0])
