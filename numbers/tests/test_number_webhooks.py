"""Number webhooks: `number.lease_expiring` (once per end, at its time, re-armed by an extension),
`number.released` on every release path, a lease's callback_url receiving its `message.received`, and
the HELP reply. Receivers are real HTTP servers on loopback, verified with the `standardwebhooks` library."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from numbers import services
from numbers.errors import InvalidExpiringNotice
from numbers.inbound import DEFAULT_HELP_REPLY, inbound_receive
from numbers.models import InboundMessage, NumberLease
from numbers.tests.factories import stock

import pytest
import time_machine
from django.db import connection
from standardwebhooks import Webhook

from accounts.services import SYSTEM
from accounts.tests.factories import TenantFactory
from messaging.models import Message
from smsportal.events import services as webhooks
from smsportal.events.models import DeliveryStatus, WebhookDelivery
from smsportal.events.tests.webhook_helpers import endpoint_for
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SENDER = "+14155550123"


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _acquire(tenant, *, ttl=600, at=T0, **fields) -> NumberLease:
    with time_machine.travel(at, tick=False):
        return services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=ttl, **fields)


def _sweep(at: datetime) -> dict[str, int]:
    return services.leases_release_expired(now=at)


def _deliveries(event_type: str) -> list[WebhookDelivery]:
    return list(WebhookDelivery.unscoped.filter(event_type=event_type).order_by("id"))


def _deliver_all(event_type: str) -> None:
    for delivery in _deliveries(event_type):
        webhooks.webhook_delivery_attempt(delivery_id=delivery.pk)


def _verify(secret: str, request) -> dict:
    return Webhook(secret).verify(request.body, request.headers)


def _by_path(receiver) -> dict:
    return {request.path: request for request in receiver.requests}


# --- number.lease_expiring ------------------------------------------------------------------------


def test_it_sends_the_expiring_notice_once_at_its_time_signed_to_the_callback_and_the_endpoint(tenant, receiver):
    # given an endpoint subscribed to the notice, the tenant's callback secret, and a 10-minute lease
    # with a callback_url that wants its notice 2 minutes before the end
    stock(1)
    _, endpoint_secret = endpoint_for(tenant, receiver.url("/endpoint"), events=["number.lease_expiring"])
    _, callback_secret = webhooks.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    lease = _acquire(tenant, callback_url=receiver.url("/cb"), expiring_notice_seconds=120)
    # when the sweep runs a second before the notice time: nothing
    assert _sweep(T0 + timedelta(seconds=479))["expiring_notified"] == 0
    assert _deliveries("number.lease_expiring") == []
    # when it runs at the notice time, and again a few seconds later
    assert _sweep(T0 + timedelta(seconds=480))["expiring_notified"] == 1
    assert _sweep(T0 + timedelta(seconds=490))["expiring_notified"] == 0
    # then one delivery per target, once, and the lease records when
    callback, to_endpoint = _deliveries("number.lease_expiring")
    assert (callback.endpoint_id, callback.url) == (None, receiver.url("/cb"))
    assert to_endpoint.endpoint_id is not None
    lease.refresh_from_db()
    assert lease.expiring_notified_at == T0 + timedelta(seconds=480) and lease.released_at is None
    # and both arrive signed: the callback with the callback secret, the endpoint with its own
    _deliver_all("number.lease_expiring")
    requests = _by_path(receiver)
    event = _verify(callback_secret, requests["/cb"])
    assert _verify(endpoint_secret, requests["/endpoint"]) == event
    assert event["type"] == "number.lease_expiring" and event["timestamp"] == "2026-03-01T12:08:00Z"
    data = event["data"]
    assert (data["id"], data["holding"], data["number"], data["number_id"], data["country"]) == (
        lease.public_id, "lease", lease.number.number, lease.number.public_id, "US")
    assert (data["expires_at"], data["released_at"], data["reason"], data["expiring_notice_seconds"]) == (
        "2026-03-01T12:10:00Z", None, None, 120)


def test_an_extension_re_arms_the_notice_for_the_new_end(tenant):
    # given a lease notified 60 s before its end
    stock(1)
    endpoint_for(tenant, "http://127.0.0.1:9/hook", events=["number.lease_expiring"])
    lease = _acquire(tenant, ttl=600)
    assert _sweep(T0 + timedelta(seconds=540))["expiring_notified"] == 1
    # when it is extended by 10 minutes
    with time_machine.travel(T0 + timedelta(seconds=545), tick=False):
        services.number_lease_extend(tenant=tenant, lease=lease, ttl_seconds=600)
    lease.refresh_from_db()
    # then the notice is armed again, and goes out once, 60 s before the new end
    assert lease.expiring_notified_at is None
    assert _sweep(T0 + timedelta(seconds=1139))["expiring_notified"] == 0
    assert _sweep(T0 + timedelta(seconds=1140))["expiring_notified"] == 1
    assert _sweep(T0 + timedelta(seconds=1150))["expiring_notified"] == 0
    assert len(_deliveries("number.lease_expiring")) == 2


def test_a_short_extension_inside_the_notice_does_not_notify_again(tenant):
    stock(1)
    endpoint_for(tenant, "http://127.0.0.1:9/hook")
    lease = _acquire(tenant, ttl=600, expiring_notice_seconds=300)
    assert _sweep(T0 + timedelta(seconds=400))["expiring_notified"] == 1
    # when 60 s are added at T0+400: the new end (T0+660) is still within the 300 s notice
    with time_machine.travel(T0 + timedelta(seconds=400), tick=False):
        services.number_lease_extend(tenant=tenant, lease=lease, ttl_seconds=60)
    assert _sweep(T0 + timedelta(seconds=420))["expiring_notified"] == 0
    assert len(_deliveries("number.lease_expiring")) == 1


def test_a_notice_of_zero_never_notifies(tenant):
    stock(1)
    endpoint_for(tenant, "http://127.0.0.1:9/hook")
    lease = _acquire(tenant, ttl=600, expiring_notice_seconds=0)
    for second in (0, 300, 599):
        assert _sweep(T0 + timedelta(seconds=second))["expiring_notified"] == 0
    assert _deliveries("number.lease_expiring") == [] and NumberLease.unscoped.get(pk=lease.pk).expiring_notified_at is None


def test_a_lease_shorter_than_its_notice_is_notified_at_the_first_sweep(tenant):
    stock(1)
    endpoint_for(tenant, "http://127.0.0.1:9/hook")
    _acquire(tenant, ttl=60, expiring_notice_seconds=300)
    assert _sweep(T0 + timedelta(seconds=1))["expiring_notified"] == 1
    # and at its end it is released (number.released), not notified again
    counts = _sweep(T0 + timedelta(seconds=60))
    assert (counts["released"], counts["expiring_notified"]) == (1, 0)
    assert len(_deliveries("number.lease_expiring")) == 1 and len(_deliveries("number.released")) == 1


def test_the_default_notice_comes_from_the_setting(tenant, settings):
    settings.NUMBER_LEASE_EXPIRING_NOTICE_SECONDS = 90
    stock(1)
    assert _acquire(tenant).expiring_notice_seconds == 90


@pytest.mark.parametrize("notice", [-1, 86401, "60", True, 1.5])
def test_it_refuses_a_notice_outside_zero_to_a_day(tenant, notice):
    stock(1)
    with pytest.raises(InvalidExpiringNotice) as error:
        _acquire(tenant, expiring_notice_seconds=notice)
    assert (error.value.code, error.value.field) == ("invalid_expiring_notice", "expiring_notice_seconds")
    assert not NumberLease.unscoped.exists()


def test_a_notice_due_soon_gets_a_task_at_its_time_and_the_task_and_sweep_send_it_once(
        tenant, monkeypatch, django_capture_on_commit_callbacks):
    from numbers.tasks import number_lease_notify_expiring_task

    published = []
    monkeypatch.setattr(number_lease_notify_expiring_task, "apply_async",
                        lambda args, kwargs=None, countdown=None, **kw: published.append((args[0], kwargs, countdown)))
    stock(1)
    endpoint_for(tenant, "http://127.0.0.1:9/hook")
    # when a 5-minute lease with a 60 s notice commits: a task 240 s later, for the lease's tenant
    with django_capture_on_commit_callbacks(execute=True):
        lease = _acquire(tenant, ttl=300)
    assert published == [(lease.pk, {"tenant_id": tenant.pk}, 240.0)]
    # then the task does nothing early, sends at its time, and neither it nor the sweep sends twice
    assert not services.number_lease_notify_expiring(tenant=tenant, lease_id=lease.pk, now=T0 + timedelta(seconds=239))
    assert services.number_lease_notify_expiring(tenant=tenant, lease_id=lease.pk, now=T0 + timedelta(seconds=240))
    assert not services.number_lease_notify_expiring(tenant=tenant, lease_id=lease.pk, now=T0 + timedelta(seconds=241))
    assert _sweep(T0 + timedelta(seconds=250))["expiring_notified"] == 0
    assert len(_deliveries("number.lease_expiring")) == 1


def test_a_notice_far_ahead_is_left_to_the_sweep(tenant, monkeypatch, django_capture_on_commit_callbacks):
    from numbers.tasks import number_lease_notify_expiring_task

    published = []
    monkeypatch.setattr(number_lease_notify_expiring_task, "apply_async", lambda *a, **kw: published.append(a))
    stock(1)
    with django_capture_on_commit_callbacks(execute=True):
        _acquire(tenant, ttl=3600)
    assert published == []


def test_leases_with_no_target_record_no_delivery(tenant):
    # given leases of a tenant with no endpoint and no callback_url
    stock(3)
    for _ in range(3):
        _acquire(tenant, ttl=120)
    # when the sweep notifies and releases them, then nothing is recorded to deliver
    assert _sweep(T0 + timedelta(seconds=60))["expiring_notified"] == 3
    assert _sweep(T0 + timedelta(seconds=120))["released"] == 3
    assert not WebhookDelivery.unscoped.exists()


def test_an_endpoint_not_subscribed_gets_no_number_events(tenant):
    stock(1)
    endpoint_for(tenant, "http://127.0.0.1:9/hook", events=["message.received"])
    _acquire(tenant, ttl=120)
    _sweep(T0 + timedelta(seconds=60))
    _sweep(T0 + timedelta(seconds=120))
    assert not WebhookDelivery.unscoped.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sweeps_at_once_send_each_notice_once():
    tenant = TenantFactory()
    stock(60)
    endpoint_for(tenant, "http://127.0.0.1:9/hook")
    for _ in range(60):
        _acquire(tenant, ttl=600)
    services.SWEEP_BATCH, old_batch = 10, services.SWEEP_BATCH
    barrier = threading.Barrier(2)

    def sweep():
        barrier.wait(timeout=30)
        try:
            return _sweep(T0 + timedelta(seconds=550))
        finally:
            connection.close()

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = list(pool.map(lambda _: sweep(), range(2)))
    finally:
        services.SWEEP_BATCH = old_batch
    assert sum(c["expiring_notified"] for c in counts) == 60
    assert len(_deliveries("number.lease_expiring")) == 60
    assert len({d.payload["data"]["id"] for d in _deliveries("number.lease_expiring")}) == 60


# --- number.released ------------------------------------------------------------------------------


@pytest.mark.parametrize("path, reason", [("tenant", "released"), ("sweep", "expired"), ("force", "force_released")])
def test_a_released_lease_sends_number_released_once_signed(tenant, receiver, path, reason):
    # given an endpoint subscribed to number.released and a lease with a callback_url
    stock(1)
    _, endpoint_secret = endpoint_for(tenant, receiver.url("/endpoint"), events=["number.released"])
    _, callback_secret = webhooks.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    lease = _acquire(tenant, ttl=600, callback_url=receiver.url("/cb"), expiring_notice_seconds=0)
    # when it is released by this path, and the release is tried again
    end = T0 + timedelta(seconds=600 if path == "sweep" else 100)
    for _ in range(2):
        with time_machine.travel(end, tick=False):
            if path == "tenant":
                services.number_lease_release(tenant=tenant, lease=lease)
            elif path == "sweep":
                _sweep(end)
            else:
                services.number_force_release(number=lease.number)
    # then one event per target, signed, with the reason
    assert len(_deliveries("number.released")) == 2
    _deliver_all("number.released")
    requests = _by_path(receiver)
    event = _verify(callback_secret, requests["/cb"])
    assert _verify(endpoint_secret, requests["/endpoint"]) == event
    data = event["data"]
    assert event["type"] == "number.released"
    assert (data["id"], data["holding"], data["number"], data["reason"]) == (
        lease.public_id, "lease", lease.number.number, reason)
    assert data["released_at"] == end.isoformat().replace("+00:00", "Z")
    assert all(d.status == DeliveryStatus.DELIVERED for d in _deliveries("number.released"))


@pytest.mark.parametrize("force", [False, True])
def test_a_released_assignment_sends_number_released_to_endpoints(tenant, receiver, force):
    stock(1)
    _, secret = endpoint_for(tenant, receiver.url("/endpoint"), events=["number.released"])
    with time_machine.travel(T0, tick=False):
        assignment = services.number_assign(tenant=tenant, country="US")
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        for _ in range(2):
            if force:
                services.number_force_release(number=assignment.number)
            else:
                services.number_release_assignment(tenant=tenant, assignment=assignment)
    [delivery] = _deliveries("number.released")
    assert delivery.endpoint_id is not None
    _deliver_all("number.released")
    [request] = receiver.requests
    data = _verify(secret, request)["data"]
    assert (data["id"], data["holding"], data["number"], data["expires_at"]) == (
        assignment.public_id, "assignment", assignment.number.number, None)
    assert (data["released_at"], data["reason"]) == ("2026-03-04T12:00:00Z",
                                                     "force_released" if force else "released")


def test_a_sweep_of_many_leases_records_deliveries_only_for_those_with_a_target(tenant, receiver):
    # given 5 expired leases, 2 of them with a callback_url, and another tenant with an endpoint
    other = TenantFactory()
    stock(6)
    endpoint_for(other, receiver.url("/other"), events=["number.released"])
    with_callback = [_acquire(tenant, ttl=60, callback_url=receiver.url(f"/cb{i}")) for i in range(2)]
    for _ in range(3):
        _acquire(tenant, ttl=60)
    others = _acquire(other, ttl=60)
    # when the sweep releases all of them
    assert _sweep(T0 + timedelta(seconds=60))["released"] == 6
    # then three deliveries: the two callbacks and the other tenant's endpoint, each for its own lease
    got = {(d.tenant_id, d.url, d.payload["data"]["id"]) for d in _deliveries("number.released")}
    assert got == {(tenant.pk, receiver.url("/cb0"), with_callback[0].public_id),
                   (tenant.pk, receiver.url("/cb1"), with_callback[1].public_id),
                   (other.pk, receiver.url("/other"), others.public_id)}


# --- the lease's callback_url gets its messages ----------------------------------------------------


def test_a_leases_callback_url_receives_its_message_received_with_the_code(tenant, receiver):
    stock(1)
    _, callback_secret = webhooks.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    lease = _acquire(tenant, ttl=600, at=datetime.now(UTC), callback_url=receiver.url("/cb"))
    message = inbound_receive(to=lease.number.number, sender=SENDER, text="Your Acme code is 482913",
                              carrier="simulator", carrier_message_id="c-1", received_at=datetime.now(UTC))
    [delivery] = _deliveries("message.received")
    assert (delivery.endpoint_id, delivery.url, delivery.subject) == (None, receiver.url("/cb"), message.public_id)
    _deliver_all("message.received")
    [request] = receiver.requests
    event = _verify(callback_secret, request)
    assert event["type"] == "message.received"
    assert (event["data"]["id"], event["data"]["code"], event["data"]["lease"]) == (
        message.public_id, "482913", lease.public_id)


# --- HELP -----------------------------------------------------------------------------------------


def _help_lease(tenant, **fields) -> NumberLease:
    stock(1)
    return _acquire(tenant, ttl=600, at=datetime.now(UTC), **fields)


def _receive(lease, text="HELP", cid=None):
    return inbound_receive(to=lease.number.number, sender=SENDER, text=text, carrier="simulator",
                           carrier_message_id=cid or f"cid-{time.monotonic_ns()}", received_at=datetime.now(UTC))


def test_help_gets_the_tenants_help_reply_from_the_number_once(tenant, django_capture_on_commit_callbacks,
                                                                monkeypatch):
    from messaging.tasks import message_dispatch_task

    dispatched = []
    monkeypatch.setattr(message_dispatch_task, "apply_async", lambda args, **kw: dispatched.append(args[0]))
    tenant.help_reply = "Acme support: help@acme.example. Reply STOP to opt out."
    tenant.save()
    lease = _help_lease(tenant)
    # when HELP arrives, and the carrier delivers the same message again
    with django_capture_on_commit_callbacks(execute=True):
        inbound = _receive(lease, " help ", cid="carrier-7")
        _receive(lease, "HELP", cid="carrier-7")
    # then one reply, to the sender, from the number, with the configured text, dispatched after commit
    [reply] = Message.unscoped.filter(tenant=tenant)
    assert (reply.to, reply.sender, reply.text) == (SENDER, lease.number.number, tenant.help_reply)
    assert (reply.message_type, reply.mode, reply.metadata) == ("transactional", "test",
                                                                 {"help_reply_to": inbound.public_id})
    assert dispatched == [reply.pk]
    assert InboundMessage.unscoped.get(pk=inbound.pk).keyword == "help"


def test_help_gets_the_default_reply_when_the_tenant_wrote_none(tenant):
    lease = _help_lease(tenant)
    _receive(lease)
    [reply] = Message.unscoped.filter(tenant=tenant)
    assert reply.text == DEFAULT_HELP_REPLY.format(name=tenant.name)
    assert reply.text.endswith("reply STOP to opt out. For help contact your sender.")


@pytest.mark.parametrize("text", ["STOP", "START", "help me please", "hello"])
def test_other_messages_get_no_reply(tenant, text):
    lease = _help_lease(tenant)
    _receive(lease, text)
    assert not Message.unscoped.exists()


def test_help_to_a_number_nobody_holds_gets_no_reply():
    number = stock(1)[0]
    inbound_receive(to=number.number, sender=SENDER, text="HELP", carrier="simulator", carrier_message_id="x-1",
                    received_at=datetime.now(UTC))
    assert not Message.unscoped.exists()


def test_help_from_a_live_carrier_replies_in_live_mode(tenant):
    lease = _help_lease(tenant)
    inbound_receive(to=lease.number.number, sender=SENDER, text="HELP", carrier="twilio", carrier_message_id="l-1",
                    received_at=datetime.now(UTC))
    assert Message.unscoped.get().mode == "live"


def test_a_reply_the_send_path_refuses_keeps_the_inbound_message(tenant, caplog):
    # given a sender the send path cannot answer (not a valid phone number)
    lease = _help_lease(tenant)
    inbound = inbound_receive(to=lease.number.number, sender="12345", text="HELP", carrier="simulator",
                              carrier_message_id="bad-1", received_at=datetime.now(UTC))
    assert InboundMessage.unscoped.filter(pk=inbound.pk).exists() and not Message.unscoped.exists()
    assert "HELP reply" in caplog.text


# --- the API --------------------------------------------------------------------------------------


def test_the_api_takes_and_shows_the_notice(world, api):
    from accounts.tests.api_assertions import assert_error

    stock(2, start=700)
    url = "/v1/numbers/leases"
    response = api.post(url, {"country": "US", "ttl_seconds": 900, "expiring_notice_seconds": 300}, format="json",
                        **world.a.auth)
    assert response.status_code == 201, response.content
    assert response.json()["expiring_notice_seconds"] == 300
    assert NumberLease.unscoped.get(public_id=response.json()["id"]).expiring_notice_seconds == 300
    default = api.post(url, {"country": "US", "ttl_seconds": 900}, format="json", **world.a.auth)
    assert default.json()["expiring_notice_seconds"] == 60
    before = NumberLease.unscoped.count()
    for notice in (-1, 86401):
        refused = api.post(url, {"country": "US", "ttl_seconds": 900, "expiring_notice_seconds": notice},
                           format="json", **world.a.auth)
        assert_error(refused, 400, "invalid_expiring_notice", field="expiring_notice_seconds")
    assert NumberLease.unscoped.count() == before
