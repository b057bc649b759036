"""/v1/api-keys: list (cursor pages), create (secret once), get, delete = revoke; audited."""
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey, AuditEvent
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key

pytestmark = pytest.mark.django_db

URL = "/v1/api-keys"


def _audits(tenant, action):
    return list(AuditEvent.unscoped.filter(tenant=tenant, action=action))


def _follow(api, url, auth):
    """Every result of a cursor-paginated list, following `next` until it is null; also the page count."""
    results, pages = [], 0
    while url:
        response = api.get(url, **auth)
        assert response.status_code == 200, response.json()
        body = response.json()
        assert set(body) == {"next", "previous", "results"}
        assert len(body["results"]) <= 2
        results += body["results"]
        url, pages = body["next"], pages + 1
        assert pages < 50, "pagination does not end"
    return results, pages


# --- list ---------------------------------------------------------------------------------------


def test_it_pages_through_every_key_once(world, api):
    # given A has its admin key and six more (B's keys exist too)
    for n in range(6):
        make_api_key(world.a.tenant, name=f"k{n}")
    make_api_key(world.b.tenant, name="b-extra")
    # when A follows the cursor two at a time
    results, pages = _follow(api, f"{URL}?limit=2", world.a.auth)
    # then it sees each of its seven keys exactly once, newest first, over four pages, and none of B's
    ids = [r["id"] for r in results]
    expected = list(ApiKey.unscoped.filter(tenant=world.a.tenant).order_by("-created_at", "-id")
                    .values_list("public_id", flat=True))
    assert ids == expected and len(ids) == 7 and pages == 4
    assert not set(ids) & set(ApiKey.unscoped.filter(tenant=world.b.tenant).values_list("public_id", flat=True))


def test_it_pages_keys_created_in_the_same_instant(world, api, time_machine):
    # given five keys created at exactly the same time (more ties than a page holds)
    time_machine.move_to(timezone.now() + timedelta(days=1), tick=False)
    same = {make_api_key(world.a.tenant, name=f"same{n}")[0].public_id for n in range(5)}
    # when A follows the cursor two at a time
    results, _ = _follow(api, f"{URL}?limit=2", world.a.auth)
    # then no key is skipped or repeated
    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids)) == 6
    assert set(ids) == same | {world.a.api_key.public_id}


def test_it_lists_keys_with_a_constant_number_of_queries(world, api, django_assert_num_queries):
    # given the query count of a list with one key (after a first call has recorded the key's use)
    api.get("/v1/me", **world.a.auth)
    with CaptureQueriesContext(connection) as one:
        assert len(api.get(URL, **world.a.auth).json()["results"]) == 1
    # when twelve more keys exist
    for n in range(12):
        make_api_key(world.a.tenant, name=f"k{n}")
    # then the list costs the same number of queries
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(api.get(URL, **world.a.auth).json()["results"]) == 13


def test_it_never_shows_a_secret_in_the_list(world, api):
    # given A's key and its secret
    # when A lists and reads its keys
    listed = api.get(URL, **world.a.auth)
    shown = api.get(f"{URL}/{world.a.api_key.public_id}", **world.a.auth)
    # then only the prefix and the last four characters are shown
    for body in (listed.json()["results"][0], shown.json()):
        assert "secret" not in body
        assert body["prefix"] == f"sk_test_{world.a.api_key.key_id}" and body["last4"] == world.a.secret[-4:]
    assert world.a.secret not in listed.content.decode() + shown.content.decode()
    assert world.a.secret[len(world.a.api_key.prefix) + 1:][:20] not in listed.content.decode() + shown.content.decode()


# --- create -------------------------------------------------------------------------------------


def test_it_creates_a_key_and_shows_its_secret_once(world, api):
    # given tenant A's admin key
    a = world.a
    # when it creates a key with only a name
    response = api.post(URL, {"name": "CI deploys"}, format="json", **a.auth)
    # then 201 with the secret, test mode and the admin scope by default
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["secret"]
    assert body["mode"] == "test" and body["scopes"] == ["admin"] and body["status"] == "active"
    assert body["name"] == "CI deploys" and body["last_used_at"] is None and body["revoked_at"] is None
    assert secret.startswith(body["prefix"] + "_") and secret.endswith(body["last4"])
    assert services.api_key_well_formed(secret) is not None
    # and the row holds a hash, never the secret
    key = ApiKey.unscoped.get(public_id=body["id"])
    assert key.tenant == a.tenant and key.created_by is None and key.secret_hash != secret
    assert secret not in key.secret_hash and len(key.secret_hash) == 64
    # and the creation is audited with the creating key and address
    (event,) = _audits(a.tenant, "api_key.created")[:1]
    assert event.target_id == key.public_id and event.actor_api_key == a.api_key
    assert event.actor_label == f"api key {a.api_key.prefix}" and event.ip_address == "127.0.0.1"
    assert event.changes == {"name": "CI deploys", "mode": "test", "scopes": ["admin"], "prefix": key.prefix}
    # and the secret works, but is never shown again
    assert api.get("/v1/me", **bearer(secret)).json()["key"]["id"] == key.public_id
    again = api.get(f"{URL}/{key.public_id}", **a.auth)
    assert "secret" not in again.json() and secret not in again.content.decode()
    assert secret not in api.get(URL, **a.auth).content.decode()


def test_it_creates_a_live_key_with_chosen_scopes_and_expiry(world, api):
    # given an expiry a month ahead
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    # when A creates a live key limited to sending and reading messages
    response = api.post(URL, {"name": "prod", "mode": "live", "scopes": ["messages:send", "messages:read"],
                              "expires_at": expires.isoformat()}, format="json", **world.a.auth)
    # then the key carries them
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["mode"] == "live" and body["prefix"].startswith("sk_live_") and body["secret"].startswith("sk_live_")
    key = ApiKey.unscoped.get(public_id=body["id"])
    assert key.scopes == ["messages:send", "messages:read"] and key.expires_at == expires
    # and it authenticates, but cannot manage keys
    assert api.get("/v1/me", **bearer(body["secret"])).status_code == 200
    assert_error(api.get(URL, **bearer(body["secret"])), 403, "insufficient_scope")


@pytest.mark.parametrize(("payload", "code", "field"), [
    ({"name": "x", "scopes": ["nope"]}, "invalid_choice", "scopes[0]"),
    ({"name": "x", "scopes": ["admin", "messages:sned"]}, "invalid_choice", "scopes[1]"),
    ({"name": "x", "scopes": []}, "empty", "scopes"),
    ({"name": "x", "scopes": "admin"}, "not_a_list", "scopes"),
    ({"name": "x", "mode": "prod"}, "invalid_choice", "mode"),
    ({"name": ""}, "blank", "name"),
    ({"name": "x" * 101}, "max_length", "name"),
    ({}, "required", "name"),
    ({"name": "x", "expires_at": "yesterday"}, "invalid", "expires_at"),
])
def test_it_refuses_invalid_input(world, api, payload, code, field):
    # given the keys and audit events before
    keys, audits = ApiKey.unscoped.count(), AuditEvent.unscoped.count()
    # when A posts invalid input
    response = api.post(URL, payload, format="json", **world.a.auth)
    # then 400 naming the field and the reason, and nothing is written
    assert_error(response, 400, code, field=field)
    assert (ApiKey.unscoped.count(), AuditEvent.unscoped.count()) == (keys, audits)


def test_it_refuses_an_expiry_in_the_past(world, api):
    # given the keys before
    keys = ApiKey.unscoped.count()
    # when A asks for a key that expired a minute ago
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = api.post(URL, {"name": "late", "expires_at": past}, format="json", **world.a.auth)
    # then 400 on expires_at and no key
    assert_error(response, 400, "invalid_expiry", field="expires_at")
    assert ApiKey.unscoped.count() == keys


def test_it_reports_several_problems_at_once(world, api):
    # given a payload wrong in three places; when posted
    response = api.post(URL, {"mode": "prod", "scopes": ["nope"]}, format="json", **world.a.auth)
    # then one validation_error listing each problem with its field
    error = assert_error(response, 400, "validation_error")
    assert {(d["field"], d["code"]) for d in error["details"]} == {
        ("name", "required"), ("mode", "invalid_choice"), ("scopes[0]", "invalid_choice")}


# --- get ----------------------------------------------------------------------------------------


def test_it_gets_a_key(world, api):
    # given A's key; when A reads it
    response = api.get(f"{URL}/{world.a.api_key.public_id}", **world.a.auth)
    # then its public fields are shown
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == world.a.api_key.public_id and body["name"] == "alpha admin key"
    assert set(body) == {"id", "name", "prefix", "last4", "mode", "scopes", "status", "created_at", "last_used_at",
                         "expires_at", "revoked_at"}


def test_another_tenants_key_is_not_found_like_a_missing_one(world, api):
    # given B's key and an id nobody has
    foreign = api.get(f"{URL}/{world.b.api_key.public_id}", **world.a.auth)
    missing = api.get(f"{URL}/key_doesnotexist000000000", **world.a.auth)
    # then both are the same 404
    assert_error(foreign, 404, "not_found")
    assert foreign.json() == missing.json()
    assert world.b.api_key.public_id not in foreign.content.decode()


# --- delete = revoke ----------------------------------------------------------------------------


def test_it_revokes_a_key(world, api):
    # given a second key of A, in use
    key, secret = make_api_key(world.a.tenant, name="old")
    assert api.get("/v1/me", **bearer(secret)).status_code == 200
    # when A's admin key deletes it
    response = api.delete(f"{URL}/{key.public_id}", **world.a.auth)
    # then the key is revoked (kept for the record), audited, and refused from then on
    assert response.status_code == 200
    assert response.json()["status"] == "revoked" and response.json()["revoked_at"] is not None
    key.refresh_from_db()
    assert key.revoked_at is not None
    (event,) = _audits(world.a.tenant, "api_key.revoked")
    assert event.target_id == key.public_id and event.actor_api_key == world.a.api_key
    assert event.actor_label == f"api key {world.a.api_key.prefix}" and event.ip_address == "127.0.0.1"
    assert event.changes == {"prefix": key.prefix, "name": "old"}
    assert_error(api.get("/v1/me", **bearer(secret)), 401, "invalid_api_key")


def test_revoking_twice_is_harmless(world, api):
    # given a revoked key
    key, _ = make_api_key(world.a.tenant, name="old")
    api.delete(f"{URL}/{key.public_id}", **world.a.auth)
    key.refresh_from_db()
    revoked_at = key.revoked_at
    # when it is deleted again
    response = api.delete(f"{URL}/{key.public_id}", **world.a.auth)
    # then 200, the revocation time is unchanged, and there is still one audit event
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    key.refresh_from_db()
    assert key.revoked_at == revoked_at
    assert len(_audits(world.a.tenant, "api_key.revoked")) == 1


def test_a_key_can_revoke_itself(world, api):
    # given A's admin key; when it deletes itself
    response = api.delete(f"{URL}/{world.a.api_key.public_id}", **world.a.auth)
    # then the answer is given, and the next call with it is refused
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    assert_error(api.get("/v1/me", **world.a.auth), 401, "invalid_api_key")


def test_it_cannot_revoke_another_tenants_key(world, api):
    # given B's key
    # when A deletes it
    response = api.delete(f"{URL}/{world.b.api_key.public_id}", **world.a.auth)
    # then 404 like a missing key, B's key still works, nothing is audited
    assert_error(response, 404, "not_found")
    assert response.json() == api.delete(f"{URL}/key_doesnotexist000000000", **world.a.auth).json()
    world.b.api_key.refresh_from_db()
    assert world.b.api_key.revoked_at is None
    assert api.get("/v1/me", **world.b.auth).status_code == 200
    assert not AuditEvent.unscoped.filter(action="api_key.revoked").exists()


def test_rotation_keeps_both_keys_until_the_old_one_is_revoked(world, api):
    # given A creates a replacement key
    new_secret = api.post(URL, {"name": "rotated"}, format="json", **world.a.auth).json()["secret"]
    # when both are used during the overlap; then both work
    assert api.get("/v1/me", **world.a.auth).status_code == 200
    assert api.get("/v1/me", **bearer(new_secret)).status_code == 200
    # when the new key revokes the old one; then only the new one works
    assert api.delete(f"{URL}/{world.a.api_key.public_id}", **bearer(new_secret)).status_code == 200
    assert_error(api.get("/v1/me", **world.a.auth), 401, "invalid_api_key")
    assert api.get("/v1/me", **bearer(new_secret)).status_code == 200
