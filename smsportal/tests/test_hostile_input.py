"""Hostile input anywhere in /v1 gets a 4xx in our error shape, never a 5xx.

The issue's cases first, one test each; then Hypothesis over every /v1 route (the walk fails on a
route this file does not know): NUL bytes and lone surrogates, numbers beyond 64 bits, 1e400, NaN
and Infinity, deep nesting, and odd date-times (year 0 or 10000, offsets Python takes and
PostgreSQL refuses), in any body field, any query parameter and any path id. Through Django's test
client, on the test database (PostgreSQL in CI: it is PostgreSQL that refuses NULs and offsets).
"""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.tests.api_assertions import DETAIL_KEYS, ERROR_KEYS, assert_error
from smsportal.api.parsers import MAX_DEPTH
from smsportal.tests.test_api_views import _v1_views

pytestmark = pytest.mark.django_db

TO = "+14155550123"
SEND = {"to": TO, "from": "Alpha", "text": "Your code is 123456", "message_type": "otp", "region": "US",
        "validity_period": 600, "client_reference": "ref-1", "metadata": {"order": 42}, "smart_encoding": True,
        "callback_url": "https://hooks.example/sms", "scheduled_at": None}


def _deep(levels: int, opener: str = "{") -> str:
    if opener == "[":
        return "[" * levels + "1" + "]" * levels
    return '{"a":' * levels + "1" + "}" * levels


def _raw_body(fields: dict, /, **raw: str) -> str:
    """`fields` as JSON, with each of `raw` spliced in as JSON text as it is (NaN, 1e400, deep nesting...)."""
    parts = [f"{json.dumps(name)}: {json.dumps(value)}" for name, value in fields.items() if name not in raw]
    parts += [f"{json.dumps(name)}: {text}" for name, text in raw.items()]
    return "{" + ", ".join(parts) + "}"


def assert_no_crash(response) -> None:
    """Not a 5xx; an error is our JSON shape."""
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code < 400:
        return
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert set(error) <= ERROR_KEYS and {"code", "message"} <= set(error), error
    assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), error
    for item in error.get("details", []):
        assert set(item) <= DETAIL_KEYS, item


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """SEND's "Alpha" to a US number goes from a shared US number (sender substitution: the US takes no
    alphanumeric sender; compliance/tests/test_sender_ids.py)."""
    from numbers.tests.factories import shared_senders

    shared_senders("US", "CA")


def _post(api, side, url: str, body: str):
    return api.generic("POST", url, body, content_type="application/json", **side.auth)


# --- the cases ----------------------------------------------------------------------------


def test_a_deeply_nested_metadata_is_a_400_json_too_deep(world, api):
    response = _post(api, world.a, "/v1/messages", _raw_body(SEND, metadata=_deep(5000)))
    assert_error(response, 400, "json_too_deep")


def test_nesting_beyond_the_limit_names_the_field(world, api):
    assert _post(api, world.a, "/v1/messages", _raw_body(SEND, metadata=_deep(MAX_DEPTH - 1))).status_code == 202
    response = _post(api, world.a, "/v1/messages", _raw_body(SEND, metadata=_deep(MAX_DEPTH)))
    error = assert_error(response, 400, "json_too_deep", field="metadata" + ".a" * (MAX_DEPTH - 1))
    assert str(MAX_DEPTH) in error["message"]


@pytest.mark.parametrize("seconds", ["1e30", str(10**15), str(10**30), "-1e30"])
def test_a_huge_validity_period_is_a_400(world, api, seconds):
    response = _post(api, world.a, "/v1/messages", _raw_body(SEND, validity_period=seconds))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "validity_period"


@pytest.mark.parametrize("url", ["/v1/messages/msg_%00", "/v1/templates/tpl_%00", "/v1/numbers/leases/lse_%00",
                                 "/v1/webhook-endpoints/whe_%00", "/v1/number-pools/pool_%00",
                                 "/v1/numbers/leases/%00/messages", "/v1/inbound-messages/inb_%00x"])
def test_a_nul_byte_in_an_id_is_a_404_like_any_unknown_id(world, api, url):
    assert_error(api.get(url, **world.a.auth), 404, "not_found")


def test_a_nul_byte_in_a_portal_id_is_a_404(world, client):
    from accounts.tests.factories import login_verified

    login_verified(client, world.a.owner)
    assert client.get("/portal/messages/msg_%00/").status_code == 404


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize("value, status", [
    ("2026-02-11T13:24:07+23:59", 200),  # Python accepts the offset, PostgreSQL does not: read as UTC
    ("2026-02-11T13:24:07-23:59", 200),
    ("0001-01-01T00:00:00+01:00", 400),  # before year 1 in UTC
    ("9999-12-31T23:59:59-01:00", 400),  # after 9999 in UTC
])
def test_an_odd_date_filter_is_read_in_utc_or_refused(world, api, name, value, status):
    response = api.get("/v1/messages", {name: value}, **world.a.auth)
    if status == 400:
        assert_error(response, 400, "overflow", field=name)
    else:
        assert response.status_code == 200, response.content


def test_an_offset_date_filter_means_the_same_instant(world, api):
    created = world.a.extra["message"].created_at
    just_before = (created - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=23, minutes=59)))
    results = api.get("/v1/messages", {"created_after": just_before.isoformat()}, **world.a.auth).json()["results"]
    assert world.a.extra["message"].public_id in [m["id"] for m in results]


@pytest.mark.parametrize("raw, code, field", [
    ('{"order": "a\\u0000b"}', "null_characters_not_allowed", "metadata.order"),
    ('{"a\\u0000": 1}', "null_characters_not_allowed", "metadata"),
    ('{"order": "\\ud800"}', "invalid_json", "metadata.order"),
    ('{"order": 1e400}', "number_out_of_range", "metadata.order"),
    ('{"order": 9223372036854775808}', "number_out_of_range", "metadata.order"),
    ('{"order": [1, -9223372036854775809]}', "number_out_of_range", "metadata.order[1]"),
])
def test_what_postgresql_cannot_store_is_refused_by_the_parser(world, api, raw, code, field):
    assert_error(_post(api, world.a, "/v1/messages", _raw_body(SEND, metadata=raw)), 400, code, field=field)


def test_a_nul_byte_in_a_template_variable_is_refused(world, api):
    fields = {**SEND, "template": "Code ${code}"}
    del fields["text"]
    response = _post(api, world.a, "/v1/messages", _raw_body(fields, variables='{"code": "1\\u00002"}'))
    assert_error(response, 400, "null_characters_not_allowed", field="variables.code")


def test_the_limits_leave_ordinary_numbers_alone(world, api):
    metadata = {"big": 2**63 - 1, "small": -(2**63), "float": 1e308, "nested": [[{"ok": True}]]}
    response = _post(api, world.a, "/v1/messages", json.dumps({**SEND, "metadata": metadata}))
    assert response.status_code == 202, response.content
    assert response.json()["metadata"] == metadata


# --- Hypothesis over every /v1 route --------------------------------------------------------------

# Write routes and a body they accept (ids filled in from the world); the others take no body.
BODIES = {
    "/v1/api-keys": {"name": "ci", "mode": "test", "scopes": ["messages:send"], "expires_at": "2030-01-01T00:00:00Z"},
    "/v1/ip-allowlist": {"cidr": "203.0.113.0/24", "api_key": "{api_key_id}", "note": "office"},
    "/v1/messages": SEND,
    "/v1/messages/quote": SEND,
    "/v1/messages/batch": {"defaults": {"from": SEND["from"]}, "messages": [SEND]},
    "/v1/templates": {"name": "welcome", "body": "Hi ${name}", "message_type": "marketing", "description": "d"},
    "/v1/templates/{template_id}": {"name": "welcome2", "body": "Hello ${name}"},
    "/v1/webhook-endpoints": {"url": "https://hooks.example/in", "events": ["message.delivered"],
                              "description": "d", "enabled": True},
    "/v1/webhook-endpoints/{endpoint_id}": {"url": "https://hooks.example/in2", "enabled": False},
    "/v1/numbers": {"country": "GB", "type": "local", "capability": "sms", "contains": "12"},
    "/v1/numbers/leases": {"country": "GB", "ttl_seconds": 900, "type": "local", "capability": "sms",
                           "callback_url": "", "expiring_notice_seconds": 60},
    "/v1/numbers/leases/{lease_id}/extend": {"ttl_seconds": 60},
    "/v1/simulator/inbound": {"to": "{lease_number}", "from": "+447700900123", "text": "hi",
                              "carrier_message_id": "c-1"},
    "/v1/number-pools": {"name": "alerts", "description": "d", "sticky_sender": True, "geo_match": True,
                         "numbers": ["{lease_number}"]},
    "/v1/number-pools/{pool_id}": {"description": "d2", "add_numbers": ["{lease_number}"],
                                             "remove_numbers": []},
    "/v1/billing/savings": {"volumes": {"GB": 10000, "US": 50000}, "message_type": "otp"},
    "/v1/consents": {"phone": "+14155550190", "status": "opted_in", "scope": "tenant", "source": "web_form",
                     "consent_text": "Offers by SMS", "consent_version": "v1", "consented_at": "2026-01-01T00:00:00Z",
                     "ip": "203.0.113.7", "user_agent": "ua", "page_url": "https://shop.example/"},
    "/v1/suppressions": {"phone": "+14155550191", "scope": "sender", "sender": "{lease_number}", "reason": "r"},
    "/v1/erasure-requests": {"phone": "+14155550192"},
    "/v1/sender-ids": {"value": "YourBrand", "countries": ["IN"], "use_case": "codes", "sample_messages": ["hi"]},
}
# Write routes that take no body (their fuzz is the whole-body test).
# (/v1/sender-ids/{sender_id}/documents takes multipart/form-data: a JSON body is a 415, which the whole-body fuzz
# posts; compliance/tests/test_sender_ids.py tests its files.)
NO_BODY = {"/v1/sender-ids/{sender_id}/documents", "/v1/messages/{message_id}/cancel",
           "/v1/webhook-endpoints/callback-secret",
           "/v1/webhook-endpoints/{endpoint_id}/rotate-secret", "/v1/webhook-deliveries/{delivery_id}/resend"}
# Query parameters each list reads (plus the pagination's).
QUERIES = {
    "/v1/messages": ["status", "to", "message_type", "client_reference", "created_after", "created_before"],
    "/v1/inbound-messages": ["to", "from", "lease", "has_code", "received_after", "received_before"],
    "/v1/webhook-deliveries": ["endpoint", "message", "status", "event_type"],
    "/v1/numbers/available": ["country", "type", "capability", "contains"],
    "/v1/numbers/leases/{lease_id}/messages": ["wait"],
    "/v1/consents": ["phone", "status"],
    "/v1/suppressions": ["phone"],
}
# Routes left out, each with why.
SKIPPED = {
    "/v1/webhook-endpoints/{endpoint_id}/test": "sends a real HTTP request to the endpoint at once",
    "/v1/openapi.json": "the schema, not an API operation",
    "/v1/docs": "the documentation page",
}
METHODS = ("get", "post", "patch", "delete")

ODD_DATETIMES = [
    "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59.999999-14:00", "2026-02-11T13:24:07+23:59",
    "2026-02-11T13:24:07-23:59", "2026-02-11T13:24:07+15:00", "2026-02-11T13:24:07+99:99",
    "2026-02-30T00:00:00Z", "2026-02-11T24:00:00Z", "2026-02-11T13:24:07.1234567890Z", "-2026-02-11T00:00:00Z",
    "9999-12-31", "0001-01-01", "2026-02-11T13:24:07\x00Z",
]
datetimes = st.one_of(
    st.sampled_from(ODD_DATETIMES),
    st.builds(lambda at, minutes: at.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat(),
              st.datetimes(), st.integers(-1439, 1439)),
)
numbers = st.one_of(
    st.sampled_from(["1e400", "-1e400", "1e308", "-1e308", "1e30", "NaN", "Infinity", "-Infinity", "-0.0",
                     str(2**63), str(-(2**63) - 1), str(10**50), "-1", "0"]),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
texts = st.one_of(st.text(max_size=30), st.sampled_from(["\x00", "a\x00b", "msg_\x00", "+1415555\x000123"]))
raw_texts = st.one_of(texts.map(json.dumps), st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\u0000"']))
scalars = st.one_of(raw_texts, numbers, datetimes.map(json.dumps), st.sampled_from(["true", "null", "[]", "{}"]))
hostile_json = st.one_of(
    scalars,
    scalars.map(lambda text: f"[{text}]"),
    scalars.map(lambda text: f'{{"k": {text}}}'),
    st.builds(_deep, st.sampled_from([MAX_DEPTH - 1, MAX_DEPTH + 1, 500, 999, 1000, 5000, 50_000]),
              st.sampled_from(["[", "{"])),
)
hostile_query = st.one_of(texts, datetimes, numbers)


def _spelled(route: str) -> str:
    """A route as the schema writes it: /v1/templates/{template_id}."""
    return re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _routes(*, skipped: bool = False) -> dict[str, type]:
    routes = {_spelled(route): view for route, view in _v1_views()}
    return routes if skipped else {route: view for route, view in routes.items() if route not in SKIPPED}


def _ids(world) -> dict[str, str]:
    extra = world.a.extra
    return {"api_key_id": world.a.api_key.public_id, "entry_id": world.a.allowlist_entry.public_id,
            "message_id": extra["message"].public_id, "template_id": extra["template"].public_id,
            "endpoint_id": extra["webhook_endpoint"].public_id, "delivery_id": extra["webhook_delivery"].public_id,
            "lease_id": extra["lease"].public_id, "number_id": extra["assignment"].number.public_id,
            "inbound_id": extra["inbound"].public_id, "pool_id": extra["pool"].public_id,
            "suppression_id": extra["suppression"].public_id,
            "invoice_id": extra["invoice"].public_id, "lease_number": extra["lease"].number.number, "iso": "US",
            "sender_id": extra["sender_id"].public_id}


def _url(route: str, ids: dict[str, str], **replace: str) -> str:
    return re.sub(r"{(\w+)}", lambda match: replace.get(match[1], ids[match[1]]), route)


def _filled(value, ids: dict[str, str]):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):  # "{lease_number}"
        return ids[value[1:-1]]
    if isinstance(value, list):
        return [_filled(item, ids) for item in value]
    return value


@pytest.fixture
def hostile(world):
    """World A's key, with its send limit out of the way (this is about input, not rates), and numbers to rent."""
    from numbers.models import NumberType
    from numbers.tests.factories import stock

    from compliance.tests.consent_helpers import consent_rows

    stock(3, country="GB", type=NumberType.LOCAL, start=300)
    consent_rows(world)
    world.a.tenant.messages_per_second = 1_000_000
    world.a.tenant.save(update_fields=["messages_per_second"])
    return world


def _request(api, world, method: str, url: str, body: str | None = None):
    cache.clear()  # the per-key request limit would answer 429 before the input is looked at
    api.raise_request_exception = False
    if body is None:
        return api.generic(method.upper(), url, **world.a.auth)
    return api.generic(method.upper(), url, body, content_type="application/json", **world.a.auth)


def test_every_v1_route_is_covered_here():
    routes = _routes(skipped=True)
    assert set(SKIPPED) <= set(routes), "a skipped route is gone: remove it from SKIPPED"
    assert set(BODIES) | set(QUERIES) | NO_BODY <= set(routes), "a route named here is gone"
    writes = {route for route, view in routes.items() if hasattr(view, "post") or hasattr(view, "patch")}
    assert writes - set(BODIES) - NO_BODY - set(SKIPPED) == set(), "give these write routes a body in BODIES"


FUZZ = hypothesis_settings(max_examples=200, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(data=st.data())
def test_hostile_bodies_never_give_a_5xx(hostile, api, data):
    ids = _ids(hostile)
    route = data.draw(st.sampled_from(sorted(BODIES)), label="route")
    base = {name: _filled(value, ids) for name, value in BODIES[route].items()}
    field = data.draw(st.one_of(st.sampled_from(sorted(base)), st.sampled_from(["metadata", "variables"]), texts),
                      label="field")
    raw = data.draw(hostile_json, label="value")
    method = "patch" if "{" in route and not route.endswith("/extend") else "post"
    response = _request(api, hostile, method, _url(route, ids), _raw_body(base, **{field: raw}))
    assert_no_crash(response)


@FUZZ
@given(data=st.data())
def test_hostile_whole_bodies_never_give_a_5xx(hostile, api, data):
    ids = _ids(hostile)
    route = data.draw(st.sampled_from(sorted(r for r, view in _routes().items() if hasattr(view, "post"))))
    body = data.draw(hostile_json, label="body")
    assert_no_crash(_request(api, hostile, "post", _url(route, ids), body))


@FUZZ
@given(data=st.data())
def test_hostile_queries_never_give_a_5xx(hostile, api, data):
    ids = _ids(hostile)
    gets = sorted(r for r, view in _routes().items() if hasattr(view, "get"))
    # Mostly the routes with filters, and their filters (a repeated entry is drawn more often).
    route = data.draw(st.sampled_from(sorted(QUERIES) * 9 + gets), label="route")
    names = st.one_of(st.sampled_from(QUERIES.get(route, []) * 9 + ["limit", "cursor"]), texts)
    query = data.draw(st.dictionaries(names, hostile_query, min_size=1, max_size=3), label="query")
    if route.endswith("/messages") and "lease" in route:
        query.setdefault("wait", "0")  # a valid wait would wait for real
    string = "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in query.items())
    assert_no_crash(_request(api, hostile, "get", f"{_url(route, ids)}?{string}"))


DATE_FILTERS = [(route, name) for route, names in QUERIES.items() for name in names
                if name.endswith(("_after", "_before"))]


@FUZZ
@given(data=st.data())
def test_hostile_date_filters_never_give_a_5xx(hostile, api, data):
    route, name = data.draw(st.sampled_from(DATE_FILTERS), label="filter")
    value = data.draw(st.one_of(datetimes, hostile_query), label="value")
    assert_no_crash(_request(api, hostile, "get", f"{route}?{name}={quote(value, safe='')}"))


@FUZZ
@given(data=st.data())
def test_hostile_ids_never_give_a_5xx(hostile, api, data):
    ids = _ids(hostile)
    route = data.draw(st.sampled_from(sorted(r for r in _routes() if "{" in r)), label="route")
    view = _routes()[route]
    method = data.draw(st.sampled_from([m for m in METHODS if hasattr(view, m)]), label="method")
    bad = data.draw(texts, label="id")
    url = _url(route, ids, **{name: quote(bad, safe="") for name in ids})
    response = _request(api, hostile, method, url, "{}" if method in ("post", "patch") else None)
    assert_no_crash(response)
    if "\x00" in bad:
        assert response.status_code == 404, response.content


def test_a_datetime_beyond_python_is_no_crash_either(world, api):
    """The largest datetime Python has, sent with an offset that pushes it past 9999 in UTC."""
    latest = datetime.max.replace(tzinfo=timezone(-timedelta(hours=14)))
    response = api.get("/v1/inbound-messages", {"received_before": latest.isoformat()}, **world.a.auth)
    assert_error(response, 400, "overflow", field="received_before")
