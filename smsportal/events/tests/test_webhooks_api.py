"""/v1/webhook-endpoints and /v1/webhook-deliveries: every route, its validation errors by code, scopes,
the other tenant's 404, secrets shown once, test sends without a response oracle, lists with a query guard."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from standardwebhooks import Webhook

from accounts.models import AuditEvent
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key
from smsportal.events import services
from smsportal.events.models import WebhookDelivery, WebhookEndpoint
from smsportal.events.tests.webhook_helpers import Published, delivery_of, endpoint_for, send
from smsportal.ids import public_id
from smsportal.tests.http_receiver import Receiver

pytestmark = pytest.mark.django_db

ENDPOINTS = "/v1/webhook-endpoints"
DELIVERIES = "/v1/webhook-deliveries"
ENDPOINT_FIELDS = {"id", "url", "description", "events", "enabled", "disabled_reason", "secret_prefix",
                   "previous_secret_expires_at", "consecutive_failures", "created_at", "updated_at"}


@pytest.fixture
def published(monkeypatch) -> Published:
    return Published(monkeypatch)


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def _post(api, url, body, auth, **headers):
    return api.post(url, body, format="json", **auth, **headers)


def _key(world, *scopes) -> dict:
    return bearer(make_api_key(world.a.tenant, scopes=list(scopes), name="+".join(scopes))[1])


# --- endpoints ------------------------------------------------------------------------------------------


def test_it_creates_an_endpoint_and_shows_its_secret_once(world, api, receiver):
    # when A registers an endpoint for two event types
    response = _post(api, ENDPOINTS, {"url": receiver.url(), "events": ["message.delivered", "message.failed"],
                                      "description": "CRM"}, world.a.auth)
    # then 201 with the endpoint and its secret, stored only encrypted, audited
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    assert body["id"].startswith("whe_") and body["secret"].startswith("whsec_") and body["enabled"] is True
    assert body["events"] == ["message.delivered", "message.failed"] and body["secret_prefix"] == body["secret"][:10]
    endpoint = WebhookEndpoint.unscoped.get(public_id=body["id"], tenant=world.a.tenant)
    assert AuditEvent.unscoped.filter(action="webhook_endpoint.created", target_id=endpoint.public_id).exists()
    # and the secret is never shown again: not on GET, not in the list
    shown = api.get(f"{ENDPOINTS}/{body['id']}", **world.a.auth)
    listed = api.get(ENDPOINTS, **world.a.auth)
    assert set(shown.json()) == ENDPOINT_FIELDS
    assert body["secret"] not in shown.content.decode() + listed.content.decode()
    assert [e["id"] for e in listed.json()["results"]] == [body["id"], world.a.extra["webhook_endpoint"].public_id]


def test_a_replayed_creation_does_not_show_the_secret_again(world, api, receiver):
    # given a creation with an Idempotency-Key; when the same request is retried
    first = _post(api, ENDPOINTS, {"url": receiver.url()}, world.a.auth, HTTP_IDEMPOTENCY_KEY="create-hook-1")
    again = _post(api, ENDPOINTS, {"url": receiver.url()}, world.a.auth, HTTP_IDEMPOTENCY_KEY="create-hook-1")
    # then one endpoint, and the replay has the same id with the secret as null
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and again.json()["secret"] is None
    assert WebhookEndpoint.unscoped.filter(tenant=world.a.tenant, url=receiver.url()).count() == 1


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"url": "ftp://hooks.example.com/"}, "invalid_callback_url", "url"),
    ({"url": "https://user:pw@hooks.example.com/"}, "invalid_callback_url", "url"),
    ({"url": "https://hooks.example.com/", "events": ["message.read"]}, "invalid_event_type", "events"),
    ({"url": "https://hooks.example.com/", "events": "message.sent"}, "not_a_list", "events"),
    ({"events": ["message.sent"]}, "required", "url"),
    ({"url": "https://hooks.example.com/", "description": "x" * 201}, "max_length", "description"),
])
def test_it_refuses_invalid_endpoints_by_code_and_field(world, api, body, code, field):
    before = WebhookEndpoint.unscoped.count()
    assert_error(_post(api, ENDPOINTS, body, world.a.auth), 400, code, field=field)
    assert WebhookEndpoint.unscoped.count() == before


def test_it_refuses_private_targets_in_production(world, api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    error = assert_error(_post(api, ENDPOINTS, {"url": "http://169.254.169.254/latest"}, world.a.auth), 400,
                         "invalid_callback_url", field="url")
    assert "public" in error["message"]


def test_it_limits_the_number_of_endpoints(world, api, receiver):
    for _ in range(services.MAX_ENDPOINTS_PER_TENANT - 1):  # the world's tenant has one already
        endpoint_for(world.a.tenant, receiver.url())
    assert_error(_post(api, ENDPOINTS, {"url": receiver.url()}, world.a.auth), 409, "too_many_webhook_endpoints")


def test_it_changes_disables_and_enables_an_endpoint(world, api, receiver):
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    url = f"{ENDPOINTS}/{endpoint.public_id}"
    # when A narrows its events and disables it
    changed = api.patch(url, {"events": ["message.failed"], "enabled": False}, format="json", **world.a.auth)
    # then the answer shows it, with a reason, and the change is audited before -> after
    assert changed.status_code == 200
    assert (changed.json()["events"], changed.json()["enabled"]) == (["message.failed"], False)
    assert changed.json()["disabled_reason"].startswith("Disabled by api key")
    audit = AuditEvent.unscoped.get(action="webhook_endpoint.changed", target_id=endpoint.public_id)
    assert audit.changes["enabled"] == [True, False]
    # when enabled again, the reason is cleared
    enabled = api.patch(url, {"enabled": True}, format="json", **world.a.auth)
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] == ""
    # and a bad URL is refused by code
    assert_error(api.patch(url, {"url": "gopher://x/"}, format="json", **world.a.auth), 400, "invalid_callback_url",
                 field="url")


def test_it_deletes_an_endpoint_with_its_deliveries(world, api, receiver):
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    send(world.a.tenant)
    response = api.delete(f"{ENDPOINTS}/{endpoint.public_id}", **world.a.auth)
    assert response.status_code == 204
    assert not WebhookEndpoint.unscoped.filter(pk=endpoint.pk).exists()
    assert not WebhookDelivery.unscoped.filter(endpoint_id=endpoint.pk).exists()
    assert AuditEvent.unscoped.filter(action="webhook_endpoint.deleted", target_id=endpoint.public_id).exists()
    assert_error(api.get(f"{ENDPOINTS}/{endpoint.public_id}", **world.a.auth), 404, "not_found")


def test_it_rotates_a_secret_and_both_sign_for_a_day(world, api, receiver):
    endpoint, old = endpoint_for(world.a.tenant, receiver.url())
    response = _post(api, f"{ENDPOINTS}/{endpoint.public_id}/rotate-secret", None, world.a.auth)
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old and response.json()["previous_secret_expires_at"]
    assert new not in api.get(f"{ENDPOINTS}/{endpoint.public_id}", **world.a.auth).content.decode()
    # a delivery now verifies with either secret
    services.webhook_delivery_attempt(delivery_id=delivery_of(send(world.a.tenant), endpoint).pk)
    request = receiver.requests[0]
    assert Webhook(old).verify(request.body, request.headers) == Webhook(new).verify(request.body, request.headers)


def test_a_test_send_answers_only_status_latency_and_error_class(world, api, receiver):
    # given a receiver whose answer carries a body and headers worth stealing
    receiver.answer(500, body=b'{"aws_secret": "AKIA-SECRET"}', headers={"X-Internal-Host": "db01.corp"})
    endpoint, secret = endpoint_for(world.a.tenant, receiver.url())
    deliveries = WebhookDelivery.unscoped.count()
    # when A sends a test event
    response = _post(api, f"{ENDPOINTS}/{endpoint.public_id}/test", None, world.a.auth)
    # then the answer holds only the three fields, nothing of the receiver's answer
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status_code", "latency_ms", "error_class"}
    assert (body["status_code"], body["error_class"]) == (500, "http_500")
    assert "AKIA" not in response.content.decode() and "db01" not in response.content.decode()
    # and the receiver got a signed webhook.test event
    event = Webhook(secret).verify(receiver.requests[0].body, receiver.requests[0].headers)
    assert event["type"] == "webhook.test" and event["data"]["endpoint"] == endpoint.public_id
    assert WebhookDelivery.unscoped.count() == deliveries


def test_a_test_send_to_a_closed_port_is_an_error_class(world, api):
    closed = Receiver()
    url = closed.url()
    closed.stop()
    endpoint, _ = endpoint_for(world.a.tenant, url)
    body = _post(api, f"{ENDPOINTS}/{endpoint.public_id}/test", None, world.a.auth).json()
    assert body["status_code"] is None and body["error_class"] == "connection_error"


def test_the_callback_secret_is_made_then_rotated_and_shown_once_each_time(world, api):
    first = _post(api, f"{ENDPOINTS}/callback-secret", None, world.a.auth)
    second = _post(api, f"{ENDPOINTS}/callback-secret", None, world.a.auth)
    assert first.status_code == second.status_code == 200
    assert first.json()["secret"].startswith("whsec_") and second.json()["secret"] != first.json()["secret"]
    assert first.json()["previous_secret_expires_at"] is None and second.json()["previous_secret_expires_at"]
    assert api.get(f"{ENDPOINTS}/callback-secret", **world.a.auth).status_code == 405
    assert AuditEvent.unscoped.filter(action="webhook_callback_secret.rotated", tenant=world.a.tenant).count() == 2


# --- deliveries -------------------------------------------------------------------------------------------


def test_it_lists_deliveries_with_their_attempts_and_filters(world, api, receiver):
    # given an endpoint with one delivered and one failing event, and a callback delivery (the world's endpoint off)
    WebhookEndpoint.unscoped.filter(pk=world.a.extra["webhook_endpoint"].pk).update(enabled=False)
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    delivered = delivery_of(send(world.a.tenant, client_reference="one"), endpoint)
    services.webhook_delivery_attempt(delivery_id=delivered.pk)
    receiver.answer(503)
    failing_message = send(world.a.tenant, callback_url=receiver.url("/cb"))
    failing = delivery_of(failing_message, endpoint)
    services.webhook_delivery_attempt(delivery_id=failing.pk)
    # when A lists them
    results = api.get(DELIVERIES, **world.a.auth).json()["results"]
    # then all three (and the world's own), newest first, each with its attempt log and no response body
    assert len(results) == 4 and results[-1]["id"] == world.a.extra["webhook_delivery"].public_id
    first = next(r for r in results if r["id"] == delivered.public_id)
    assert (first["status"], first["endpoint"], first["event_type"]) == ("delivered", endpoint.public_id,
                                                                        "message.queued")
    assert first["attempts"][0]["status_code"] == 200 and first["attempt_count"] == 1
    assert first["payload"]["data"]["client_reference"] == "one"
    second = next(r for r in results if r["id"] == failing.public_id)
    assert second["attempts"][0]["error_class"] == "http_503" and second["status"] == "pending"

    def ids(query: str) -> set[str]:
        return {r["id"] for r in api.get(f"{DELIVERIES}?{query}", **world.a.auth).json()["results"]}

    # and the filters narrow them
    assert ids(f"endpoint={endpoint.public_id}") == {delivered.public_id, failing.public_id}
    assert ids(f"message={failing_message.public_id}") == {failing.public_id, delivery_of(failing_message).public_id}
    assert ids(f"status=delivered&endpoint={endpoint.public_id}") == {delivered.public_id}
    assert ids("event_type=message.delivered") == set()
    assert_error(api.get(f"{DELIVERIES}?status=lost", **world.a.auth), 400, "invalid_choice", field="status")


def test_the_delivery_list_runs_a_fixed_number_of_queries(world, api, receiver):
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(DELIVERIES, **world.a.auth).status_code == 200
        return len(queries)

    delivery = delivery_of(send(world.a.tenant), endpoint)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    count()  # the key's first use writes last_used_at
    few = count()
    for _ in range(5):
        services.webhook_delivery_attempt(delivery_id=delivery_of(send(world.a.tenant, callback_url=receiver.url()),
                                                                  endpoint).pk)
    assert count() == few


def test_it_shows_one_delivery(world, api, receiver):
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    delivery = delivery_of(send(world.a.tenant), endpoint)
    body = api.get(f"{DELIVERIES}/{delivery.public_id}", **world.a.auth).json()
    assert (body["id"], body["event_id"], body["status"], body["attempts"]) == (
        delivery.public_id, delivery.event_id, "pending", [])


def test_a_resend_starts_a_new_cycle_and_publishes_a_task(world, api, receiver, published,
                                                          django_capture_on_commit_callbacks):
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    delivery = delivery_of(send(world.a.tenant), endpoint)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(api, f"{DELIVERIES}/{delivery.public_id}/resend", None, world.a.auth)
    assert response.status_code == 202
    assert (response.json()["status"], response.json()["cycle"], response.json()["attempt_count"]) == ("pending", 1, 0)
    assert published.webhooks == [(delivery.pk, "webhooks", None)]


def test_a_resend_to_a_disabled_endpoint_is_a_conflict(world, api, receiver):
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    delivery = delivery_of(send(world.a.tenant), endpoint)
    api.patch(f"{ENDPOINTS}/{endpoint.public_id}", {"enabled": False}, format="json", **world.a.auth)
    assert_error(_post(api, f"{DELIVERIES}/{delivery.public_id}/resend", None, world.a.auth), 409,
                 "webhook_endpoint_disabled")
    assert WebhookDelivery.unscoped.get(pk=delivery.pk).cycle == 0


# --- scopes and tenants -------------------------------------------------------------------------------------


def test_reading_deliveries_needs_messages_read_and_everything_else_admin(world, api, receiver):
    # given A's endpoint and delivery, and a key with messages:read and messages:send only
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    delivery = delivery_of(send(world.a.tenant), endpoint)
    auth = _key(world, "messages:read", "messages:send")
    # then it reads deliveries
    assert api.get(DELIVERIES, **auth).status_code == 200
    assert api.get(f"{DELIVERIES}/{delivery.public_id}", **auth).status_code == 200
    # and every other operation is refused as insufficient_scope, changing nothing
    refused = [
        api.get(ENDPOINTS, **auth), _post(api, ENDPOINTS, {"url": receiver.url()}, auth),
        api.get(f"{ENDPOINTS}/{endpoint.public_id}", **auth),
        api.patch(f"{ENDPOINTS}/{endpoint.public_id}", {"enabled": False}, format="json", **auth),
        api.delete(f"{ENDPOINTS}/{endpoint.public_id}", **auth),
        _post(api, f"{ENDPOINTS}/{endpoint.public_id}/rotate-secret", None, auth),
        _post(api, f"{ENDPOINTS}/{endpoint.public_id}/test", None, auth),
        _post(api, f"{ENDPOINTS}/callback-secret", None, auth),
        _post(api, f"{DELIVERIES}/{delivery.public_id}/resend", None, auth),
    ]
    for response in refused:
        assert_error(response, 403, "insufficient_scope")
    assert WebhookEndpoint.unscoped.filter(tenant=world.a.tenant).count() == 2 and receiver.requests == []
    # and a key without messages:read cannot read deliveries
    assert_error(api.get(DELIVERIES, **_key(world, "messages:send")), 403, "insufficient_scope")


def test_the_other_tenants_objects_are_not_found_and_never_listed(world, api, receiver):
    # given A's endpoint and delivery
    endpoint, _ = endpoint_for(world.a.tenant, receiver.url())
    delivery = delivery_of(send(world.a.tenant), endpoint)
    # when B asks for them, changes them or lists its own
    for path, missing in ((f"{ENDPOINTS}/{endpoint.public_id}", f"{ENDPOINTS}/{public_id('whe')}"),
                          (f"{DELIVERIES}/{delivery.public_id}", f"{DELIVERIES}/{public_id('whd')}")):
        foreign, absent = api.get(path, **world.b.auth), api.get(missing, **world.b.auth)
        assert_error(foreign, 404, "not_found")
        assert foreign.json() == absent.json()
    for path in (f"{ENDPOINTS}/{endpoint.public_id}/rotate-secret", f"{ENDPOINTS}/{endpoint.public_id}/test",
                 f"{DELIVERIES}/{delivery.public_id}/resend"):
        assert_error(_post(api, path, None, world.b.auth), 404, "not_found")
    assert_error(api.delete(f"{ENDPOINTS}/{endpoint.public_id}", **world.b.auth), 404, "not_found")
    listed = api.get(ENDPOINTS, **world.b.auth).content.decode() + api.get(DELIVERIES, **world.b.auth).content.decode()
    # then nothing of A's shows, nothing changed, no request went out
    assert endpoint.public_id not in listed and delivery.public_id not in listed
    assert WebhookEndpoint.unscoped.get(pk=endpoint.pk).secret_encrypted == endpoint.secret_encrypted
    assert receiver.requests == []
