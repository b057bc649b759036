"""Sending from a short code the tenant holds: by the API, and as the answer to HELP sent to it."""
from __future__ import annotations

from datetime import UTC, datetime
from numbers import services
from numbers.inbound import inbound_receive
from numbers.inventory import DEMO_SHORT_CODE
from numbers.services import phone_number_upsert

from messaging.models import Message

SENDER = "+14155550123"


def _short_code(tenant=None):
    number = phone_number_upsert(**DEMO_SHORT_CODE)[0]
    if tenant is not None:
        services.number_assign(tenant=tenant, number=number)
    return number


def _send(api, side, sender: str):
    return api.post("/v1/messages", {"to": SENDER, "from": sender, "text": "Your order shipped."}, format="json",
                    **side.auth)


def test_a_tenant_sends_from_a_short_code_it_holds(world, api):
    code = _short_code(world.a.tenant)
    response = _send(api, world.a, code.number)
    assert response.status_code == 202, response.json()
    assert response.json()["from"] == "72345"
    assert Message.unscoped.get(public_id=response.json()["id"]).sender == "72345"


def test_a_short_code_held_by_another_tenant_is_refused(world, api):
    code = _short_code(world.a.tenant)
    response = _send(api, world.b, code.number)
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("sender_not_allowed", "from")
    assert not Message.unscoped.filter(tenant=world.b.tenant, sender=code.number).exists()


def test_help_to_a_short_code_is_answered_from_it(world):
    code = _short_code(world.a.tenant)
    inbound = inbound_receive(to=code.number, sender=SENDER, text="HELP", carrier="simulator",
                              carrier_message_id="sc-help-1", received_at=datetime.now(UTC))
    [reply] = Message.unscoped.filter(tenant=world.a.tenant, metadata__help_reply_to=inbound.public_id)
    assert (reply.to, reply.sender) == (SENDER, "72345")
