"""/v1/messages and /v1/templates: send, validate, read, list, cancel, quote, templates, scopes, tenancy."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from numbers.tests.factories import shared_senders

import pytest
import redis
from django.conf import settings
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Tenant
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key
from compliance.tests.consent_helpers import opted_in
from messaging import accept, pipeline, services
from messaging.models import Message, MessageEvent, MessageTemplate, Status
from messaging.tests import history
from smsportal.api.ratelimit import local_buckets_clear

pytestmark = pytest.mark.django_db

URL = "/v1/messages"
TEMPLATES = "/v1/templates"
TO = "+14155550123"  # valid to phonenumbers, fictional in use (555-01xx)
# The customers' example payload, with a valid number (+15551234567 is not one: see the test below).
EXAMPLE = {
    "to": TO,
    "from": "YourBrand",
    "text": "Your OTP is 123456",
    "template": "OTP_${otp}",
    "callback_url": "https://yourapp.example/webhook",
    "message_type": "OTP",
    "region": "US",
}
ANSWER_FIELDS = {"id", "status", "to", "from", "pool", "text", "encoding", "segments", "characters", "message_type",
                 "created_at", "scheduled_at", "scheduled_reason", "expires_at", "client_reference", "metadata", "price", "currency", "billed",
                 "sender_substituted"}


@pytest.fixture
def enqueued(monkeypatch):
    """`enqueued()`: the dispatch tasks published after commit so far, as (message id, queue).

    The test's transaction never commits, so this runs the on-commit callbacks registered since the
    test began, as a commit would; `apply_async` is recorded instead of reaching a broker. Callbacks
    of a rolled-back savepoint (a refused request) are gone from the list, as after a real rollback.
    """
    from messaging.tasks import message_dispatch_task

    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(message_dispatch_task, "apply_async",
                        lambda args, queue=None, countdown=None, **kw: calls.append((args[0], queue)))
    done = len(connection.run_on_commit)

    def run() -> list[tuple[int, str]]:
        nonlocal done
        while done < len(connection.run_on_commit):
            _savepoints, callback, _robust = connection.run_on_commit[done]
            done += 1
            callback()
        return calls

    return run


@pytest.fixture(autouse=True)
def shared(db) -> dict[str, str]:
    """The platform's shared sender numbers of the US and Canada: this module's alphanumeric senders to US
    numbers are sent from one instead (sender substitution: docs/compliance.md "Sender IDs")."""
    return shared_senders("US", "CA")


@pytest.fixture(autouse=True)
def _fresh_rate_buckets(settings):
    """POST /v1/messages counts against the tenant's messages_per_second; tenants of earlier tests
    may have had the same pk, so every test starts with empty buckets (in memory and in Redis)."""
    local_buckets_clear()
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        for key in client.scan_iter(match="*:ratelimit:*"):
            client.delete(key)
    yield
    local_buckets_clear()


def _post(api, auth, body, url=URL, **headers):
    return api.post(url, body, format="json", **auth, **headers)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _send(tenant, ending="1234", **fields):
    fields.setdefault("text", "Hello")
    return accept.message_send(tenant=tenant, api_key=None, to=f"+1415555{ending}", sender="Acme", **fields)


# --- POST /v1/messages: the happy path ------------------------------------------------------------


def test_it_accepts_the_customers_example_payload(world, api, enqueued, shared):
    # given the example payload from the customers' integration guide
    before = timezone.now()
    # when A posts it
    response = _post(api, world.a.auth, EXAMPLE)
    # then the answer is 202 with every field
    assert response.status_code == 202, response.json()
    body = response.json()
    assert set(body) == ANSWER_FIELDS
    assert body["id"].startswith("msg_") and body["status"] == "queued"
    assert body["to"] == TO and body["text"] == "Your OTP is 123456"
    # the US takes no alphanumeric sender: it goes from the platform's shared US number, and says so
    assert body["from"] == shared["US"]
    assert body["sender_substituted"] == {"requested": "YourBrand", "used": shared["US"]}
    assert (body["encoding"], body["segments"], body["characters"]) == ("GSM-7", 1, 18)
    assert body["message_type"] == "otp"
    assert body["scheduled_at"] is None and body["client_reference"] == "" and body["metadata"] == {}
    created = _when(body["created_at"])
    assert before <= created <= timezone.now()
    assert _when(body["expires_at"]) - created == timedelta(minutes=10)  # OTP default validity
    # and the row (its own first event: no event row) and one dispatch task on the otp queue exist
    message = Message.unscoped.get(public_id=body["id"])
    assert message.tenant == world.a.tenant and message.api_key == world.a.api_key and message.mode == "test"
    assert message.template_ref == "OTP_${otp}"  # text given too: text is sent, template kept
    assert message.callback_url == "https://yourapp.example/webhook"
    assert [(e.sequence, e.status, e.source, e.detail) for e in history.timeline(message)] == [(1, "queued", "api", "accepted")]
    assert not MessageEvent.unscoped.filter(message=message).exists()
    assert enqueued() == [(message.pk, "otp")]


def test_it_refuses_the_555_example_number_which_phonenumbers_does_not_accept(world, api, enqueued):
    # given the example with +15551234567 (555-1234 is not an assigned US line number)
    count = Message.unscoped.count()
    # when posted
    response = _post(api, world.a.auth, {**EXAMPLE, "to": "+15551234567"})
    # then 400 invalid_phone_number on `to`; nothing stored, nothing enqueued
    assert_error(response, 400, "invalid_phone_number", field="to")
    assert Message.unscoped.count() == count and enqueued() == []


@pytest.mark.parametrize("to, region", [("(415) 555-0123", "US"), ("415-555-0123", "us"), ("4155550123", "US"),
                                        ("+1 415 555 0123", ""), ("001 415 555 0123", "DE")])
def test_it_normalizes_a_number_in_any_common_format_to_e164(world, api, enqueued, to, region):
    response = _post(api, world.a.auth, {"to": to, "region": region, "from": "Acme", "text": "hi"})
    assert response.status_code == 202, response.json()
    assert response.json()["to"] == TO
    assert Message.unscoped.get(public_id=response.json()["id"]).to == TO


def test_a_national_number_without_region_is_refused_with_a_hint(world, api, enqueued):
    error = assert_error(_post(api, world.a.auth, {"to": "(415) 555-0123", "from": "Acme", "text": "hi"}),
                         400, "invalid_phone_number", field="to")
    assert "region" in error["message"]


@pytest.mark.parametrize("message_type, queue, validity", [
    ("otp", "otp", timedelta(minutes=10)),
    ("Transactional", "transactional", timedelta(hours=4)),
    ("MARKETING", "marketing", timedelta(hours=24)),
    (None, "transactional", timedelta(hours=4)),
])
def test_each_message_type_has_its_queue_and_default_validity(world, api, enqueued, message_type, queue, validity, us_daytime):
    body = {"to": TO, "from": "Acme", "text": "hi"}
    if message_type:
        body["message_type"] = message_type
    opted_in(world.a.tenant, TO)  # marketing needs the opt-in (the consent check)
    response = _post(api, world.a.auth, body)
    answer = response.json()
    assert answer["message_type"] == queue
    assert _when(answer["expires_at"]) - _when(answer["created_at"]) == validity
    assert [q for _, q in enqueued()] == [queue]


def test_it_accepts_a_phone_number_sender_and_stores_client_reference_metadata_and_validity(world, api, enqueued):
    # given a number A rents (a number it does not hold is refused: test_sender_check.py)
    number = world.a.extra["assignment"].number.number
    response = _post(api, world.a.auth, {
        "to": TO, "from": number, "text": "hi", "client_reference": "order-42",
        "metadata": {"order": 42, "tags": ["a", "b"]}, "validity_period": 3600,
    })
    body = response.json()
    assert response.status_code == 202, body
    assert body["from"] == number and body["client_reference"] == "order-42"
    assert body["metadata"] == {"order": 42, "tags": ["a", "b"]}
    assert _when(body["expires_at"]) - _when(body["created_at"]) == timedelta(hours=1)


def test_a_stored_template_is_rendered_by_name_with_its_variables(world, api, enqueued):
    # given A's stored template "alpha_otp" = "Your code is ${code}"
    response = _post(api, world.a.auth, {"to": TO, "from": "Acme", "template": "alpha_otp",
                                         "variables": {"code": 482913}})
    body = response.json()
    assert response.status_code == 202, body
    assert body["text"] == "Your code is 482913"
    assert Message.unscoped.get(public_id=body["id"]).template_ref == "alpha_otp"


def test_an_inline_template_is_rendered(world, api, enqueued):
    response = _post(api, world.a.auth, {"to": TO, "from": "Acme", "template": "OTP_${otp}",
                                         "variables": {"otp": "123456"}})
    assert response.json()["text"] == "OTP_123456"


def test_variable_values_are_inserted_as_text_never_evaluated(world, api, enqueued):
    # given values that look like placeholders or markup
    response = _post(api, world.a.auth, {"to": TO, "from": "Acme", "template": "OTP_${otp} ${name}",
                                         "variables": {"otp": "${otp}", "name": "${{7*7}}"}})
    # then they stay literal
    assert response.status_code == 202, response.json()
    assert response.json()["text"] == "OTP_${otp} ${{7*7}}"


def test_another_tenants_template_name_is_not_found(world, api, enqueued):
    # B's template "bravo_otp" does not exist for A
    assert_error(_post(api, world.a.auth, {"to": TO, "from": "Acme", "template": "bravo_otp",
                                           "variables": {"code": 1}}), 400, "template_not_found", field="template")


def test_smart_encoding_turns_curly_quotes_into_gsm_when_on(world, api, enqueued):
    body = {"to": TO, "from": "Acme", "text": "\u201ccurly\u201d \u2013 it\u2019s"}
    on = _post(api, world.a.auth, body).json()
    off = _post(api, world.a.auth, {**body, "smart_encoding": False}).json()
    assert (on["encoding"], on["text"]) == ("GSM-7", "\"curly\" - it's")
    assert (off["encoding"], off["text"]) == ("UCS-2", body["text"])
    assert Message.unscoped.get(public_id=on["id"]).smart_encoding is True
    assert Message.unscoped.get(public_id=off["id"]).smart_encoding is False


def test_segments_are_counted_per_encoding(world, api, enqueued):
    cases = [("a" * 160, "GSM-7", 1), ("a" * 161, "GSM-7", 2), ("€" * 80, "GSM-7", 1), ("€" * 81, "GSM-7", 2),
             ("ж" * 70, "UCS-2", 1), ("ж" * 71, "UCS-2", 2), ("😀" * 35, "UCS-2", 1)]
    for text, encoding, segments in cases:
        body = _post(api, world.a.auth, {"to": TO, "from": "Acme", "text": text}).json()
        assert (body["encoding"], body["segments"], body["characters"]) == (encoding, segments, len(text)), text


def test_a_future_scheduled_at_stores_it_scheduled_without_enqueueing(world, api, enqueued):
    at = timezone.now() + timedelta(hours=2)
    response = _post(api, world.a.auth, {"to": TO, "from": "Acme", "text": "later", "scheduled_at": at.isoformat()})
    body = response.json()
    assert response.status_code == 202, body
    assert body["status"] == "scheduled" and _when(body["scheduled_at"]) == at
    assert _when(body["expires_at"]) == at + timedelta(hours=4)  # validity counts from the scheduled time
    assert enqueued() == []
    assert history.statuses(Message.unscoped.get(public_id=body["id"])) == ["scheduled"]


def test_a_past_scheduled_at_means_now(world, api, enqueued):
    body = _post(api, world.a.auth, {"to": TO, "from": "Acme", "text": "now",
                                     "scheduled_at": (timezone.now() - timedelta(minutes=5)).isoformat()}).json()
    assert body["status"] == "queued" and body["scheduled_at"] is None and len(enqueued()) == 1


def test_it_ignores_body_fields_it_does_not_offer(world, api, enqueued):
    # given a body that tries to set the tenant, status, price and ids (BOPLA)
    response = _post(api, world.a.auth, {
        "to": TO, "from": "Acme", "text": "hi", "tenant": world.b.tenant.pk, "tenant_id": world.b.tenant.pk,
        "status": "delivered", "price": "0.00", "id": "msg_chosen", "public_id": "msg_chosen", "sequence": 99,
        "attempts": 5, "mode": "live", "api_key": world.b.api_key.public_id, "segments": 0, "encoding": "UCS-2",
    })
    body = response.json()
    # then none of them took effect
    assert response.status_code == 202, body
    message = Message.unscoped.get(public_id=body["id"])
    assert body["id"] != "msg_chosen" and body["status"] == "queued"
    assert message.tenant == world.a.tenant and message.api_key == world.a.api_key
    assert (message.mode, message.sequence, message.attempts) == ("test", 1, 0)
    assert (message.encoding, message.segments) == ("GSM-7", 1)
    assert not Message.unscoped.filter(tenant=world.b.tenant).exclude(pk=world.b.extra["message"].pk).exists()


# --- POST /v1/messages: every validation error ---------------------------------------------------------

BASE = {"to": TO, "from": "Acme", "text": "hi"}


@pytest.mark.parametrize("change, code, field", [
    ({"to": "+1415555012"}, "invalid_phone_number", "to"),
    ({"to": "not a number"}, "invalid_phone_number", "to"),
    ({"to": "0123"}, "invalid_phone_number", "to"),
    ({"from": "ABCDEFGHIJKL"}, "invalid_sender", "from"),  # 12 characters
    ({"from": "123-456"}, "invalid_sender", "from"),  # no letter
    ({"from": "Brand\u2122"}, "invalid_sender", "from"),  # not GSM-7
    ({"from": "Caf\u00e9"}, "invalid_sender", "from"),  # GSM-7, but not in the sender charset
    ({"from": "   "}, "blank", "from"),
    ({"message_type": "promo"}, "invalid_message_type", "message_type"),
    ({"text": ""}, "text_required", "text"),
    ({"text": "", "template": ""}, "text_required", "text"),
    ({"text": "", "template": "no_such_template"}, "template_not_found", "template"),
    ({"text": "", "template": "Your code is ${code}"}, "template_variable_missing", "variables.code"),
    ({"text": "", "template": "Hi ${name} ${code}", "variables": {"name": "x"}}, "template_variable_missing",
     "variables.code"),
    ({"text": "", "template": "Your code is ${code"}, "invalid_template", "template"),
    ({"text": "", "template": "Your code is ${}"}, "invalid_template", "template"),
    ({"text": "", "template": "Your code is ${1code}"}, "invalid_template", "template"),
    ({"text": "", "template": "Code ${c}", "variables": {"c": {"nested": 1}}}, "invalid_template_variable",
     "variables"),
    ({"validity_period": 72 * 3600 + 1}, "invalid_validity_period", "validity_period"),
    ({"validity_period": 59}, "invalid_validity_period", "validity_period"),
    ({"metadata": "not an object"}, "invalid_metadata", "metadata"),
    ({"metadata": [1, 2]}, "invalid_metadata", "metadata"),
    ({"metadata": []}, "invalid_metadata", "metadata"),
    ({"metadata": ""}, "invalid_metadata", "metadata"),
    ({"metadata": False}, "invalid_metadata", "metadata"),
    ({"metadata": {"blob": "x" * 4100}}, "invalid_metadata", "metadata"),
    ({"callback_url": "ftp://yourapp.example/webhook"}, "invalid_callback_url", "callback_url"),
    ({"callback_url": "yourapp.example/webhook"}, "invalid_callback_url", "callback_url"),
])
def test_it_refuses_invalid_input_by_code_and_field(world, api, enqueued, change, code, field):
    # given a valid body with one thing wrong
    count = Message.unscoped.count()
    # when posted
    response = _post(api, world.a.auth, {**BASE, **change})
    # then 400 with the code and field, and nothing stored or enqueued
    assert_error(response, 400, code, field=field)
    assert Message.unscoped.count() == count and enqueued() == []


def test_scheduled_at_more_than_30_days_ahead_is_refused(world, api, enqueued):
    at = timezone.now() + timedelta(days=30, minutes=5)
    assert_error(_post(api, world.a.auth, {**BASE, "scheduled_at": at.isoformat()}), 400, "invalid_scheduled_at",
                 field="scheduled_at")


def test_validity_period_bounds_are_inclusive(world, api, enqueued):
    assert _post(api, world.a.auth, {**BASE, "validity_period": 60}).status_code == 202
    assert _post(api, world.a.auth, {**BASE, "validity_period": 72 * 3600}).status_code == 202


def test_more_segments_than_the_account_allows_is_message_too_long(world, api, enqueued):
    # given an account limited to one segment
    world.a.tenant.max_message_segments = 1
    world.a.tenant.save(update_fields=["max_message_segments"])
    # then 160 GSM characters pass and 161 (two segments) are refused
    assert _post(api, world.a.auth, {**BASE, "text": "a" * 160}).status_code == 202
    error = assert_error(_post(api, world.a.auth, {**BASE, "text": "a" * 161}), 400, "message_too_long",
                         field="text")
    assert "2 segments" in error["message"]
    assert len(enqueued()) == 1


def test_missing_required_fields_are_listed_in_details(world, api, enqueued):
    error = assert_error(_post(api, world.a.auth, {"text": "hi"}), 400, "validation_error")
    assert {(d["field"], d["code"]) for d in error["details"]} == {("to", "required"), ("from", "required")}


def test_a_body_that_is_not_json_is_invalid_json(world, api, enqueued):
    response = api.generic("POST", URL, "{not json", content_type="application/json", **world.a.auth)
    assert_error(response, 400, "invalid_json")


# --- GET /v1/messages/{id} ---------------------------------------------------------------------------


def test_the_detail_shows_events_times_and_no_error_for_a_delivered_message(world, api):
    # given A's message dispatched through the simulator and delivered
    message = world.a.extra["message"]
    pipeline.message_dispatch(message_id=message.pk)
    message.refresh_from_db()
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=message.carrier_message_id, status="delivered")
    message.refresh_from_db()
    # when A reads it
    response = api.get(f"{URL}/{message.public_id}", **world.a.auth)
    # then it has the answer fields plus template_ref, sent_at, delivered_at, error, the events in order and
    # routing (the world's message has a route attempt on record), which names no carrier and no cost
    body = response.json()
    assert response.status_code == 200, body
    assert set(body) == ANSWER_FIELDS | {"template_ref", "sent_at", "delivered_at", "error", "events", "routing"}
    assert body["routing"]["reason"] == "cheapest of 1 route" and body["routing"]["quality_class"] == "unrated"
    assert "carrier" not in str(body["routing"]) and "cost" not in body["routing"]
    assert body["status"] == "delivered" and body["error"] is None
    assert _when(body["sent_at"]) == message.sent_at and _when(body["delivered_at"]) == message.delivered_at
    assert [(e["sequence"], e["status"], e["source"]) for e in body["events"]] == [
        (1, "queued", "api"), (2, "sending", "worker"), (3, "sent", "worker"), (4, "delivered", "carrier")]
    assert set(body["events"][0]) == {"sequence", "status", "source", "detail", "error_code",
                                      "carrier_error_code", "created_at"}


def test_the_detail_shows_the_error_of_a_failed_message(world, api):
    message = _send(world.a.tenant, ending="0002")
    pipeline.message_dispatch(message_id=message.pk)
    body = api.get(f"{URL}/{message.public_id}", **world.a.auth).json()
    assert body["status"] == "failed" and body["sent_at"] is None and body["delivered_at"] is None
    assert body["error"]["code"] == "carrier_rejected" and body["error"]["message"]
    assert body["events"][-1]["carrier_error_code"] == "0x0B"


def test_the_detail_reads_with_a_constant_number_of_queries(world, api, django_assert_max_num_queries):
    message = world.a.extra["message"]
    api.get("/v1/me", **world.a.auth)  # records the key's use, which writes once
    for status in ("sending", "sent", "delivered"):
        from messaging.lifecycle import message_transition

        message_transition(message_id=message.pk, to=status, source="worker")
    with django_assert_max_num_queries(8):
        assert len(api.get(f"{URL}/{message.public_id}", **world.a.auth).json()["events"]) == 4


@pytest.mark.parametrize("message_id", ["msg_doesnotexist00000000", "nope", "1"])
def test_an_unknown_message_id_is_404(world, api, message_id):
    assert_error(api.get(f"{URL}/{message_id}", **world.a.auth), 404, "not_found")


def test_another_tenants_message_is_404_like_a_missing_one(world, api):
    theirs = api.get(f"{URL}/{world.b.extra['message'].public_id}", **world.a.auth)
    missing = api.get(f"{URL}/msg_doesnotexist00000000", **world.a.auth)
    assert_error(theirs, 404, "not_found")
    assert theirs.json() == missing.json()


# --- GET /v1/messages -------------------------------------------------------------------------------


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def test_the_list_shows_only_the_tenants_messages_newest_first(world, api):
    second = _send(world.a.tenant)
    body = api.get(URL, **world.a.auth).json()
    assert set(body) == {"next", "previous", "results"}
    assert [m["id"] for m in body["results"]] == [second.public_id, world.a.extra["message"].public_id]
    assert set(body["results"][0]) == ANSWER_FIELDS


def test_the_list_filters_by_status_to_type_and_client_reference(world, api, us_daytime):
    # given A's messages of several kinds (and its world message: transactional, queued, alpha-ref-1)
    otp = _send(world.a.tenant, ending="0101", message_type="otp", client_reference="login-7")
    opted_in(world.a.tenant, "+14155550102")  # marketing needs the opt-in (the consent check)
    marketing = _send(world.a.tenant, ending="0102", message_type="marketing")
    canceled = _send(world.a.tenant, ending="0103")
    services.message_cancel(tenant=world.a.tenant, message=canceled)
    first = world.a.extra["message"].public_id
    # then each filter narrows the list
    get = lambda query: set(_ids(api.get(f"{URL}?{query}", **world.a.auth)))  # noqa: E731
    assert get("status=canceled") == {canceled.public_id}
    assert get("status=queued") == {otp.public_id, marketing.public_id, first}
    assert get("to=%2B14155550101") == {otp.public_id}
    assert get("message_type=otp") == {otp.public_id}
    assert get("message_type=marketing&status=queued") == {marketing.public_id}
    assert get("client_reference=login-7") == {otp.public_id}
    assert get("client_reference=alpha-ref-1") == {first}
    assert get("client_reference=bravo-ref-1") == set()  # B's reference finds nothing for A
    # and an unknown status is a validation error on that parameter
    assert_error(api.get(f"{URL}?status=lost", **world.a.auth), 400, "invalid_choice", field="status")


def test_the_list_filters_by_creation_time(world, api, time_machine):
    # given messages created on three consecutive days
    base = timezone.now() + timedelta(days=1)
    made = []
    for day in range(3):
        time_machine.move_to(base + timedelta(days=day), tick=False)
        made.append(_send(world.a.tenant).public_id)
    time_machine.move_to(base + timedelta(days=3), tick=False)
    after = (base + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    before = (base + timedelta(days=2)).isoformat().replace("+00:00", "Z")
    # then created_after is inclusive and created_before exclusive
    assert set(_ids(api.get(URL, {"created_after": after}, **world.a.auth))) == set(made[1:])
    assert set(_ids(api.get(URL, {"created_before": before}, **world.a.auth))) == {
        *made[:2], world.a.extra["message"].public_id}
    assert _ids(api.get(URL, {"created_after": after, "created_before": before}, **world.a.auth)) == [made[1]]
    assert_error(api.get(URL, {"created_after": "yesterday"}, **world.a.auth), 400, "invalid",
                 field="created_after")


def test_the_cursor_pages_through_every_message_once_even_with_ties(world, api, time_machine):
    # given seven more messages, five created in the same instant
    time_machine.move_to(timezone.now() + timedelta(minutes=1), tick=False)
    for _ in range(5):
        _send(world.a.tenant)
    time_machine.move_to(timezone.now() + timedelta(minutes=1), tick=False)
    _send(world.a.tenant)
    _send(world.a.tenant)
    # when A follows `next` two at a time
    url, seen, pages = f"{URL}?limit=2", [], 0
    while url:
        body = api.get(url, **world.a.auth).json()
        assert len(body["results"]) <= 2
        seen += [m["id"] for m in body["results"]]
        url, pages = body["next"], pages + 1
        assert pages < 20
    # then every message of A appears once, newest first, and none of B's
    expected = list(Message.unscoped.filter(tenant=world.a.tenant).order_by("-created_at", "-id")
                    .values_list("public_id", flat=True))
    assert seen == expected and len(seen) == 8 and pages == 4


def test_the_list_costs_a_constant_number_of_queries(world, api, django_assert_max_num_queries):
    # given the query count of a list of one message (after a first call recorded the key's use)
    api.get("/v1/me", **world.a.auth)
    with CaptureQueriesContext(connection) as one:
        assert len(_ids(api.get(URL, **world.a.auth))) == 1
    # when thirty more messages exist (sent faster than the default 20 a second: every send counts now)
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=100)
    world.a.tenant.refresh_from_db()
    for n in range(30):
        _send(world.a.tenant, ending=f"{1000 + n}")
    # then listing them costs no more
    with django_assert_max_num_queries(len(one.captured_queries)):
        assert len(_ids(api.get(URL, **world.a.auth))) == 31


# --- POST /v1/messages/{id}/cancel ---------------------------------------------------------------


def test_a_queued_message_can_be_canceled_once(world, api):
    message = world.a.extra["message"]
    # when A cancels it
    response = _post(api, world.a.auth, {}, url=f"{URL}/{message.public_id}/cancel")
    # then 200 with the canceled message and its events
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "canceled"
    assert [(e["status"], e["source"]) for e in body["events"]] == [("queued", "api"), ("canceled", "api")]
    message.refresh_from_db()
    assert message.status == Status.CANCELED
    # and a second cancel is a conflict that changes nothing
    again = _post(api, world.a.auth, {}, url=f"{URL}/{message.public_id}/cancel")
    assert_error(again, 409, "message_not_cancelable")
    assert history.statuses(message) == ["queued", "canceled"]
    # and the dispatch task that comes later sends nothing
    assert pipeline.message_dispatch(message_id=message.pk) is None
    message.refresh_from_db()
    assert message.status == Status.CANCELED


def test_a_scheduled_message_can_be_canceled(world, api):
    message = _send(world.a.tenant, scheduled_at=timezone.now() + timedelta(hours=1))
    response = _post(api, world.a.auth, {}, url=f"{URL}/{message.public_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"


def test_a_sent_message_cannot_be_canceled(world, api):
    message = world.a.extra["message"]
    pipeline.message_dispatch(message_id=message.pk)
    error = assert_error(_post(api, world.a.auth, {}, url=f"{URL}/{message.public_id}/cancel"), 409,
                         "message_not_cancelable")
    assert "sent" in error["message"]


def test_another_tenants_message_cannot_be_canceled(world, api):
    theirs = world.b.extra["message"]
    assert_error(_post(api, world.a.auth, {}, url=f"{URL}/{theirs.public_id}/cancel"), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.status == Status.QUEUED


# --- POST /v1/messages/quote ---------------------------------------------------------------------------


def test_a_quote_describes_the_message_and_stores_nothing(world, api, enqueued, shared):
    # given a text whose only UCS-2 characters are curly quotes
    text = "Hi \u201cAnn\u201d, your code is 1234"
    messages, events = Message.unscoped.count(), MessageEvent.unscoped.count()
    # when A asks for a quote
    response = _post(api, world.a.auth, {"to": "(415) 555-0123", "region": "US", "from": "Acme", "text": text,
                                         "message_type": "OTP"}, url=f"{URL}/quote")
    # then it shows what would be sent
    body = response.json()
    assert response.status_code == 200, body
    assert body == {
        "encoding": "GSM-7", "segments": 1, "characters": len(text), "units": len(text),
        "text": 'Hi "Ann", your code is 1234', "smart_encoded": True, "segments_without_smart_encoding": 1,
        "ucs2_characters": [{"character": "\u201c", "position": 3, "codepoint": "U+201C"},
                            {"character": "\u201d", "position": 7, "codepoint": "U+201D"}],
        "to": TO, "message_type": "otp", "price": None, "currency": None, "billed": False,  # billing off here
        # and the number a send would go from instead of the alphanumeric sender (the US takes none)
        "sender_substituted": {"requested": "Acme", "used": shared["US"]},
    }
    # and nothing was stored or enqueued
    assert Message.unscoped.count() == messages and MessageEvent.unscoped.count() == events
    assert enqueued() == []


def test_a_quote_without_smart_encoding_shows_the_ucs2_cost(world, api, enqueued):
    text = "\u2019" + "a" * 70
    body = _post(api, world.a.auth, {**BASE, "text": text, "smart_encoding": False}, url=f"{URL}/quote").json()
    assert (body["encoding"], body["segments"], body["units"], body["smart_encoded"]) == ("UCS-2", 2, 71, False)
    assert body["text"] == text and body["ucs2_characters"][0]["position"] == 0
    smart = _post(api, world.a.auth, {**BASE, "text": text}, url=f"{URL}/quote").json()
    assert (smart["encoding"], smart["segments"], smart["segments_without_smart_encoding"]) == ("GSM-7", 1, 2)


def test_a_quote_counts_extension_characters_and_emoji(world, api):
    euro = _post(api, world.a.auth, {**BASE, "text": "5€"}, url=f"{URL}/quote").json()
    assert (euro["encoding"], euro["characters"], euro["units"]) == ("GSM-7", 2, 3)
    emoji = _post(api, world.a.auth, {**BASE, "text": "ok 😀"}, url=f"{URL}/quote").json()
    assert (emoji["encoding"], emoji["characters"], emoji["units"]) == ("UCS-2", 4, 5)
    assert emoji["ucs2_characters"] == [{"character": "😀", "position": 3, "codepoint": "U+1F600"}]


def test_a_quote_validates_like_a_send(world, api):
    assert_error(_post(api, world.a.auth, {**BASE, "to": "+15551234567"}, url=f"{URL}/quote"), 400,
                 "invalid_phone_number", field="to")
    assert_error(_post(api, world.a.auth, {**BASE, "text": "", "template": "Code ${code}"}, url=f"{URL}/quote"),
                 400, "template_variable_missing", field="variables.code")


# --- /v1/templates -------------------------------------------------------------------------------------


def test_a_template_is_created_read_listed_updated_and_deleted(world, api):
    # create
    response = _post(api, world.a.auth, {"name": "welcome", "body": "Hi ${name}, code ${code}",
                                         "message_type": "Marketing", "description": "signup"}, url=TEMPLATES)
    body = response.json()
    assert response.status_code == 201, body
    assert body["id"].startswith("tpl_") and body["name"] == "welcome" and body["message_type"] == "marketing"
    assert body["placeholders"] == ["name", "code"] and body["description"] == "signup"
    assert set(body) == {"id", "name", "body", "message_type", "description", "placeholders", "created_at",
                         "updated_at"}
    template = MessageTemplate.unscoped.get(public_id=body["id"])
    assert template.tenant == world.a.tenant
    # read
    assert api.get(f"{TEMPLATES}/{body['id']}", **world.a.auth).json() == body
    # list: A's two templates, newest first, none of B's
    listed = api.get(TEMPLATES, **world.a.auth).json()["results"]
    assert [t["name"] for t in listed] == ["welcome", "alpha_otp"]
    # update
    patched = api.patch(f"{TEMPLATES}/{body['id']}", {"body": "Welcome ${name}"}, format="json", **world.a.auth)
    assert patched.status_code == 200, patched.json()
    assert patched.json()["placeholders"] == ["name"] and patched.json()["name"] == "welcome"
    template.refresh_from_db()
    assert template.body == "Welcome ${name}"
    # and it is used for sending
    sent = _post(api, world.a.auth, {**BASE, "text": "", "template": "welcome", "variables": {"name": "Ann"}})
    assert sent.json()["text"] == "Welcome Ann"
    # delete
    assert api.delete(f"{TEMPLATES}/{body['id']}", **world.a.auth).status_code == 204
    assert not MessageTemplate.unscoped.filter(pk=template.pk).exists()
    assert_error(api.get(f"{TEMPLATES}/{body['id']}", **world.a.auth), 404, "not_found")


def test_a_duplicate_template_name_is_a_conflict(world, api):
    # B may use the same name as A; A may not use it twice
    assert _post(api, world.b.auth, {"name": "alpha_otp", "body": "x"}, url=TEMPLATES).status_code == 201
    assert_error(_post(api, world.a.auth, {"name": "alpha_otp", "body": "x"}, url=TEMPLATES), 409,
                 "template_name_taken", field="name")
    other = _post(api, world.a.auth, {"name": "other", "body": "x"}, url=TEMPLATES).json()
    assert_error(api.patch(f"{TEMPLATES}/{other['id']}", {"name": "alpha_otp"}, format="json", **world.a.auth),
                 409, "template_name_taken", field="name")
    assert MessageTemplate.unscoped.filter(tenant=world.a.tenant, name="alpha_otp").count() == 1


@pytest.mark.parametrize("change, code, field", [
    ({"body": "Hi ${name"}, "invalid_template", "body"),
    ({"body": "Hi ${first name}"}, "invalid_template", "body"),
    ({"body": "Hi ${}"}, "invalid_template", "body"),
    ({"name": "has space"}, "invalid_template_name", "name"),
    ({"name": "x" * 101}, "max_length", "name"),
    ({"message_type": "promo"}, "invalid_message_type", "message_type"),
])
def test_an_invalid_template_is_refused(world, api, change, code, field):
    count = MessageTemplate.unscoped.count()
    assert_error(_post(api, world.a.auth, {"name": "ok", "body": "Hi ${name}", **change}, url=TEMPLATES), 400,
                 code, field=field)
    template = world.a.extra["template"]
    assert_error(api.patch(f"{TEMPLATES}/{template.public_id}", change, format="json", **world.a.auth), 400,
                 code, field=field)
    assert MessageTemplate.unscoped.count() == count
    template.refresh_from_db()
    assert (template.name, template.body) == ("alpha_otp", "Your code is ${code}")


def test_another_tenants_template_is_404_for_every_method(world, api):
    theirs = world.b.extra["template"]
    url = f"{TEMPLATES}/{theirs.public_id}"
    assert_error(api.get(url, **world.a.auth), 404, "not_found")
    assert_error(api.patch(url, {"body": "pwned"}, format="json", **world.a.auth), 404, "not_found")
    assert_error(api.delete(url, **world.a.auth), 404, "not_found")
    theirs.refresh_from_db()
    assert theirs.body == "Your code is ${code}"


# --- scopes and authentication --------------------------------------------------------------------------


def test_a_read_only_key_can_read_but_not_send(world, api, enqueued):
    _, secret = make_api_key(world.a.tenant, scopes=["messages:read"], name="reader")
    auth = bearer(secret)
    message = world.a.extra["message"]
    assert api.get(URL, **auth).status_code == 200
    assert api.get(f"{URL}/{message.public_id}", **auth).status_code == 200
    assert api.get(TEMPLATES, **auth).status_code == 200
    count = Message.unscoped.count()
    assert_error(_post(api, auth, BASE), 403, "insufficient_scope")
    assert_error(_post(api, auth, BASE, url=f"{URL}/quote"), 403, "insufficient_scope")
    assert_error(_post(api, auth, {}, url=f"{URL}/{message.public_id}/cancel"), 403, "insufficient_scope")
    assert_error(_post(api, auth, {"name": "n", "body": "b"}, url=TEMPLATES), 403, "insufficient_scope")
    assert_error(api.delete(f"{TEMPLATES}/{world.a.extra['template'].public_id}", **auth), 403,
                 "insufficient_scope")
    assert Message.unscoped.count() == count and enqueued() == []
    message.refresh_from_db()
    assert message.status == Status.QUEUED


def test_a_send_only_key_can_send_but_not_read(world, api, enqueued):
    _, secret = make_api_key(world.a.tenant, scopes=["messages:send"], name="sender")
    auth = bearer(secret)
    response = _post(api, auth, BASE)
    assert response.status_code == 202, response.json()
    assert len(enqueued()) == 1
    assert_error(api.get(URL, **auth), 403, "insufficient_scope")
    assert_error(api.get(f"{URL}/{response.json()['id']}", **auth), 403, "insufficient_scope")


@pytest.mark.parametrize("scopes", [["numbers"], ["billing:read"], ["compliance"]])
def test_keys_without_a_messages_scope_are_refused(world, api, scopes):
    _, secret = make_api_key(world.a.tenant, scopes=scopes, name="other")
    assert_error(_post(api, bearer(secret), BASE), 403, "insufficient_scope")
    assert_error(api.get(URL, **bearer(secret)), 403, "insufficient_scope")


def test_without_a_key_or_with_a_wrong_one_it_is_401(world, api):
    count = Message.unscoped.count()
    assert_error(_post(api, {}, BASE), 401, "authentication_required")
    assert_error(_post(api, bearer("sk_test_" + "x" * 40), BASE), 401, "invalid_api_key")
    assert_error(api.get(URL), 401, "authentication_required")
    assert Message.unscoped.count() == count


# --- Idempotency-Key --------------------------------------------------------------------------------


def test_a_retried_send_with_the_same_idempotency_key_makes_one_message(world, api, enqueued):
    # given a send with an Idempotency-Key
    count = Message.unscoped.count()
    first = _post(api, world.a.auth, EXAMPLE, HTTP_IDEMPOTENCY_KEY="order-42-otp")
    assert first.status_code == 202, first.json()
    # when the client retries it (say its connection dropped) five times
    retries = [_post(api, world.a.auth, EXAMPLE, HTTP_IDEMPOTENCY_KEY="order-42-otp") for _ in range(5)]
    # then every retry gets the first answer, byte for byte, marked as a replay
    assert all(r.status_code == 202 and r.content == first.content for r in retries)
    assert all(r["Idempotent-Replayed"] == "true" for r in retries) and "Idempotent-Replayed" not in first
    # and there is one message, its first event only and one dispatch
    assert Message.unscoped.count() == count + 1
    message = Message.unscoped.get(public_id=first.json()["id"])
    assert history.statuses(message) == ["queued"] and enqueued() == [(message.pk, "otp")]


def test_an_idempotency_key_reused_for_another_message_is_refused(world, api, enqueued):
    assert _post(api, world.a.auth, BASE, HTTP_IDEMPOTENCY_KEY="k1").status_code == 202
    count = Message.unscoped.count()
    assert_error(_post(api, world.a.auth, {**BASE, "text": "another"}, HTTP_IDEMPOTENCY_KEY="k1"), 422,
                 "idempotency_key_reused")
    assert Message.unscoped.count() == count and len(enqueued()) == 1


def test_idempotency_keys_are_per_tenant(world, api, enqueued):
    a = _post(api, world.a.auth, BASE, HTTP_IDEMPOTENCY_KEY="same-key").json()
    b = _post(api, world.b.auth, BASE, HTTP_IDEMPOTENCY_KEY="same-key").json()
    assert a["id"] != b["id"]
    assert Message.unscoped.get(public_id=b["id"]).tenant == world.b.tenant


def test_a_refused_send_is_replayed_as_refused(world, api, enqueued):
    # a 4xx is the answer to that request: a retry of the same request gets it again
    first = _post(api, world.a.auth, {**BASE, "to": "+15551234567"}, HTTP_IDEMPOTENCY_KEY="bad-number")
    again = _post(api, world.a.auth, {**BASE, "to": "+15551234567"}, HTTP_IDEMPOTENCY_KEY="bad-number")
    assert_error(again, 400, "invalid_phone_number", field="to")
    assert again.content == first.content and again["Idempotent-Replayed"] == "true"


def test_a_cancel_and_a_template_create_are_idempotent_too(world, api):
    url = f"{URL}/{world.a.extra['message'].public_id}/cancel"
    first = _post(api, world.a.auth, {}, url=url, HTTP_IDEMPOTENCY_KEY="cancel-1")
    again = _post(api, world.a.auth, {}, url=url, HTTP_IDEMPOTENCY_KEY="cancel-1")
    assert first.status_code == again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    created = [_post(api, world.a.auth, {"name": "t1", "body": "x"}, url=TEMPLATES, HTTP_IDEMPOTENCY_KEY="tpl-1")
               for _ in range(2)]
    assert [r.status_code for r in created] == [201, 201] and created[0].content == created[1].content
    assert MessageTemplate.unscoped.filter(tenant=world.a.tenant, name="t1").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_with_one_idempotency_key_make_one_message(world, monkeypatch):
    """8 threads behind a barrier, 3 rounds: one message and one dispatch per key; each answer is that
    message (202) or 409 idempotency_key_in_use with Retry-After."""
    from messaging.tasks import message_dispatch_task

    dispatched: list[int] = []
    monkeypatch.setattr(message_dispatch_task, "apply_async", lambda args, **kw: dispatched.append(args[0]))
    world.a.tenant.messages_per_second = 1000  # this test is about the key, not the rate
    world.a.tenant.save(update_fields=["messages_per_second"])
    threads_per_round = 8
    for round_no in range(3):
        key, body = f"race-{round_no}", json.dumps({**BASE, "client_reference": f"race-{round_no}"})
        barrier, answers = threading.Barrier(threads_per_round), []

        def send(key=key, body=body, barrier=barrier, answers=answers):
            try:
                client = Client()
                barrier.wait(timeout=30)
                answers.append(client.post(URL, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key,
                                           **world.a.auth))
            finally:
                connections.close_all()  # this thread's own connection

        threads = [threading.Thread(target=send) for _ in range(threads_per_round)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == threads_per_round
        assert {r.status_code for r in answers} <= {202, 409}, [r.content for r in answers]
        accepted = [r for r in answers if r.status_code == 202]
        assert accepted and len({r.json()["id"] for r in accepted}) == 1
        assert all(r.json()["error"]["code"] == "idempotency_key_in_use" and r["Retry-After"] == "1"
                   for r in answers if r.status_code == 409)
        made = Message.unscoped.filter(tenant=world.a.tenant, client_reference=f"race-{round_no}")
        assert made.count() == 1, f"round {round_no}"
        assert dispatched.count(made.get().pk) == 1


# --- the tenant's rate limit ------------------------------------------------------------------------------


@pytest.mark.skipif(not settings.REDIS_URL, reason="KNOWN DEFECT, open: without REDIS_URL the in-process bucket "
                    "admits one message fewer than this exact count after the world fixture's sends (docs/rate-limits.md)")
def test_sends_beyond_the_tenants_rate_get_429_and_store_nothing(world, api, enqueued, time_machine):
    # given tenant A limited to 3 messages a second, and a frozen clock 2 s past the world fixture's sends
    time_machine.move_to(timezone.now() + timedelta(seconds=2), tick=False)
    world.a.tenant.messages_per_second = 3
    world.a.tenant.save(update_fields=["messages_per_second"])
    count = Message.unscoped.count()
    # when A sends 5 at once
    answers = [_post(api, world.a.auth, BASE) for _ in range(5)]
    # then 3 are accepted and 2 refused with 429 rate_limited and a whole Retry-After
    assert [r.status_code for r in answers] == [202, 202, 202, 429, 429]
    assert_error(answers[-1], 429, "rate_limited")
    assert int(answers[-1]["Retry-After"]) >= 1
    assert Message.unscoped.count() == count + 3 and len(enqueued()) == 3
    # and reading, quoting and B's sends are not limited by A's sends
    assert api.get(URL, **world.a.auth).status_code == 200
    assert _post(api, world.a.auth, BASE, url=f"{URL}/quote").status_code == 200
    assert _post(api, world.b.auth, BASE).status_code == 202
    # and a second later A may send again
    time_machine.shift(timedelta(seconds=1))
    assert _post(api, world.a.auth, BASE).status_code == 202


@pytest.mark.skipif(not settings.REDIS_URL, reason="KNOWN DEFECT, open: without REDIS_URL the in-process bucket "
                    "admits one message fewer than this exact count after the world fixture's sends (docs/rate-limits.md)")
def test_a_429_is_not_stored_for_the_idempotency_key(world, api, enqueued, time_machine):
    # given A at its limit of 1 a second (the clock 2 s past the world fixture's own sends, whose slots at the
    # old limit could otherwise still be ahead of now and refuse the first send here: a flake under CI)
    time_machine.move_to(timezone.now() + timedelta(seconds=2), tick=False)
    world.a.tenant.messages_per_second = 1
    world.a.tenant.save(update_fields=["messages_per_second"])
    assert _post(api, world.a.auth, BASE).status_code == 202
    # when a keyed send is refused, and retried after a second
    assert _post(api, world.a.auth, {**BASE, "text": "k"}, HTTP_IDEMPOTENCY_KEY="later").status_code == 429
    time_machine.shift(timedelta(seconds=1))
    retry = _post(api, world.a.auth, {**BASE, "text": "k"}, HTTP_IDEMPOTENCY_KEY="later")
    # then the retry runs (it is not a replay of the 429)
    assert retry.status_code == 202 and "Idempotent-Replayed" not in retry
    assert len(enqueued()) == 2


def test_it_accepts_a_long_inline_template_and_keeps_it_as_the_template_ref(world, api):
    # given an inline template longer than 500 characters (the API takes up to 10,000); when sent
    body = "Your order ${order}" + " is on its way." * 40
    response = api.post(URL, {"to": TO, "from": "YourBrand", "template": body, "variables": {"order": "42"}},
                        format="json", **world.a.auth)
    # then it is accepted (it was a 500: the reference did not fit its column), and kept whole
    assert response.status_code == 202, response.content[:300]
    assert Message.unscoped.get(public_id=response.json()["id"]).template_ref == body
