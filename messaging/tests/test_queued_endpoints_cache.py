"""message.queued at accept reads the tenant's webhook endpoints from a short-lived per-process cache
(smsportal/events/selectors.py: event_subscribers_cached): no endpoint SELECT per send, and an
endpoint saved or deleted in this process is in force at the next send."""
from __future__ import annotations

from numbers.tests.factories import shared_senders

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as accounts
from messaging import accept
from smsportal.events import services as events
from smsportal.events.models import WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def cached(settings):
    settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS = 30  # longer than the test: only a save or delete ends it


def _send(tenant, ending: str):
    return accept.message_send(tenant=tenant, api_key=None, to=f"+1415555{ending}", sender="Acme", text="Hello")


def _queued_to(message) -> set[str]:
    return set(WebhookDelivery.unscoped.filter(subject=message.public_id, event_type="message.queued")
               .values_list("url", flat=True))


def test_a_send_after_the_first_reads_no_endpoints(world, cached):
    # given a first send of tenant A (whose endpoint gets its message.queued)
    first = _send(world.a.tenant, "1001")
    assert _queued_to(first) == {world.a.extra["webhook_endpoint"].url}
    # when A sends again
    with CaptureQueriesContext(connection) as again:
        second = _send(world.a.tenant, "1002")
    # then the endpoints are not read again, and the endpoint still gets the event
    assert not [q for q in again.captured_queries if 'FROM "messaging_webhookendpoint"' in q["sql"]
                or "FROM messaging_webhookendpoint" in q["sql"]]
    assert _queued_to(second) == {world.a.extra["webhook_endpoint"].url}


def test_an_endpoint_added_changed_or_deleted_is_in_force_at_the_next_send(world, cached):
    # given A's endpoints read by a send
    _send(world.a.tenant, "1003")
    # when A adds an endpoint; then the next send's message.queued goes to it too
    added, _ = events.webhook_endpoint_create(tenant=world.a.tenant, url="https://93.184.215.14/hooks",
                                              actor=accounts.SYSTEM)
    assert _queued_to(_send(world.a.tenant, "1004")) == {world.a.extra["webhook_endpoint"].url, added.url}
    # when it is disabled; then it no longer gets them
    events.webhook_endpoint_update(tenant=world.a.tenant, endpoint=added, actor=accounts.SYSTEM, enabled=False)
    assert _queued_to(_send(world.a.tenant, "1005")) == {world.a.extra["webhook_endpoint"].url}
    # when the first endpoint is deleted; then nobody gets them
    events.webhook_endpoint_delete(tenant=world.a.tenant, endpoint=world.a.extra["webhook_endpoint"], actor=accounts.SYSTEM)
    assert _queued_to(_send(world.a.tenant, "1006")) == set()


def test_tenants_do_not_share_their_endpoints(world, cached):
    # given both tenants' endpoints read by a send of each
    a, b = _send(world.a.tenant, "1007"), _send(world.b.tenant, "1008")
    # then each message.queued went to its own tenant's endpoint only
    assert _queued_to(a) == {world.a.extra["webhook_endpoint"].url}
    assert _queued_to(b) == {world.b.extra["webhook_endpoint"].url}
