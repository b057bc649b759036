"""SSRF (RELIABILITY SSRF-1..3) end to end: with WEBHOOK_ALLOW_PRIVATE_TARGETS off, bypass URLs are refused at
registration (endpoints and per-message callback_url) AND blocked at delivery with zero connects; DNS answers
are checked once per attempt and the connection goes to the validated address.

No packet leaves loopback: a scripted resolver answers names, and a connect spy records every connect and
routes the one "public" test address to a loopback receiver (smsportal/tests/http_receiver.py FakeNetwork).
"""
from __future__ import annotations

import pytest

from accounts.tests.factories import TenantFactory
from messaging.models import Message
from smsportal.events import services
from smsportal.events.errors import InvalidCallbackUrl
from smsportal.events.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from smsportal.events.tests.webhook_helpers import body_of, delivery_of, endpoint_for, send
from smsportal.tests.http_receiver import FakeNetwork, Receiver
from smsportal.tests.test_outbound import BLOCKED_URLS, PUBLIC_V4

pytestmark = pytest.mark.django_db

# Refused by the URL rules alone, whatever the setting: a delivery to one is never even attempted over the network.
ALWAYS_REFUSED = [url for url in BLOCKED_URLS if "@" in url or not url.startswith(("http://", "https://"))
                  or any(c in url for c in "\\\t\n ")]


@pytest.fixture
def net(monkeypatch) -> FakeNetwork:
    return FakeNetwork(monkeypatch)


@pytest.fixture
def production(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    return settings


@pytest.fixture
def tenant():
    return TenantFactory()


def test_the_bypass_table_covers_at_least_twenty_urls():
    assert len(BLOCKED_URLS) >= 20


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_a_bypass_url_is_refused_at_registration(production, net, tenant, url):
    # when the URL is registered as an endpoint and as a message's callback_url
    with pytest.raises(InvalidCallbackUrl) as as_endpoint:
        endpoint_for(tenant, url)
    with pytest.raises(InvalidCallbackUrl) as as_callback:
        send(tenant, callback_url=url)
    # then both are refused as invalid_callback_url on their field, nothing is stored, nothing connected
    assert (as_endpoint.value.code, as_endpoint.value.field) == ("invalid_callback_url", "url")
    assert (as_callback.value.code, as_callback.value.field) == ("invalid_callback_url", "callback_url")
    assert as_endpoint.value.status == 400
    assert WebhookEndpoint.unscoped.filter(tenant=tenant).count() == 0 and Message.unscoped.filter(tenant=tenant).count() == 0
    assert net.connects == []


def test_a_bypass_url_already_in_the_database_is_blocked_at_delivery_without_a_connect(production, net, tenant):
    # given deliveries whose URLs were stored behind the validator's back (an old row, a direct insert)
    message = send(tenant)
    deliveries = [WebhookDelivery.unscoped.create(tenant=tenant, subject=message.public_id, url=url,
                                                  event_type="message.queued", payload={"type": "message.queued"})
                  for url in BLOCKED_URLS]
    # when each is attempted
    for delivery in deliveries:
        assert services.webhook_delivery_attempt(delivery_id=delivery.pk) is None
    # then every one is blocked for good, logged as blocked_destination, and nothing was connected to
    for delivery in WebhookDelivery.unscoped.filter(pk__in=[d.pk for d in deliveries]):
        assert (delivery.status, delivery.last_error_class, delivery.next_attempt_at) == (
            DeliveryStatus.BLOCKED, "blocked_destination", None), delivery.url
    assert set(WebhookAttempt.unscoped.filter(delivery__in=deliveries).values_list("error_class", flat=True)) == {
        "blocked_destination"}
    assert net.connects == []


def test_url_rules_hold_even_with_private_targets_allowed(net, tenant):
    # given the development setting (private targets allowed); then schemes, credentials and odd characters still fail
    for url in ALWAYS_REFUSED:
        with pytest.raises(InvalidCallbackUrl):
            services.callback_url_validate(url)
    assert len(ALWAYS_REFUSED) >= 10 and net.connects == []


@pytest.mark.parametrize("answer", [["10.0.0.5"], ["127.0.0.1"], ["::ffff:10.0.0.5"], ["169.254.169.254"],
                                    ["64:ff9b::a00:5"], [PUBLIC_V4, "fd00::1"]])
def test_a_name_resolving_to_a_private_address_is_refused_at_endpoint_registration(production, net, tenant, answer):
    net.resolve("evil.test", answer)
    with pytest.raises(InvalidCallbackUrl):
        endpoint_for(tenant, "https://evil.test/hook")
    assert net.resolutions == ["evil.test"] and net.connects == []


def test_a_name_that_does_not_resolve_yet_is_accepted_at_registration(production, net, tenant):
    endpoint, _ = endpoint_for(tenant, "https://not-yet-in-dns.test/hook")
    assert endpoint.url == "https://not-yet-in-dns.test/hook"


def test_a_per_message_callback_url_is_not_resolved_on_the_send_path(production, net, tenant):
    # given a name that would resolve privately; when it is a message's callback_url (checked inside the
    # send transaction, where no network call belongs); then it is accepted without a DNS lookup ...
    net.resolve("evil.test", ["10.0.0.5"])
    message = send(tenant, callback_url="https://evil.test/cb")
    assert net.resolutions == []
    # ... and blocked when delivered, with no connect
    delivery = delivery_of(message)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.BLOCKED and net.resolutions == ["evil.test"] and net.connects == []


def test_dns_rebinding_at_delivery_connects_only_to_the_validated_address(production, net, tenant):
    # given a name that resolves publicly at registration and at the first attempt, then to 127.0.0.1
    with Receiver() as receiver:
        receiver.answer(500)
        net.resolve("rebind.test", [PUBLIC_V4], [PUBLIC_V4], ["127.0.0.1"]).route(PUBLIC_V4, receiver)
        endpoint, _ = endpoint_for(tenant, "http://rebind.test:8080/hook")
        delivery = delivery_of(send(tenant), endpoint)
        # when the first attempt is made (the receiver answers 500)
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
        # then it resolved once, connected to the validated public address, and sent Host: rebind.test
        assert net.resolutions == ["rebind.test", "rebind.test"]  # registration, then attempt 1
        assert net.connects == [(PUBLIC_V4, 8080)]
        assert receiver.requests[0].headers["host"] == "rebind.test:8080"
        assert body_of(receiver.requests[0])["data"]["id"] == delivery.subject
        # when the retry is made after the name moved to 127.0.0.1
        delivery.refresh_from_db()
        WebhookDelivery.unscoped.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
        # then one more resolution, no connect at all, and the delivery is blocked
        delivery.refresh_from_db()
        assert net.resolutions == ["rebind.test"] * 3 and net.connects == [(PUBLIC_V4, 8080)]
        assert delivery.status == DeliveryStatus.BLOCKED and len(receiver.requests) == 1
