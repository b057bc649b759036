"""Portal webhooks page: create an endpoint (secret once), see deliveries and attempts, resend, test, rotate,
enable/disable, delete, the callback secret; who may do what; no inline script or style (strict CSP)."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse
from standardwebhooks import Webhook

from accounts.models import AuditEvent
from accounts.roles import Role
from accounts.services import SYSTEM
from accounts.tests.factories import login_verified
from smsportal.events import services
from smsportal.events.models import WebhookCallbackSecret, WebhookDelivery, WebhookEndpoint
from smsportal.events.tests.webhook_helpers import Published, delivery_of, send
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db

LIST = reverse("portal:webhooks")
CREATE = reverse("portal:webhook-endpoint-create")


@pytest.fixture
def published(monkeypatch) -> Published:
    return Published(monkeypatch)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def secret_on(response) -> str:
    return re.search(r'id="new-webhook-secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)<', response.content.decode()).group(1)


def assert_strict_csp_markup(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert " style=" not in html and "<style" not in html, "inline style"


def test_an_owner_adds_an_endpoint_sees_its_secret_once_and_its_deliveries(world, client, receiver):
    login_verified(client, world.a.owner)
    # when the owner adds an endpoint for delivered events
    response = client.post(CREATE, {"url": receiver.url(), "description": "CRM", "events": ["message.queued"],
                                    "enabled": "on"})
    # then the answer shows the secret once (not cached), and the endpoint exists, audited
    assert response.status_code == 201 and "no-store" in response["Cache-Control"]
    secret = secret_on(response)
    assert "never be shown again" in response.content.decode()
    assert_strict_csp_markup(response.content.decode())
    endpoint = WebhookEndpoint.unscoped.get(tenant=world.a.tenant, description="CRM")
    assert endpoint.events == ["message.queued"] and endpoint.url == receiver.url()
    assert AuditEvent.unscoped.filter(action="webhook_endpoint.created", actor=world.a.owner).exists()
    # when a message is sent and its event delivered
    message = send(world.a.tenant)
    services.webhook_delivery_attempt(delivery_id=delivery_of(message, endpoint).pk)
    verified = Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert verified["data"]["id"] == message.public_id
    # then the list and the endpoint page show the endpoint, the delivery and its attempt, never the secret
    for page in (client.get(LIST), client.get(reverse("portal:webhook-endpoint", args=[endpoint.public_id]))):
        html = page.content.decode()
        assert page.status_code == 200 and secret not in html
        assert endpoint.secret_prefix in html and message.public_id in html and "Delivered" in html
        assert "#1 · 200 ·" in html
        assert_strict_csp_markup(html)


def test_a_delivery_is_resent_from_the_portal(world, client, receiver, published, django_capture_on_commit_callbacks):
    login_verified(client, world.a.owner)
    delivery = world.a.extra["webhook_delivery"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portal:webhook-delivery-resend", args=[delivery.public_id]),
                               {"next": LIST})
    assert response.status_code == 302 and response["Location"] == LIST
    delivery.refresh_from_db()
    assert (delivery.cycle, delivery.status) == (1, "pending")
    assert published.webhooks == [(delivery.pk, "webhooks", None)]
    assert "being sent again" in client.get(LIST).content.decode()


def test_the_test_button_reports_status_latency_and_error_class_only(world, client, receiver):
    login_verified(client, world.a.owner)
    receiver.answer(500, body=b"stack trace with secrets")
    endpoint, _ = services.webhook_endpoint_create(tenant=world.a.tenant, url=receiver.url(), actor=SYSTEM)
    response = client.post(reverse("portal:webhook-endpoint-test", args=[endpoint.public_id]), follow=True)
    html = response.content.decode()
    assert "The test event failed (http_500, answered 500)" in html and "stack trace" not in html
    assert receiver.requests[0].headers["webhook-id"].startswith("evt_")


def test_rotating_shows_the_new_secret_once_and_both_sign(world, client):
    login_verified(client, world.a.owner)
    endpoint = world.a.extra["webhook_endpoint"]
    url = reverse("portal:webhook-endpoint-rotate", args=[endpoint.public_id])
    assert client.get(url).status_code == 200
    response = client.post(url)
    secret = secret_on(response)
    endpoint.refresh_from_db()
    assert endpoint.secret_prefix == secret[:10] and endpoint.previous_secret_encrypted
    assert secret not in client.get(reverse("portal:webhook-endpoint", args=[endpoint.public_id])).content.decode()


def test_the_callback_secret_is_created_then_rotated_each_shown_once(world, client):
    login_verified(client, world.a.members[Role.ADMIN])
    url = reverse("portal:webhook-callback-secret")
    WebhookCallbackSecret.unscoped.filter(tenant=world.a.tenant).delete()
    assert "Create the callback secret?" in client.get(url).content.decode()
    first = secret_on(client.post(url))
    assert "Rotate the callback secret?" in client.get(url).content.decode()
    second = secret_on(client.post(url))
    assert first != second
    assert WebhookCallbackSecret.unscoped.get(tenant=world.a.tenant).secret_prefix == second[:10]
    assert first not in client.get(LIST).content.decode()


def test_an_endpoint_is_edited_disabled_enabled_and_deleted(world, client):
    login_verified(client, world.a.owner)
    endpoint = world.a.extra["webhook_endpoint"]
    page = reverse("portal:webhook-endpoint", args=[endpoint.public_id])
    # edit (the "enabled" box left unticked)
    saved = client.post(page, {"url": "https://hooks.alpha.example/v2", "events": ["message.failed"]})
    assert saved.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.events, endpoint.enabled) == ("https://hooks.alpha.example/v2", ["message.failed"],
                                                                 False)
    # enable, disable
    toggle = reverse("portal:webhook-endpoint-enabled", args=[endpoint.public_id])
    client.post(toggle, {"enabled": "on"})
    endpoint.refresh_from_db()
    assert endpoint.enabled
    client.post(toggle, {"enabled": "off"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == f"Disabled by {world.a.owner.email}."
    # a bad URL shows next to its field, nothing changes
    refused = client.post(page, {"url": "ftp://x/", "enabled": "on"})
    assert refused.status_code == 200 and refused.context["form"].errors["url"]
    # delete
    delete = reverse("portal:webhook-endpoint-delete", args=[endpoint.public_id])
    assert client.get(delete).status_code == 200
    assert client.post(delete)["Location"] == LIST
    assert not WebhookEndpoint.unscoped.filter(pk=endpoint.pk).exists()
    assert not WebhookDelivery.unscoped.filter(endpoint_id=endpoint.pk).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.BILLING])
def test_a_role_that_may_only_look_sees_but_changes_nothing(world, client, role):
    login_verified(client, world.a.members[role])
    endpoint, delivery = world.a.extra["webhook_endpoint"], world.a.extra["webhook_delivery"]
    # the pages show, without any write control
    for path in (LIST, reverse("portal:webhook-endpoint", args=[endpoint.public_id])):
        page = client.get(path)
        assert page.status_code == 200
        html = page.content.decode()
        assert CREATE not in html and "Resend" not in html and "Rotate" not in html
    nav = client.get(reverse("portal:dashboard")).content.decode().split('<nav class="sidebar"', 1)[1]
    assert f'href="{LIST}"' in nav.split("</nav>", 1)[0]
    # and every write is refused
    writes = [CREATE, reverse("portal:webhook-callback-secret"),
              reverse("portal:webhook-endpoint-rotate", args=[endpoint.public_id]),
              reverse("portal:webhook-endpoint-delete", args=[endpoint.public_id]),
              reverse("portal:webhook-endpoint-enabled", args=[endpoint.public_id]),
              reverse("portal:webhook-endpoint-test", args=[endpoint.public_id]),
              reverse("portal:webhook-delivery-resend", args=[delivery.public_id]),
              reverse("portal:webhook-endpoint", args=[endpoint.public_id])]
    for path in writes:
        assert client.post(path, {"url": "https://x.example/", "enabled": "on"}).status_code == 403, path
    assert WebhookEndpoint.unscoped.filter(tenant=world.a.tenant).count() == 1
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.url == "https://hooks.alpha.example/sms"


def test_a_developer_manages_webhooks(world, client, receiver):
    login_verified(client, world.a.members[Role.DEVELOPER])
    assert client.post(CREATE, {"url": receiver.url(), "enabled": "on"}).status_code == 201


def test_another_tenants_endpoint_and_delivery_are_not_found(world, client):
    login_verified(client, world.a.owner)
    endpoint, delivery = world.b.extra["webhook_endpoint"], world.b.extra["webhook_delivery"]
    assert client.get(reverse("portal:webhook-endpoint", args=[endpoint.public_id])).status_code == 404
    assert client.post(reverse("portal:webhook-endpoint-enabled", args=[endpoint.public_id]),
                       {"enabled": "off"}).status_code == 404
    assert client.post(reverse("portal:webhook-delivery-resend", args=[delivery.public_id])).status_code == 404
    assert endpoint.public_id not in client.get(LIST).content.decode()
    assert WebhookEndpoint.unscoped.get(pk=endpoint.pk).enabled
