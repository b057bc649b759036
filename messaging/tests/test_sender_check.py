"""Who may send from which number (issue 8, item 2), at every door: the API send and quote, the portal
send and quote, and the HELP reply.

A number or short code in `from` must be one the tenant rents or leases now, or a platform shared sender
it is allowed to use; anything else is 400 `sender_not_allowed` on `from`. Alphanumeric sender IDs and
`pool:NAME` are not affected (a pool only ever picks numbers the tenant holds).
"""
from __future__ import annotations

import logging
from datetime import timedelta
from numbers import services as numbers
from numbers.inbound import inbound_receive
from numbers.models import NumberLease
from numbers.tests.factories import shared_senders, stock

import pytest
from django.urls import reverse

from accounts.models import Tenant
from accounts.roles import Role
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import login_verified
from messaging.models import Message

pytestmark = pytest.mark.django_db

SEND, QUOTE = "/v1/messages", "/v1/messages/quote"
PORTAL_SEND, PORTAL_QUOTE = reverse("portal:message-send"), reverse("portal:message-quote")
TO = "+14155550123"
NOBODYS = "+447400123000"  # valid, and in nobody's inventory
HOLDINGS = ["assignment", "lease"]  # the world's rented and leased number of each tenant


def _post(api, side, url: str, sender: str):
    return api.post(url, {"to": TO, "from": sender, "text": "Your order shipped."}, format="json", **side.auth)


def _number(side, holding: str) -> str:
    return side.extra[holding].number.number


def _shared_sender():
    """An available inventory number marked as a platform shared sender."""
    (number,) = stock(1, country="US", start=900)
    numbers.number_shared_sender_set(number=number, shared_sender=True)
    return number


def _allow_shared_senders(tenant: Tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(shared_senders_allowed=True)
    tenant.refresh_from_db()


# --- the API: send and quote -----------------------------------------------------------------------


@pytest.mark.parametrize("url", [SEND, QUOTE])
@pytest.mark.parametrize("holding", HOLDINGS)
def test_another_tenants_rented_or_leased_number_is_refused(world, api, url, holding):
    # given A's rented and leased numbers
    number = _number(world.a, holding)
    before = Message.unscoped.count()
    # when B sends (or quotes) from one of them
    response = _post(api, world.b, url, number)
    # then 400 sender_not_allowed on `from`, naming the number, and nothing is stored
    error = assert_error(response, 400, "sender_not_allowed", field="from")
    assert error["message"].startswith(f"You cannot send from {number}. Send from a number")
    assert Message.unscoped.count() == before


@pytest.mark.parametrize("url", [SEND, QUOTE])
@pytest.mark.parametrize("holding", HOLDINGS)
def test_a_tenant_sends_from_its_own_rented_and_leased_numbers(world, api, url, holding):
    number = _number(world.a, holding)

    response = _post(api, world.a, url, number)

    assert response.status_code == (202 if url == SEND else 200), response.json()
    if url == SEND:
        assert Message.unscoped.get(public_id=response.json()["id"]).sender == number


def test_the_number_written_without_its_plus_is_checked_the_same(world, api):
    digits = _number(world.a, "lease").removeprefix("+")

    assert_error(_post(api, world.b, SEND, digits), 400, "sender_not_allowed", field="from")
    assert _post(api, world.a, SEND, digits).json()["from"] == f"+{digits}"


def test_a_number_nobody_holds_gets_the_same_answer_as_another_tenants(world, api):
    theirs = assert_error(_post(api, world.b, SEND, _number(world.a, "lease")), 400, "sender_not_allowed",
                          field="from")
    nobodys = assert_error(_post(api, world.b, SEND, NOBODYS), 400, "sender_not_allowed", field="from")
    assert nobodys["message"].replace(NOBODYS, "N") == theirs["message"].replace(_number(world.a, "lease"), "N")


def test_a_number_can_no_longer_be_sent_from_once_its_lease_ends(world, api):
    lease = world.a.extra["lease"]
    numbers.number_lease_release(tenant=world.a.tenant, lease=lease)

    assert_error(_post(api, world.a, SEND, lease.number.number), 400, "sender_not_allowed", field="from")


def test_a_short_code_nobody_holds_is_refused_as_not_allowed(world, api):
    assert_error(_post(api, world.a, SEND, "72345"), 400, "sender_not_allowed", field="from")


@pytest.mark.parametrize("url", [SEND, QUOTE])
def test_a_shared_sender_works_for_a_tenant_allowed_to_use_shared_senders(world, api, url):
    # given a shared sender, and A (not B) allowed to use shared senders
    shared = _shared_sender()
    _allow_shared_senders(world.a.tenant)
    # then A sends from it, and B (not allowed) is refused
    allowed = _post(api, world.a, url, shared.number)
    assert allowed.status_code == (202 if url == SEND else 200), allowed.json()
    assert_error(_post(api, world.b, url, shared.number), 400, "sender_not_allowed", field="from")


def test_a_retired_shared_sender_is_refused(world, api):
    shared = _shared_sender()
    _allow_shared_senders(world.a.tenant)
    numbers.number_retire(number=shared)

    assert_error(_post(api, world.a, SEND, shared.number), 400, "sender_not_allowed", field="from")


def test_shared_senders_are_off_for_a_new_tenant(world):
    assert Tenant._meta.get_field("shared_senders_allowed").default is False
    assert not world.a.tenant.shared_senders_allowed


@pytest.mark.parametrize("url", [SEND, QUOTE])
def test_an_alphanumeric_sender_and_a_pool_work_as_before(world, api, url):
    ok = 202 if url == SEND else 200
    shared_senders("US")  # the US takes no alphanumeric sender: it goes from a shared US number (the next check)
    assert _post(api, world.b, url, "Alpha").status_code == ok
    assert _post(api, world.b, url, "pool:senders").status_code == ok  # B's pool: B's rented number


# --- the portal: send and quote --------------------------------------------------------------------


def _portal_form(sender: str, **overrides) -> dict:
    return {"to": TO, "region": "", "sender": sender, "message_type": "transactional", "content": "text",
            "text": "Your code is 123456", "template": "", "variables": "", "scheduled_at": "",
            "smart_encoding": "on", "action": "send", **overrides}


@pytest.mark.parametrize("holding", HOLDINGS)
def test_the_portal_send_refuses_another_tenants_number_next_to_the_from_field(world, client, holding):
    login_verified(client, world.b.members[Role.DEVELOPER])
    number = _number(world.a, holding)
    before = Message.unscoped.count()

    response = client.post(PORTAL_SEND, _portal_form(number))

    assert response.status_code == 200
    [error] = response.context["form"].errors["sender"]
    assert error.startswith(f"You cannot send from {number}.")
    assert Message.unscoped.count() == before


def test_the_portal_send_takes_the_tenants_own_number(world, client):
    login_verified(client, world.b.members[Role.DEVELOPER])
    number = _number(world.b, "lease")

    response = client.post(PORTAL_SEND, _portal_form(number))

    message = Message.unscoped.filter(tenant=world.b.tenant, sender=number).get()
    assert response.status_code == 302 and response["Location"].endswith(f"{message.public_id}/")


def test_the_portal_quote_reports_a_sender_the_tenant_may_not_use(world, client):
    login_verified(client, world.b.members[Role.DEVELOPER])
    body = {"content": "text", "text": "hi", "smart_encoding": "on"}

    refused = client.post(PORTAL_QUOTE, {**body, "sender": _number(world.a, "lease")}).json()
    own = client.post(PORTAL_QUOTE, {**body, "sender": _number(world.b, "lease")}).json()
    unset = client.post(PORTAL_QUOTE, body).json()

    assert (refused["error"]["code"], refused["error"]["field"]) == ("sender_not_allowed", "from")
    assert "You cannot send from" in refused["html"]
    assert "error" not in own and own["segments"] == 1
    assert "error" not in unset and unset["segments"] == 1  # no sender yet: only the length


def test_check_length_without_javascript_shows_the_sender_refusal(world, client):
    login_verified(client, world.b.members[Role.DEVELOPER])

    response = client.post(PORTAL_SEND, _portal_form(_number(world.a, "assignment"), action="check"))

    assert response.context["panel"]["error"]["code"] == "sender_not_allowed"
    assert not Message.unscoped.filter(tenant=world.b.tenant).exclude(pk=world.b.extra["message"].pk).exists()


# --- the HELP reply --------------------------------------------------------------------------------


def _help(to: str, *, at, cid: str):
    return inbound_receive(to=to, sender=TO, text="HELP", carrier="simulator", carrier_message_id=cid,
                           received_at=at)


def _replies(inbound) -> list[Message]:
    return list(Message.unscoped.filter(metadata__help_reply_to=inbound.public_id))


def test_help_to_a_held_number_is_answered_from_it(world):
    lease = world.a.extra["lease"]

    inbound = _help(lease.number.number, at=lease.started_at + timedelta(seconds=1), cid="help-held")

    [reply] = _replies(inbound)
    assert (reply.tenant, reply.to, reply.sender) == (world.a.tenant, TO, lease.number.number)


def test_a_late_help_is_not_answered_from_a_number_the_tenant_no_longer_holds(world, caplog):
    # given a HELP that reached A's lease while it ran, delivered by the carrier after the lease ended
    lease = world.a.extra["lease"]
    NumberLease.unscoped.filter(pk=lease.pk).update(started_at=lease.started_at - timedelta(minutes=5))
    numbers.number_lease_release(tenant=world.a.tenant, lease=lease)
    lease.refresh_from_db()
    with caplog.at_level(logging.WARNING, logger="smsportal.numbers"):
        inbound = _help(lease.number.number, at=lease.released_at - timedelta(minutes=1), cid="help-late")
    # then it is stored for A, but no reply goes out from a number A no longer holds
    assert inbound.tenant == world.a.tenant
    assert _replies(inbound) == []
    assert "sender_not_allowed" in caplog.text
