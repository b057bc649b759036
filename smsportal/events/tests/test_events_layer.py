"""The outbox as a shared layer: the event-type registry, the generic emit, the hooks apps register, and the
migrations that moved the models here from messaging (state only) and replaced the message key by `subject`."""
from __future__ import annotations

from numbers import hooks as numbers_hooks

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.tests.factories import TenantFactory
from messaging import hooks as messaging_hooks
from smsportal.events import registry, services
from smsportal.events.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


def test_each_app_registers_its_event_types_in_lifecycle_numbers_compliance_then_billing_order():
    assert registry.event_types() == (
        "message.queued", "message.sent", "message.delivered", "message.undelivered", "message.failed",
        "message.expired", "message.received", "number.lease_expiring", "number.released", "contact.opted_in",
        "contact.opted_out", "sender_id.reviewed", "balance.low", "invoice.issued")


def test_an_unregistered_event_type_is_refused_before_anything_is_stored():
    tenant = TenantFactory()
    with pytest.raises(ValueError, match="unregistered event type 'invoice.paid'"):
        services.event_emit(tenant_id=tenant.pk, event_type="invoice.paid", data={}, timestamp=timezone.now(),
                            callback_url="https://example.com/cb")
    assert WebhookDelivery.unscoped.count() == 0


def test_an_event_goes_to_its_callback_url_and_each_subscribed_endpoint_with_its_subject():
    # given a tenant with an endpoint for number.released and one for message.sent only
    tenant = TenantFactory()
    wanted = WebhookEndpoint.unscoped.create(tenant=tenant, url="https://example.com/a", events=["number.released"])
    WebhookEndpoint.unscoped.create(tenant=tenant, url="https://example.com/b", events=["message.sent"])
    at = timezone.now()
    # when an app emits number.released with a callback_url
    rows = services.event_emit(tenant_id=tenant.pk, event_type="number.released", data={"id": "lse_1"},
                               timestamp=at, callback_url="https://example.com/cb", subject="lse_1")
    # then one delivery per target, each with the subject and the body built from the app's data
    assert {(row.endpoint_id, row.url) for row in rows} == {(None, "https://example.com/cb"),
                                                             (wanted.pk, "https://example.com/a")}
    stored = WebhookDelivery.unscoped.filter(subject="lse_1")
    assert stored.count() == 2
    assert all(row.payload == {"type": "number.released", "timestamp": services.iso(at), "data": {"id": "lse_1"}}
               for row in stored)


def test_an_event_nobody_listens_to_stores_nothing():
    tenant = TenantFactory()
    assert services.event_emit(tenant_id=tenant.pk, event_type="message.sent", data={},
                               timestamp=timezone.now()) == []
    assert WebhookDelivery.unscoped.count() == 0


def test_messaging_fills_the_hooks_of_the_apps_below_it():
    assert numbers_hooks.help_reply_sender() is messaging_hooks.help_reply_send


@pytest.mark.django_db(transaction=True)
def test_the_move_keeps_every_delivery_and_names_its_message_by_subject():
    # given the schema as it was before the move: the outbox models in messaging, with a message key
    executor = MigrationExecutor(connection)
    [before] = executor.loader.get_migration("messaging", "0011_webhooks_to_events").dependencies
    executor.migrate([before, ("events", None)])
    old = executor.loader.project_state([before]).apps
    tenant = TenantFactory()  # accounts stays migrated: its current model matches its table
    message = old.get_model("messaging", "Message")._base_manager.create(
        tenant_id=tenant.pk, public_id="msg_moved", to="+447700900123", sender="X", text="hi", status="queued",
        sequence=1, segments=1, characters=2, encoding="GSM-7", expires_at=timezone.now())
    endpoint = old.get_model("messaging", "WebhookEndpoint")._base_manager.create(
        tenant_id=tenant.pk, url="https://example.com/h", secret_encrypted="x", secret_prefix="whsec_ab")
    Delivery = old.get_model("messaging", "WebhookDelivery")
    Delivery._base_manager.create(tenant_id=tenant.pk, endpoint=endpoint, url=endpoint.url, event_type="message.queued",
                            message=message, payload={"type": "message.queued", "data": {"id": "msg_moved"}})
    Delivery._base_manager.create(tenant_id=tenant.pk, endpoint=endpoint, url=endpoint.url, event_type="message.received",
                            payload={"type": "message.received", "data": {"id": "inb_1"}})
    # when migrated forward
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    # then the same rows are the events app's, each naming what it is about
    rows = WebhookDelivery.unscoped.filter(tenant_id=tenant.pk).order_by("pk")
    assert [(row.subject, row.message_public_id, row.endpoint.url) for row in rows] == [
        ("msg_moved", "msg_moved", "https://example.com/h"), ("inb_1", None, "https://example.com/h")]
