"""Every /v1 error is {"error": {"code", "message", "field"?, "details"?}} as JSON, whatever raised it."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, IpAllowlistEntry
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import login_verified, make_api_key
from smsportal.api.throttling import ApiKeyRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture
def nothing_written(world):
    """Call it at the end of a test: no key, allowlist entry or audit event was added or changed."""
    def counts():
        return (list(ApiKey.unscoped.order_by("pk").values("pk", "revoked_at", "last_used_at")),
                IpAllowlistEntry.unscoped.count(), AuditEvent.unscoped.count())

    before = counts()

    def check():
        after = counts()
        # a refused request may still be the key's first use of the minute
        assert [{**k, "last_used_at": None} for k in after[0]] == [{**k, "last_used_at": None} for k in before[0]]
        assert after[1:] == before[1:]

    return check


# --- 400 ----------------------------------------------------------------------------------------


def test_it_answers_400_invalid_json(world, client, nothing_written):
    # given a body that is not JSON; when posted; then invalid_json
    response = client.post("/v1/api-keys", "{name: ", content_type="application/json", **world.a.auth)
    assert_error(response, 400, "invalid_json")
    nothing_written()


def test_it_answers_400_listing_each_invalid_field(world, api, nothing_written):
    # given three wrong fields; when posted; then one validation_error with a detail per field
    response = api.post("/v1/ip-allowlist", {"cidr": "", "note": "x" * 201, "api_key": ["a"]}, format="json",
                        **world.a.auth)
    error = assert_error(response, 400, "validation_error")
    assert error["message"] == "3 problems with the request; see details."
    assert {d["field"] for d in error["details"]} == {"cidr", "note", "api_key"}
    assert all(d["message"] and d["code"] for d in error["details"])
    nothing_written()


def test_it_answers_400_naming_the_one_invalid_field(world, api, nothing_written):
    # given one wrong field; when posted; then its own code and the field, without details
    error = assert_error(api.post("/v1/api-keys", {"name": "k", "mode": "prod"}, format="json", **world.a.auth),
                         400, "invalid_choice", field="mode")
    assert "details" not in error
    nothing_written()


def test_it_answers_400_with_a_domain_errors_field(world, api, nothing_written):
    # given a service-level refusal; then its stable code and field
    past = (timezone.now() - timedelta(days=1)).isoformat()
    assert_error(api.post("/v1/api-keys", {"name": "k", "expires_at": past}, format="json", **world.a.auth),
                 400, "invalid_expiry", field="expires_at")
    nothing_written()


# --- 401, 403 -----------------------------------------------------------------------------------


def test_it_answers_401_without_a_key(world, client):
    assert_error(client.get("/v1/api-keys"), 401, "authentication_required")


def test_it_answers_401_with_a_bad_key(world, client):
    assert_error(client.get("/v1/api-keys", HTTP_AUTHORIZATION="Bearer sk_test_nope"), 401, "invalid_api_key")


def test_it_answers_403_without_the_scope(world, client):
    _, raw = make_api_key(world.a.tenant, scopes=["billing:read"])
    keys = ApiKey.unscoped.count()
    response = client.post("/v1/api-keys", {"name": "k"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_error(response, 403, "insufficient_scope")
    assert ApiKey.unscoped.count() == keys


# --- 404 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/", "/v1", "/v1/me/", "/v1/api-keys/x/y", "/v1/docsfoo",
                                  "/v1/docs/", "/v1/Me"])
def test_it_answers_404_for_an_unknown_route_like_for_an_unknown_object(world, client, path):
    # given a path under /v1 that no route matches
    # when requested with a valid key
    response = client.get(path, **world.a.auth)
    # then the same 404 as an unknown object id
    assert_error(response, 404, "not_found")
    assert response.json() == client.get("/v1/api-keys/key_doesnotexist00000000", **world.a.auth).json()


# --- 405, 415 -----------------------------------------------------------------------------------


def test_it_answers_405_keeping_the_allow_header(world, client, nothing_written):
    response = client.put("/v1/me", {}, content_type="application/json", **world.a.auth)
    assert_error(response, 405, "method_not_allowed")
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}
    nothing_written()


def test_it_answers_405_on_the_docs_page_in_json(world, client):
    # given the HTML docs page; when posted to; then the error is still JSON
    assert_error(client.post("/v1/docs"), 405, "method_not_allowed")


def test_it_answers_415_for_plain_text(world, client, nothing_written):
    response = client.post("/v1/api-keys", "name=k", content_type="text/plain", **world.a.auth)
    assert_error(response, 415, "unsupported_media_type")
    nothing_written()


def test_it_answers_415_for_form_data(world, client):
    # given a browser-style form post; then refused: the API speaks JSON only
    response = client.post("/v1/api-keys", {"name": "k"}, **world.a.auth)
    assert_error(response, 415, "unsupported_media_type")
    assert not ApiKey.unscoped.filter(tenant=world.a.tenant, name="k").exists()


# --- 429 ----------------------------------------------------------------------------------------


def test_it_answers_429_with_an_integer_retry_after(world, client, monkeypatch, time_machine):
    # given a limit of three requests a minute (DRF reads the rates onto the class at import)
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/m"})
    time_machine.move_to(timezone.now(), tick=False)
    # when A's key makes four requests
    statuses = [client.get("/v1/me", **world.a.auth).status_code for _ in range(3)]
    limited = client.get("/v1/me", **world.a.auth)
    # then the fourth is 429 with Retry-After in whole seconds
    assert statuses == [200, 200, 200]
    assert_error(limited, 429, "rate_limited")
    assert limited["Retry-After"].isdigit() and 1 <= int(limited["Retry-After"]) <= 60
    # and the bucket is per key: B's key and another key of A are still served
    assert client.get("/v1/me", **world.b.auth).status_code == 200
    _, other = make_api_key(world.a.tenant, name="other")
    assert client.get("/v1/me", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200
    # and after Retry-After has passed, A is served again
    time_machine.shift(int(limited["Retry-After"]) + 1)
    assert client.get("/v1/me", **world.a.auth).status_code == 200


# --- 409, 422, 500 from a test-only URLconf ---------------------------------------------------------


@pytest.mark.urls("accounts.tests.error_urls")
def test_it_answers_409_for_a_conflict(db, client):
    assert_error(client.post("/v1/test/conflict"), 409, "conflict", field="name")


@pytest.mark.urls("accounts.tests.error_urls")
def test_it_answers_422_for_an_unprocessable_request(db, client):
    error = assert_error(client.post("/v1/test/unprocessable"), 422, "sender_not_owned", field="from")
    assert error["message"] == "The sender is not one of your numbers."


@pytest.mark.urls("accounts.tests.error_urls")
def test_it_answers_500_for_a_crash_in_an_api_view_and_logs_it(db, client, caplog):
    # given a DRF view that crashes; when called
    response = client.get("/v1/test/crash")
    # then a generic 500 that reveals nothing, and the traceback is logged
    error = assert_error(response, 500, "internal_error")
    assert "row 42" not in response.content.decode()
    assert error["message"] == "Something went wrong on our side. It has been logged."
    assert any(r.name == "smsportal.api" and r.exc_info and "row 42" in str(r.exc_info[1]) for r in caplog.records)


@pytest.mark.urls("accounts.tests.error_urls")
def test_it_answers_500_for_a_crash_in_a_plain_view_and_logs_it(db, caplog):
    # given a plain (non-DRF) view under /v1 that crashes
    client = Client(raise_request_exception=False)
    # when called
    response = client.get("/v1/test/plain-crash")
    # then the middleware answers the same JSON 500
    assert_error(response, 500, "internal_error")
    assert b"plain Django view crashed" not in response.content
    assert any(r.name == "smsportal.api" and r.exc_info for r in caplog.records)


@pytest.mark.urls("accounts.tests.error_urls")
@pytest.mark.parametrize(("path", "status", "code"), [
    ("/v1/test/plain-not-found", 404, "not_found"),
    ("/v1/test/plain-forbidden", 403, "permission_denied"),
])
def test_django_errors_outside_drf_are_json(db, client, path, status, code):
    assert_error(client.get(path), status, code)


@pytest.mark.urls("accounts.tests.error_urls")
def test_a_csrf_failure_under_v1_is_json(world):
    # given a signed-in portal session and a client that enforces CSRF
    client = login_verified(Client(enforce_csrf_checks=True), world.a.owner, tenant=world.a.tenant)
    # when it posts to a plain /v1 view without a CSRF token
    response = client.post("/v1/test/plain-form", {"x": "1"})
    # then the CSRF refusal is JSON, not Django's HTML page
    assert_error(response, 403, "permission_denied")


def test_a_session_post_to_the_api_is_not_authenticated_and_stays_json(world):
    # given a signed-in portal session enforcing CSRF
    client = login_verified(Client(enforce_csrf_checks=True), world.a.owner, tenant=world.a.tenant)
    # when it posts to an API endpoint without a key
    response = client.post("/v1/api-keys", {"name": "from a browser"}, content_type="application/json")
    # then the session is ignored: 401 as JSON, and no key is made
    assert_error(response, 401, "authentication_required")
    assert not ApiKey.unscoped.filter(tenant=world.a.tenant, name="from a browser").exists()


def test_errors_outside_v1_are_not_rewritten(db, client):
    # given a path outside the API; then Django's own (HTML) 404
    response = client.get("/nowhere")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")
