"""API key authentication (KEY-1..KEY-3): format and checksum, every refusal, scopes, suspension,
last use, and no secret at rest or in the logs."""
import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import errors, services
from accounts.authentication import QUERY_KEY_PARAMS
from accounts.models import ApiKey, AuditEvent, IpAllowlistEntry
from accounts.roles import ALL_SCOPES
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, login_verified, make_api_key
from accounts.tests.test_cross_tenant import KWARGS, build, routes
from smsportal.ids import BASE62, random_base62
from smsportal.logging import RedactSecretsFilter

pytestmark = pytest.mark.django_db

# Every refusal of a presented key answers exactly this: no oracle on why.
INVALID_KEY_BODY = {"error": {"code": "invalid_api_key", "message": errors.InvalidApiKey.message}}
NON_ADMIN_SCOPES = [s for s in ALL_SCOPES if s != "admin"]


def _parts(raw: str) -> tuple[str, str, str]:
    """(mode, key_id, 40-char secret) of a raw key."""
    match = services.api_key_well_formed(raw)
    return match["mode"], match["key_id"], match["body"][: services.SECRET_LENGTH]


def _generate(mode: str) -> str:
    # The same primitives api_key_create uses, without a database row per key.
    return services.api_key_format(mode=mode, key_id=random_base62(services.KEY_ID_LENGTH),
                                   secret=random_base62(services.SECRET_LENGTH))


def _last_used(key: ApiKey):
    return ApiKey.unscoped.values_list("last_used_at", flat=True).get(pk=key.pk)


def _apikey_updates(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().upper().startswith("UPDATE") and "accounts_apikey" in q["sql"]]


# --- a good key ---------------------------------------------------------------------------------


def test_it_authenticates_a_valid_key(world, client):
    # given A's admin key
    a = world.a
    # when it calls /v1/me
    response = client.get("/v1/me", **a.auth)
    # then it is served as tenant A and the key's use is recorded
    assert response.status_code == 200
    body = response.json()
    assert body["tenant"] == {"slug": "alpha", "name": "Alpha Industries", "status": "active"}
    assert body["key"]["id"] == a.api_key.public_id and "secret" not in body["key"]
    assert _last_used(a.api_key) is not None


def test_it_accepts_the_scheme_in_any_case(world, client):
    # given the scheme written in lower case; when used; then accepted (RFC 7235: case-insensitive)
    assert client.get("/v1/me", HTTP_AUTHORIZATION=f"bearer {world.a.secret}").status_code == 200


# --- refusals -----------------------------------------------------------------------------------


def _unknown_id(world):
    return _generate("test")


def _wrong_secret(world):
    # A well-formed key with A's id and a valid checksum, but not A's secret.
    _, key_id, _ = _parts(world.a.secret)
    return services.api_key_format(mode="test", key_id=key_id, secret=random_base62(services.SECRET_LENGTH))


def _wrong_checksum(world):
    last = world.a.secret[-1]
    return world.a.secret[:-1] + ("A" if last != "A" else "B")


def _mode_mismatch(world):
    # A's test key presented as a live key: same id and secret, the live prefix, a valid checksum.
    _, key_id, secret = _parts(world.a.secret)
    return services.api_key_format(mode="live", key_id=key_id, secret=secret)


def _test_prefix_on_live_key(world):
    # A live key presented with the test prefix (checksum recomputed): the mode is part of the key.
    _, raw = make_api_key(world.a.tenant, name="live", mode="live")
    _, key_id, secret = _parts(raw)
    return services.api_key_format(mode="test", key_id=key_id, secret=secret)


def _revoked(world):
    key, raw = make_api_key(world.a.tenant, name="revoked")
    services.api_key_revoke(tenant=world.a.tenant, api_key=key, actor=services.SYSTEM)
    return raw


def _truncated(world):
    return world.a.secret[:-7]


def _other_prefix(world):
    return "ghp_" + world.a.secret[3:]


BAD_KEYS = {
    "unknown key id": _unknown_id,
    "wrong secret, valid checksum": _wrong_secret,
    "wrong checksum": _wrong_checksum,
    "live prefix on a test key": _mode_mismatch,
    "test prefix on a live key": _test_prefix_on_live_key,
    "revoked": _revoked,
    "truncated": _truncated,
    "another vendor's token": _other_prefix,
    "random text": lambda world: "hunter2",
}


@pytest.mark.parametrize("make_bad_key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_it_refuses_every_bad_key_with_one_identical_body(world, client, make_bad_key):
    # given a bad key, and the audit trail before
    raw = make_bad_key(world)
    audits = AuditEvent.unscoped.count()
    # when it is presented
    response = client.get("/v1/me", **bearer(raw))
    # then 401 with exactly the shared body and a Bearer challenge, and nothing is recorded
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY
    assert response["Content-Type"] == "application/json"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    assert _last_used(world.a.api_key) is None
    assert AuditEvent.unscoped.count() == audits


def test_it_refuses_an_expired_key(world, client, time_machine):
    # given a key that expires in an hour, used once
    time_machine.move_to(timezone.now(), tick=False)
    key, raw = make_api_key(world.a.tenant, name="short-lived", expires_at=timezone.now() + timedelta(hours=1))
    assert client.get("/v1/me", **bearer(raw)).status_code == 200
    # when it is used a second before and a second after the expiry
    time_machine.shift(timedelta(minutes=59, seconds=59))
    before = client.get("/v1/me", **bearer(raw))
    time_machine.shift(timedelta(seconds=2))
    after = client.get("/v1/me", **bearer(raw))
    # then it works until then and is refused like any bad key afterwards
    assert before.status_code == 200
    assert after.status_code == 401 and after.json() == INVALID_KEY_BODY
    assert client.get(f"/v1/api-keys/{key.public_id}", **world.a.auth).json()["status"] == "expired"


def test_it_refuses_a_mistyped_key_without_any_query(world, client, django_assert_num_queries):
    # given A's key with a wrong checksum
    raw = _wrong_checksum(world)
    # when presented, then refused before the database is asked anything (the whole request)
    with django_assert_num_queries(0):
        response = client.get("/v1/me", **bearer(raw))
    assert response.status_code == 401 and response.json() == INVALID_KEY_BODY
    with django_assert_num_queries(0), pytest.raises(errors.InvalidApiKey):
        services.api_key_authenticate(raw=raw)


def test_it_asks_for_a_key_when_none_is_sent(world, client):
    # given no Authorization header; when calling; then 401 authentication_required with a challenge
    response = client.get("/v1/me")
    assert_error(response, 401, "authentication_required")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Token abc", "Bearer", "Bearer    ", "sk_test_abc"])
def test_it_refuses_another_authorization_scheme(world, client, header):
    # given an Authorization header that is not `Bearer <key>`; when calling; then 401 invalid_api_key
    response = client.get("/v1/me", HTTP_AUTHORIZATION=header)
    assert_error(response, 401, "invalid_api_key")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize("param", QUERY_KEY_PARAMS)
def test_it_refuses_a_key_in_the_query_string(world, client, param):
    # given A's valid key in the URL (and even in the header too)
    # when calling
    response = client.get(f"/v1/me?{param}={world.a.secret}", **world.a.auth)
    # then 400 api_key_in_query, and the key is not counted as used
    assert_error(response, 400, "api_key_in_query")
    assert world.a.secret not in response.content.decode()
    assert _last_used(world.a.api_key) is None


# --- scopes -------------------------------------------------------------------------------------

# Every admin-scoped operation: (method, path with {key}/{entry} placeholders, JSON body).
ADMIN_OPERATIONS = [
    ("GET", "/v1/api-keys", None),
    ("POST", "/v1/api-keys", {"name": "made by scope test"}),
    ("GET", "/v1/api-keys/{key}", None),
    ("DELETE", "/v1/api-keys/{key}", None),
    ("GET", "/v1/ip-allowlist", None),
    ("POST", "/v1/ip-allowlist", {"cidr": "127.0.0.0/8"}),  # admits the test client
    ("GET", "/v1/ip-allowlist/{entry}", None),
    ("DELETE", "/v1/ip-allowlist/{entry}", None),
]


def _call(api, method, path, body, auth, world):
    path = path.format(key=world.a.api_key.public_id, entry=world.a.allowlist_entry.public_id)
    return api.generic(method, path, data=None if body is None else json.dumps(body),
                       content_type="application/json", **auth)


def _state(world):
    return (list(ApiKey.unscoped.order_by("pk").values("public_id", "revoked_at")),
            list(IpAllowlistEntry.unscoped.order_by("pk").values_list("public_id", flat=True)),
            AuditEvent.unscoped.count())


@pytest.mark.parametrize("scope", NON_ADMIN_SCOPES)
@pytest.mark.parametrize(("method", "path", "body"), ADMIN_OPERATIONS, ids=[f"{m} {p}" for m, p, _ in ADMIN_OPERATIONS])
def test_a_key_without_admin_cannot_manage_keys_or_the_allowlist(world, api, scope, method, path, body):
    # given a key with one scope other than admin, and the state before
    _, raw = make_api_key(world.a.tenant, scopes=[scope], name=scope)
    before = _state(world)
    # when it calls an admin operation
    response = _call(api, method, path, body, bearer(raw), world)
    # then 403 insufficient_scope and nothing changes
    assert_error(response, 403, "insufficient_scope")
    assert _state(world) == before


def test_every_non_admin_scope_together_is_still_not_admin(world, api):
    # given a key with all scopes except admin
    _, raw = make_api_key(world.a.tenant, scopes=NON_ADMIN_SCOPES, name="all but admin")
    # when it lists keys; then refused
    assert_error(api.get("/v1/api-keys", **bearer(raw)), 403, "insufficient_scope")


@pytest.mark.parametrize("scope", ALL_SCOPES)
def test_any_scope_may_ask_who_it_is(world, api, scope):
    # given a key with one scope; when it calls /v1/me; then it is served and sees its scopes
    _, raw = make_api_key(world.a.tenant, scopes=[scope], name=scope)
    response = api.get("/v1/me", **bearer(raw))
    assert response.status_code == 200 and response.json()["key"]["scopes"] == [scope]


def test_admin_implies_every_scope(world, api):
    # given a key with only the admin scope
    _, raw = make_api_key(world.a.tenant, scopes=["admin"], name="admin only")
    auth = bearer(raw)
    # when it performs every admin operation (deleting the world's key and entry last)
    statuses = [_call(api, method, path, body, auth, world).status_code for method, path, body in ADMIN_OPERATIONS]
    # then each succeeds
    assert statuses == [200, 201, 200, 200, 200, 201, 200, 204]
    assert ApiKey.unscoped.get(pk=world.a.api_key.pk).revoked_at is not None
    assert not IpAllowlistEntry.unscoped.filter(pk=world.a.allowlist_entry.pk).exists()


# --- suspended tenants --------------------------------------------------------------------------


def _authenticated_api_operations() -> list[tuple[str, str]]:
    """Every /v1 route that takes a key (found from the URL configuration) x GET, POST, DELETE."""
    operations = []
    for route in routes():
        callback = route.pattern.callback
        view = getattr(callback, "cls", None)
        auth = getattr(callback, "view_initkwargs", {}).get("authentication_classes", getattr(view, "authentication_classes", None))
        if route.is_api and auth != []:  # the schema and docs pages are public
            operations += [(route.template, method) for method in ("GET", "POST", "DELETE")]
    return operations


@pytest.mark.parametrize(("template", "method"), _authenticated_api_operations())
def test_a_suspended_tenant_is_refused_on_every_call(world, api, template, method):
    # given tenant A is suspended, and every /v1 route aimed at A's own objects (a consent record and a
    # suppression too, as the cross-tenant walk has)
    from compliance.tests.consent_helpers import consent_rows

    consent_rows(world)
    services.tenant_set_status(tenant=world.a.tenant, status="suspended", actor=services.SYSTEM)
    route = next(r for r in routes() if r.template == template)
    path = build(route, {k: KWARGS[k].value(world.a) for k in route.kwargs})
    before = _state(world)
    # when its valid admin key calls
    response = api.generic(method, path, data="{}" if method == "POST" else None, content_type="application/json",
                           **world.a.auth)
    # then 403 tenant_suspended, nothing changes, the key is not marked used; B is unaffected
    assert_error(response, 403, "tenant_suspended")
    assert _state(world) == before
    assert _last_used(world.a.api_key) is None
    assert api.get("/v1/me", **world.b.auth).status_code == 200


def test_every_admin_operation_is_in_the_suspension_matrix():
    # given the hand-written admin operations; then the generated matrix covers each of them
    generated = {(t, m) for t, m in _authenticated_api_operations()}
    for method, path, _ in ADMIN_OPERATIONS:
        template = path.replace("{key}", "<public_id:api_key_id>").replace("{entry}", "<public_id:entry_id>").lstrip("/")
        assert (template, method) in generated


def test_a_reactivated_tenant_is_served_again(world, api):
    # given A suspended and then reactivated
    services.tenant_set_status(tenant=world.a.tenant, status="suspended", actor=services.SYSTEM)
    assert_error(api.get("/v1/me", **world.a.auth), 403, "tenant_suspended")
    services.tenant_set_status(tenant=world.a.tenant, status="active", actor=services.SYSTEM)
    # when it calls; then served
    assert api.get("/v1/me", **world.a.auth).status_code == 200


# --- last use -----------------------------------------------------------------------------------


def test_it_records_the_last_use_at_most_once_per_interval(world, client):
    # given A's key, never used
    assert _last_used(world.a.api_key) is None
    # when it is used once
    with CaptureQueriesContext(connection) as first:
        assert client.get("/v1/me", **world.a.auth).status_code == 200
    used_at = _last_used(world.a.api_key)
    # then last_used_at is written by one UPDATE
    assert used_at is not None and len(_apikey_updates(first)) == 1
    # when it is used three more times within the interval
    with CaptureQueriesContext(connection) as later:
        for _ in range(3):
            assert client.get("/v1/me", **world.a.auth).status_code == 200
    # then nothing is written again
    assert _apikey_updates(later) == []
    assert _last_used(world.a.api_key) == used_at


def test_it_records_the_last_use_again_after_the_interval(world, client, settings, time_machine):
    # given an in-process cache: its expiry follows the travelled clock (Redis keeps real time for its TTLs)
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "last-used-test"}}
    cache.clear()
    start = timezone.now().replace(microsecond=0) + timedelta(days=1)
    time_machine.move_to(start, tick=False)
    # when the key is used now, 59 s later and 61 s later
    client.get("/v1/me", **world.a.auth)
    first = _last_used(world.a.api_key)
    time_machine.shift(59)
    client.get("/v1/me", **world.a.auth)
    within = _last_used(world.a.api_key)
    time_machine.shift(2)
    client.get("/v1/me", **world.a.auth)
    after = _last_used(world.a.api_key)
    # then it is written at the first use, kept within the interval and refreshed after it
    assert services.LAST_USED_WRITE_INTERVAL == 60
    assert first == start and within == start and after == start + timedelta(seconds=61)


# --- KEY-2: format and checksum -----------------------------------------------------------------


def test_generated_keys_match_the_published_format_and_checksum(world):
    # given 10,000 generated keys of both modes, and a few made by the real service
    keys = [_generate("live" if n % 2 else "test") for n in range(10_000)]
    keys += [make_api_key(world.a.tenant, name=f"svc{n}", mode=("live", "test")[n % 2])[1] for n in range(20)]
    # then every one matches the regex and its checksum, and no two share an id
    for raw in keys:
        match = services.API_KEY_RE.match(raw)
        assert match is not None, raw
        assert services.api_key_well_formed(raw) is not None, raw
        assert raw.startswith(f"sk_{match['mode']}_")
    assert len({services.api_key_well_formed(raw)["key_id"] for raw in keys}) == len(keys)


def test_every_one_character_mutation_is_rejected(world, django_assert_num_queries):
    # given 200 keys and every substitution, deletion and insertion of one character
    alphabet = BASE62 + "_-"
    rejected = 0
    for raw in [_generate("test") for _ in range(200)]:
        for i, original in enumerate(raw):
            for replacement in alphabet:
                if replacement != original:
                    assert services.api_key_well_formed(raw[:i] + replacement + raw[i + 1:]) is None
                    rejected += 1
            assert services.api_key_well_formed(raw[:i] + raw[i + 1:]) is None
            assert services.api_key_well_formed(raw[:i] + "x" + raw[i:]) is None
            rejected += 2
    assert rejected > 800_000
    # and a real key's mutations are refused by authentication without a single query
    with django_assert_num_queries(0):
        for i in range(len(world.a.secret)):
            mutated = world.a.secret[:i] + ("0" if world.a.secret[i] != "0" else "1") + world.a.secret[i + 1:]
            with pytest.raises(errors.InvalidApiKey):
                services.api_key_authenticate(raw=mutated)


# --- KEY-1: no secret at rest or in logs -----------------------------------------------------


def _dump_database() -> str:
    """Every value of every table, as text: a poor man's pg_dump."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        value = bytes(value).decode("utf-8", "replace")
                    chunks.append(str(value))
    return "\n".join(chunks)


def test_no_secret_is_stored_anywhere(world, api):
    # given keys made by the service and through the API, used, refused, revoked and audited
    secrets = [world.a.secret, world.b.secret]
    created = api.post("/v1/api-keys", {"name": "via api", "mode": "live"}, format="json", **world.a.auth).json()
    secrets.append(created["secret"])
    key, raw = make_api_key(world.b.tenant, name="to revoke", scopes=["messages:send"])
    secrets.append(raw)
    for secret in secrets:
        api.get("/v1/me", **bearer(secret))
        api.get("/v1/me", **bearer(secret[:-1] + "0"))
    api.delete(f"/v1/api-keys/{key.public_id}", **world.b.auth)
    api.get("/v1/me", **bearer(raw))
    # when every value of every table is read back
    dump = _dump_database()
    # then no secret, nor a 20-character piece of one, appears anywhere (the prefix and last four may)
    assert world.a.api_key.prefix in dump  # the dump does see the key rows
    for secret in secrets:
        _, _, body = _parts(secret)
        for needle in (secret, body, body[:20], body[20:]):
            assert needle not in dump, f"a key secret is stored: {needle[:8]}…"


def _console_handlers():
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert handlers, "the root console handler must carry RedactSecretsFilter (settings.LOGGING)"
    return handlers


@pytest.mark.urls("accounts.tests.error_urls")
def test_logs_never_contain_a_key_or_bearer_token(world, api, caplog):
    # given the configured console handler writing into a buffer
    handler = _console_handlers()[0]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    revoked_key, revoked = make_api_key(world.a.tenant, name="revoked")
    services.api_key_revoke(tenant=world.a.tenant, api_key=revoked_key, actor=services.SYSTEM)
    try:
        with caplog.at_level(logging.INFO):
            # when requests fail with keys: refused, and crashing with the header quoted in the error
            api.get("/v1/me", **bearer(revoked))
            crashed = api.get("/v1/test/crash-with-header", **world.a.auth)
            logging.getLogger("smsportal.test").warning("retrying with %s", world.b.secret)
            logging.getLogger("smsportal.test").warning("upstream said Authorization: Bearer opaque-token-123")
    finally:
        handler.setStream(previous)
    # then the lines were logged (traceback included), but every key and token is masked
    output = buffer.getvalue()
    assert crashed.status_code == 500 and "RuntimeError" in output and "Unauthorized: /v1/me" in output
    assert output.count("[redacted]") >= 3
    for secret in (revoked, world.a.secret, world.b.secret, "opaque-token-123"):
        assert secret not in output
        assert secret not in caplog.text
    assert f"sk_test_{world.b.api_key.key_id}_[redacted]" in output


@pytest.mark.parametrize(("text", "expected"), [
    ("key sk_live_abcdefghijkl_" + "x" * 46 + " end", "key sk_live_abcdefghijkl_[redacted] end"),
    ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [redacted]"),
    ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret whsec_[redacted]"),
    ("nothing to hide", "nothing to hide"),
])
def test_the_filter_masks_secrets_in_messages_and_arguments(text, expected):
    # given a record whose message has a secret in its arguments
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s", (text,), None)
    # when filtered; then the rendered message is masked and the record is still emitted
    assert RedactSecretsFilter().filter(record) is True
    assert record.getMessage() == expected


def test_a_session_does_not_authenticate_the_api(world, api):
    # given B's owner signed in to the portal (a session cookie, no key)
    login_verified(api, world.b.owner, tenant=world.b.tenant)
    # when the browser session calls the API; then it still needs a key
    assert_error(api.get("/v1/me"), 401, "authentication_required")
    assert_error(api.get("/v1/api-keys"), 401, "authentication_required")
