"""The plain single send (messaging/api/send.py): one statement, the DRF path's answers, and what it hands over."""
from __future__ import annotations

import json
from numbers.tests.factories import shared_senders

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import IdempotencyRecord
from accounts.tests.api_assertions import assert_error
from messaging.models import Message, MessageEvent
from messaging.tests import history
from smsportal.api.ratelimit import local_buckets_clear

pytestmark = pytest.mark.django_db

URL = "/v1/messages"
BODY = {"to": "+14155550123", "from": "Acme", "text": "Your code is 123456", "message_type": "otp"}
needs_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")


@pytest.fixture(autouse=True)
def shared(db) -> dict[str, str]:
    """Shared sender numbers of the US and Canada: the alphanumeric `from` of these sends to US numbers goes from
    one of them (sender substitution: docs/compliance.md "Sender IDs")."""
    return shared_senders("US", "CA")


@pytest.fixture(autouse=True)
def _fresh_buckets(settings):
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""
    local_buckets_clear()
    yield
    local_buckets_clear()


def _post(api, auth, body, **headers):
    return api.post(URL, json.dumps(body), content_type="application/json", **auth, **headers)


@needs_postgresql
def test_an_idempotent_send_is_one_statement_that_stores_the_answer_with_the_message(world, api, settings):
    # given the shipped settings (the test settings turn the key cache off and publish each message),
    # and a key already authenticated once (the key cache and its last-used touch are warm)
    settings.API_KEY_CACHE_SECONDS, settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS = 60, 60
    settings.MESSAGE_HANDOFF = "dispatcher"
    # (another code: the same one again within 30 s would be answered by the OTP dedupe, not stored)
    assert _post(api, world.a.auth, {**BODY, "text": "Your code is 654321", "client_reference": "warm"}).status_code == 202
    # when a send with an Idempotency-Key comes
    with CaptureQueriesContext(connection) as queries:
        response = _post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="one-statement")
    # then it is accepted in one round trip to PostgreSQL, no BEGIN or COMMIT around it
    assert response.status_code == 202, response.content
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 1, statements
    assert "accounts_idempotencyrecord" in statements[0] and "messaging_message" in statements[0]
    # and the message (its own first event: no event row) and the record, completed with the exact bytes
    # sent, were written
    message = Message.unscoped.get(public_id=response.json()["id"])
    assert not MessageEvent.unscoped.filter(message=message).exists()
    assert [(event.sequence, event.detail) for event in history.timeline(message)] == [(1, "accepted")]
    record = IdempotencyRecord.unscoped.get(tenant=world.a.tenant, key="one-statement")
    assert record.state == IdempotencyRecord.State.COMPLETED and record.response_status == 202
    assert bytes(record.response_body) == response.content and record.response_content_type == "application/json"


def test_a_retry_replays_the_plain_answer_and_another_body_is_refused(world, api):
    before = Message.unscoped.filter(tenant=world.a.tenant).count()
    first = _post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert first.status_code == 202 and "Idempotent-Replayed" not in first
    retry = _post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="retry-me")
    assert retry.status_code == 202 and retry.content == first.content and retry["Idempotent-Replayed"] == "true"
    assert_error(_post(api, world.a.auth, {**BODY, "text": "other"}, HTTP_IDEMPOTENCY_KEY="retry-me"), 422,
                 "idempotency_key_reused")
    assert Message.unscoped.filter(tenant=world.a.tenant).count() == before + 1


def test_a_refused_message_with_a_key_keeps_its_answer(world, api):
    # given a send the pipeline refuses (the plain path hands it to DRF, which stores the 400)
    bad = {**BODY, "to": "+1415"}
    before = Message.unscoped.filter(tenant=world.a.tenant).count()
    first = _post(api, world.a.auth, bad, HTTP_IDEMPOTENCY_KEY="bad-number")
    assert_error(first, 400, "invalid_phone_number", field="to")
    # then a retry gets the same answer, as a replay, and nothing was stored but the answer
    retry = _post(api, world.a.auth, bad, HTTP_IDEMPOTENCY_KEY="bad-number")
    assert retry.status_code == 400 and retry.content == first.content and retry["Idempotent-Replayed"] == "true"
    assert Message.unscoped.filter(tenant=world.a.tenant).count() == before


@pytest.mark.parametrize("headers, status, code", [
    ({"content_type": "text/plain"}, 415, "unsupported_media_type"),
    ({"HTTP_ACCEPT": "text/html"}, 406, "not_acceptable"),
    ({"content_type": "application/json; charset=latin-1"}, 202, None),
    ({"HTTP_ACCEPT": "application/json; indent=2"}, 202, None),
])
def test_what_the_plain_path_does_not_take_gets_the_drf_answer(world, api, headers, status, code):
    content_type = headers.pop("content_type", "application/json")
    response = api.post(URL, json.dumps(BODY), content_type=content_type, **world.a.auth, **headers)
    if code:
        assert_error(response, status, code)
    else:
        assert response.status_code == status, response.content
        assert response.json()["to"] == BODY["to"]


def test_a_query_string_and_a_bad_key_go_the_drf_way(world, api):
    assert _post(api, world.a.auth, BODY, **{"QUERY_STRING": "trace=1"}).status_code == 202
    assert_error(api.post(URL, json.dumps(BODY), content_type="application/json", HTTP_AUTHORIZATION="Bearer sk_x"),
                 401, "invalid_api_key")
    assert_error(_post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="\u00e9"), 400, "invalid_idempotency_key")


def test_a_repeat_of_a_key_is_not_counted_against_the_rate(world, api):
    # given a tenant allowed one message per second, whose one send used it
    world.a.tenant.messages_per_second = 1
    world.a.tenant.save(update_fields=["messages_per_second"])
    local_buckets_clear()  # the world's own sends (in-process buckets without Redis)
    first = _post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="once")
    assert first.status_code == 202
    # when the client retries at once, then sends something new
    retry = _post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="once")
    new = _post(api, world.a.auth, {**BODY, "text": "new"}, HTTP_IDEMPOTENCY_KEY="twice")
    # then the retry is its replay (never a 429), and the new send is limited
    assert retry.status_code == 202 and retry.content == first.content
    assert_error(new, 429, "rate_limited")


@needs_postgresql
def test_without_prepared_statements_the_send_still_goes_in_one_statement(world, api, settings):
    settings.DB_PREPARED_STATEMENTS = False
    response = _post(api, world.a.auth, BODY, HTTP_IDEMPOTENCY_KEY="unprepared")
    assert response.status_code == 202, response.content
    assert IdempotencyRecord.unscoped.get(tenant=world.a.tenant, key="unprepared").response_status == 202
