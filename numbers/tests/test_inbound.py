"""Inbound messages: routing by arrival time, once per carrier id, code capture, keywords, the
simulator, the inbound list and the lease long-poll."""
from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from numbers import services
from numbers.inbound import inbound_receive
from numbers.models import InboundMessage, NumberLease
from numbers.tests.factories import stock
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import PASSWORD, bearer, login_verified, make_api_key
from compliance.models import KeywordEvent

pytestmark = pytest.mark.django_db

EXAMPLES = json.loads(Path("/work/shared/data/seed_inbound_examples.json").read_text(encoding="utf-8")) if Path(
    "/work/shared/data/seed_inbound_examples.json").exists() else [
    {"text": "【WeLink】您的登录验证码是194521,有效期为5分钟,请立即验证。", "code": "194521", "service": "WeLink"}]
WELINK = next(e for e in EXAMPLES if e["service"] == "WeLink")


def _receive(to: str, text: str = "hello", *, cid: str | None = None, at=None, sender: str = "+447700900001"):
    return inbound_receive(to=to, sender=sender, text=text, carrier="simulator",
                           carrier_message_id=cid or f"cid-{time.monotonic_ns()}", received_at=at or timezone.now())


def _lease(world_side, country="US"):
    stock(1, country=country, start=500)
    return services.number_lease_acquire(tenant=world_side.tenant, country=country, ttl_seconds=600)


# --- the service --------------------------------------------------------------------------------


def test_a_message_is_routed_by_its_arrival_time_around_a_release(world):
    # given a lease that started a minute ago, released at a known time
    lease = _lease(world.a)
    NumberLease.unscoped.filter(pk=lease.pk).update(started_at=lease.started_at - timedelta(minutes=1))
    lease.refresh_from_db()
    services.number_lease_release(tenant=world.a.tenant, lease=lease)
    lease.refresh_from_db()
    # when one message arrived just before the release and one just after
    before = _receive(lease.number.number, at=lease.released_at - timedelta(seconds=1))
    after = _receive(lease.number.number, at=lease.released_at + timedelta(seconds=1))
    # then the first reaches the holder and its lease; the second no tenant, but is kept
    assert (before.tenant_id, before.lease_id) == (world.a.tenant.pk, lease.pk)
    assert (after.tenant_id, after.lease_id) == (None, None)
    assert InboundMessage.unscoped.filter(pk=after.pk).exists()


def test_a_message_to_an_unknown_number_is_kept_without_a_tenant():
    message = _receive("+15005550999")
    assert message.tenant_id is None and message.number_id is None


def test_a_repeated_carrier_message_id_is_stored_once(world):
    lease = _lease(world.a)
    first = _receive(lease.number.number, "STOP", cid="carrier-1")
    second = _receive(lease.number.number, "STOP", cid="carrier-1")
    assert first.pk == second.pk
    assert InboundMessage.unscoped.filter(carrier_message_id="carrier-1").count() == 1
    assert KeywordEvent.unscoped.filter(tenant=world.a.tenant).count() == 1


def _mo(to: str, at, text: str = "STOP", key: str = "smpp-mo-abc", **kwargs):
    """An SMPP MO with no id of its own: known by its dedupe key, with a redelivery time of a day."""
    return inbound_receive(to=to, sender="+447700900001", text=text, carrier="eu-smpp", carrier_message_id="",
                           dedupe_key=key, received_at=at, redelivery_seconds=86_400, **kwargs)


def _assigned(world_side) -> str:
    """A number the tenant holds from now on, with no end (days of MOs reach it)."""
    [number] = stock(1, country="GB", start=700)
    services.number_assign(tenant=world_side.tenant, number=number)
    return number.number


def test_a_redelivery_within_the_redelivery_time_is_the_same_message_across_any_window_boundary(world):
    # given a STOP stored one second before a 600-second boundary (the window the old ids were made of)
    to = _assigned(world.a)
    base = timezone.now() + timedelta(seconds=2)
    start = base + timedelta(seconds=600 - base.timestamp() % 600 - 1)  # after the assignment began
    first = _mo(to, start)
    # when the SMSC delivers it again across that boundary, two boundaries on, and just inside a day later
    again = [_mo(to, start + timedelta(seconds=seconds)) for seconds in (2, 1201, 86_400)]
    # then every delivery is the stored message, the opt-out recorded once
    assert {message.pk for message in again} == {first.pk}
    assert InboundMessage.unscoped.filter(dedupe_key="smpp-mo-abc").count() == 1
    assert KeywordEvent.unscoped.filter(tenant=world.a.tenant).count() == 1
    assert first.carrier_message_id.startswith("cmi_")  # an id of its own, unique per row


def test_the_same_text_after_the_redelivery_time_is_a_new_message_and_its_redeliveries_find_it(world):
    to = _assigned(world.a)
    start = timezone.now() + timedelta(seconds=1)
    first = _mo(to, start)
    # the same text from the same sender a day and a second later: a new message, now the latest under the key
    later = _mo(to, start + timedelta(seconds=86_401))
    assert later.pk != first.pk
    assert _mo(to, start + timedelta(seconds=86_500)).pk == later.pk
    rows = InboundMessage.unscoped.filter(dedupe_key="smpp-mo-abc").order_by("received_at")
    assert [(m.pk, m.dedupe_latest) for m in rows] == [(first.pk, False), (later.pk, True)]
    assert KeywordEvent.unscoped.filter(tenant=world.a.tenant).count() == 2


def test_another_key_or_carrier_is_another_message(world):
    lease = _lease(world.a)
    now = timezone.now()
    first = _mo(lease.number.number, now)
    assert _mo(lease.number.number, now, key="smpp-mo-other").pk != first.pk
    other_carrier = inbound_receive(to=lease.number.number, sender="+447700900001", text="STOP", carrier="us-smpp",
                                    carrier_message_id="", dedupe_key="smpp-mo-abc", received_at=now)
    assert other_carrier.pk != first.pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("earlier", ["none", "a day old"])
def test_two_sessions_storing_one_mo_at_once_store_it_once(world, earlier):
    """The first session's insert is held uncommitted while the second stores the same MO: the second passed
    the lookup (it cannot see the first's row) and its insert waits on the partial unique index, then fails
    once the first commits, and it returns the first's row. With a day-old MO under the key, both demote it;
    the second's demotion waits on the first's row lock and then finds nothing to demote."""
    from django.db import connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip("two concurrent transactions: PostgreSQL")
    to = _assigned(world.a)
    now = timezone.now() + timedelta(days=1, seconds=2)
    if earlier != "none":
        _mo(to, now - timedelta(days=1, seconds=1))
    stored_first, results = threading.Event(), {}

    def second():
        try:
            stored_first.wait(10)
            results["second"] = _mo(to, now + timedelta(milliseconds=5))
        finally:
            connections.close_all()

    thread = threading.Thread(target=second)
    thread.start()
    with transaction.atomic():
        results["first"] = _mo(to, now)
        stored_first.set()
        assert _blocked_on_a_lock(), "the second session never waited for the first"
    thread.join(10)
    assert results["second"].pk == results["first"].pk
    assert InboundMessage.unscoped.filter(dedupe_key="smpp-mo-abc", dedupe_latest=True).count() == 1
    assert InboundMessage.unscoped.filter(dedupe_key="smpp-mo-abc").count() == (1 if earlier == "none" else 2)
    assert KeywordEvent.unscoped.filter(tenant=world.a.tenant).count() == (1 if earlier == "none" else 2)


def _blocked_on_a_lock(timeout: float = 10.0) -> bool:
    """Whether another backend waits for a lock (the second session, on the first's uncommitted row)."""
    from django.db import connections

    watcher = connections.create_connection("default")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with watcher.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity "
                               "WHERE wait_event_type = 'Lock' AND datname = current_database()")
                if cursor.fetchone()[0]:
                    return True
            time.sleep(0.02)
        return False
    finally:
        watcher.close()


def test_the_code_and_service_are_captured(world):
    lease = _lease(world.a)
    message = _receive(lease.number.number, WELINK["text"])
    assert (message.code, message.service) == (WELINK["code"], WELINK["service"])
    assert _receive(lease.number.number, "see you at 5").code == ""


@pytest.mark.parametrize(("text", "kind"), [
    ("STOP", KeywordEvent.Kind.OPT_OUT), (" stop ", KeywordEvent.Kind.OPT_OUT), ("Unsubscribe", KeywordEvent.Kind.OPT_OUT),
    ("START", KeywordEvent.Kind.OPT_IN), ("yes", KeywordEvent.Kind.OPT_IN), ("HELP", KeywordEvent.Kind.HELP),
    ("  Stop ", KeywordEvent.Kind.OPT_OUT), ("REVOKE", KeywordEvent.Kind.OPT_OUT), ("opt  out", KeywordEvent.Kind.OPT_OUT),
    ("OptOut", KeywordEvent.Kind.OPT_OUT), ("Arrêt", KeywordEvent.Kind.OPT_OUT), ("arret", KeywordEvent.Kind.OPT_OUT),
])
def test_keywords_are_recorded_for_the_tenant_and_sender(world, text, kind):
    lease = _lease(world.a)
    _receive(lease.number.number, text, sender="+447700900555")
    event = KeywordEvent.unscoped.get()
    assert (event.tenant_id, event.number, event.sender, event.kind) == (
        world.a.tenant.pk, lease.number.number, "+447700900555", kind)


def test_a_keyword_inside_a_sentence_is_not_a_keyword(world):
    lease = _lease(world.a)
    message = _receive(lease.number.number, "please stop")
    assert message.keyword == "" and not KeywordEvent.unscoped.exists()


# --- the simulator ------------------------------------------------------------------------------


def test_the_simulator_injects_to_a_number_the_tenant_holds(world, api):
    lease = world.a.extra["lease"]
    body = {"to": lease.number.number, "from": "+447700900123", "text": WELINK["text"]}
    response = api.post("/v1/simulator/inbound", body, format="json", **world.a.auth)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["id"].startswith("inb_") and data["from"] == "+447700900123" and data["lease"] == lease.public_id
    assert (data["code"], data["service"]) == (WELINK["code"], WELINK["service"])
    assert set(data) == {"id", "to", "from", "text", "received_at", "code", "service", "lease"}


def test_the_simulator_refuses_live_keys(world, api):
    _, secret = make_api_key(world.a.tenant, scopes=["numbers"], mode="live")
    body = {"to": world.a.extra["lease"].number.number, "from": "+447700900123", "text": "hi"}
    response = api.post("/v1/simulator/inbound", body, format="json", **bearer(secret))
    assert response.status_code == 403 and response.json()["error"]["code"] == "test_mode_only"


def test_the_simulator_cannot_inject_into_another_tenants_number(world, api):
    before = InboundMessage.unscoped.count()
    body = {"to": world.a.extra["lease"].number.number, "from": "+447700900123", "text": "hi"}
    response = api.post("/v1/simulator/inbound", body, format="json", **world.b.auth)
    assert response.status_code == 404
    assert InboundMessage.unscoped.count() == before


# --- GET /v1/inbound-messages -------------------------------------------------------------------


def test_the_inbound_list_shows_the_tenants_messages_with_filters(world, api):
    lease = world.a.extra["lease"]
    coded = _receive(lease.number.number, WELINK["text"], sender="+447700900777")
    results = api.get("/v1/inbound-messages", **world.a.auth).json()["results"]
    ids = {r["id"] for r in results}
    assert coded.public_id in ids and world.b.extra["inbound"].public_id not in ids
    with_code = api.get("/v1/inbound-messages?has_code=true&from=%2B447700900777", **world.a.auth).json()["results"]
    assert [r["id"] for r in with_code] == [coded.public_id]
    by_lease = api.get(f"/v1/inbound-messages?lease={lease.public_id}", **world.a.auth).json()["results"]
    assert coded.public_id in {r["id"] for r in by_lease}


# --- the long-poll ------------------------------------------------------------------------------


def _messages_url(lease: NumberLease, wait: int) -> str:
    return f"/v1/numbers/leases/{lease.public_id}/messages?wait={wait}"


def test_the_long_poll_answers_at_once_when_a_message_is_there(world, api):
    lease = world.a.extra["lease"]
    started = time.monotonic()
    response = api.get(_messages_url(lease, 30), **world.a.auth)
    assert response.status_code == 200
    assert [m["id"] for m in response.json()] == [world.a.extra["inbound"].public_id]
    assert time.monotonic() - started < 2


def test_the_long_poll_answers_empty_after_the_wait(world, api):
    lease = _lease(world.a)
    started = time.monotonic()
    response = api.get(_messages_url(lease, 1), **world.a.auth)
    assert response.status_code == 200 and response.json() == []
    assert 0.9 < time.monotonic() - started < 5


def test_the_long_poll_refuses_another_tenants_lease(world, api):
    response = api.get(_messages_url(world.a.extra["lease"], 0), **world.b.auth)
    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_long_poll_returns_a_message_injected_while_it_waits(world, api):
    lease = _lease(world.a)

    def inject():
        time.sleep(1)
        try:
            _receive(lease.number.number, WELINK["text"], cid="threaded-1")
        finally:
            connection.close()

    thread = threading.Thread(target=inject)
    started = time.monotonic()
    thread.start()
    response = api.get(_messages_url(lease, 10), **world.a.auth)
    thread.join()
    assert response.status_code == 200
    assert [m["code"] for m in response.json()] == [WELINK["code"]]
    assert time.monotonic() - started < 8


def test_the_inbound_list_filters_by_arrival_time(world, api):
    lease = world.a.extra["lease"]
    NumberLease.unscoped.filter(pk=lease.pk).update(started_at=timezone.now() - timedelta(hours=2))
    old = _receive(lease.number.number, at=timezone.now() - timedelta(hours=1))
    ids = lambda query: {r["id"] for r in api.get(f"/v1/inbound-messages?{query}", **world.a.auth).json()["results"]}  # noqa: E731
    cut = (timezone.now() - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    assert old.public_id not in ids(f"received_after={cut}")
    assert ids(f"received_before={cut}") == {old.public_id}


def test_unclaimed_messages_show_in_admin(client, world):
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)  # admin wants a 2FA-verified staff session
    message = _receive("+15005550998", "hello")
    response = client.get("/admin/numbers/inboundmessage/?unclaimed=yes")
    body = response.content.decode()
    assert response.status_code == 200 and message.public_id in body
    assert world.a.extra["inbound"].public_id not in body
    assert client.get(f"/admin/numbers/inboundmessage/{message.pk}/change/").status_code == 200
    assert client.get("/admin/compliance/keywordevent/").status_code == 200


def test_a_message_received_webhook_goes_to_the_holders_endpoints(world):
    from smsportal.events.models import WebhookDelivery

    lease = world.a.extra["lease"]
    message = _receive(lease.number.number, WELINK["text"])
    delivery = WebhookDelivery.unscoped.get(event_type="message.received", payload__data__id=message.public_id)
    assert delivery.tenant_id == world.a.tenant.pk and delivery.endpoint == world.a.extra["webhook_endpoint"]
    data = delivery.payload["data"]
    assert (data["code"], data["service"], data["lease"]) == (WELINK["code"], WELINK["service"], lease.public_id)
    # and an unclaimed message emits nothing
    unclaimed = _receive("+15005550997", "hi")
    assert not WebhookDelivery.unscoped.filter(payload__data__id=unclaimed.public_id).exists()


def test_account_managers_can_inject_an_inbound_message_in_admin(client, world):
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    url = "/admin/numbers/inboundmessage/inject/"
    assert client.get(url).status_code == 200
    lease = world.a.extra["lease"]
    response = client.post(url, {"to": lease.number.number, "sender": "+447700900321", "text": WELINK["text"],
                                 "carrier_message_id": "admin-1"})
    assert response.status_code == 302, response.content
    message = InboundMessage.unscoped.get(carrier_message_id="admin-1")
    assert (message.tenant_id, message.lease_id, message.code) == (world.a.tenant.pk, lease.pk, WELINK["code"])
