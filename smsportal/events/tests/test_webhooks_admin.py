"""Admin: endpoints never show a secret; deliveries show their attempts, read-only, with a resend action."""
from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import PASSWORD, login_verified
from smsportal.events import services
from smsportal.events.models import WebhookDelivery, WebhookEndpoint
from smsportal.events.tests.webhook_helpers import Published

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    return login_verified(client, staff)


def _url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_an_endpoint_page_never_shows_its_secret(world, staff_client):
    endpoint = world.a.extra["webhook_endpoint"]
    page = staff_client.get(_url(WebhookEndpoint, "change", endpoint.pk))
    html = page.content.decode()
    assert page.status_code == 200 and endpoint.url in html and endpoint.secret_prefix in html
    assert endpoint.secret_encrypted not in html and "secret_encrypted" not in html
    assert staff_client.get(_url(WebhookEndpoint, "add")).status_code == 403


def test_a_delivery_page_shows_its_attempts_read_only(world, staff_client):
    delivery = world.a.extra["webhook_delivery"]
    WebhookDelivery.unscoped.filter(pk=delivery.pk).update(url="http://127.0.0.1:9/closed")
    WebhookEndpoint.unscoped.filter(pk=delivery.endpoint_id).update(url="http://127.0.0.1:9/closed")
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    page = staff_client.get(_url(WebhookDelivery, "change", delivery.pk))
    html = page.content.decode()
    assert page.status_code == 200 and "connection_error" in html and delivery.event_id in html
    before = WebhookDelivery.unscoped.filter(pk=delivery.pk).values().get()
    staff_client.post(_url(WebhookDelivery, "change", delivery.pk), {"status": "delivered"})
    assert WebhookDelivery.unscoped.filter(pk=delivery.pk).values().get() == before


def test_the_resend_action_starts_a_new_cycle(world, staff_client, monkeypatch, django_capture_on_commit_callbacks):
    published = Published(monkeypatch)
    deliveries = [world.a.extra["webhook_delivery"], world.b.extra["webhook_delivery"]]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(_url(WebhookDelivery, "changelist"), {
            "action": "resend", "_selected_action": [d.pk for d in deliveries]})
    assert response.status_code == 302
    assert sorted(published.delivery_ids) == sorted(d.pk for d in deliveries)
    assert set(WebhookDelivery.unscoped.filter(pk__in=[d.pk for d in deliveries]).values_list("cycle", flat=True)) == {1}
