"""The API key cache (accounts/services/key_cache.py): a process authenticates from what it read for
API_KEY_CACHE_SECONDS, and a change to a key, its allowlist or its tenant is in force at once in the
process that made it and within a second in a running server (another process)."""
from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import ApiKey, Tenant
from accounts.tests.factories import TenantFactory, make_api_key
from smsportal.tests.servers import WebServer, http

ME = "/v1/me"


def _key_reads(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if 'FROM "accounts_apikey"' in q["sql"]]


@pytest.fixture
def cached(settings):
    settings.API_KEY_CACHE_SECONDS = 30  # longer than any test: only a clear can end an entry here


def test_it_reads_a_key_once_and_then_authenticates_from_the_cache(world, client, cached):
    # given a first request, which reads the key
    assert client.get(ME, **world.a.auth).status_code == 200
    # when the key is used again
    with CaptureQueriesContext(connection) as again:
        assert client.get(ME, **world.a.auth).status_code == 200
    # then neither the key nor its allowlist is read again
    assert _key_reads(again) == []
    assert not [q for q in again.captured_queries if "accounts_ipallowlistentry" in q["sql"]]


def test_it_still_compares_the_secret_of_a_cached_key(world, client, cached):
    # given a cached key
    assert client.get(ME, **world.a.auth).status_code == 200
    # when its key id comes with another secret (well formed, its checksum right)
    forged = services.api_key_format(mode="test", key_id=world.a.api_key.key_id, secret="A" * services.SECRET_LENGTH)
    answer = client.get(ME, HTTP_AUTHORIZATION=f"Bearer {forged}")
    # then it is refused
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_api_key")


def test_a_revoked_key_is_refused_at_once_in_the_same_process(world, client, cached):
    # given a cached key
    assert client.get(ME, **world.a.auth).status_code == 200
    # when it is revoked
    services.api_key_revoke(tenant=world.a.tenant, api_key=world.a.api_key, actor=services.SYSTEM)
    # then its next request is refused
    answer = client.get(ME, **world.a.auth)
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "invalid_api_key")


def test_an_allowlist_entry_and_a_suspension_are_in_force_at_once_in_the_same_process(world, client, cached):
    # given a cached key of a tenant whose allowlist is empty
    services.ip_allowlist_remove(tenant=world.a.tenant, entry=world.a.allowlist_entry, actor=services.SYSTEM)
    assert client.get(ME, **world.a.auth).status_code == 200
    # when an entry that leaves out the client's address is added
    entry = services.ip_allowlist_add(tenant=world.a.tenant, cidr="198.51.100.0/24", actor=services.SYSTEM)
    # then the key is refused from that address
    assert client.get(ME, **world.a.auth).json()["error"]["code"] == "ip_not_allowed"
    # when the entry goes and the tenant is suspended
    services.ip_allowlist_remove(tenant=world.a.tenant, entry=entry, actor=services.SYSTEM)
    assert client.get(ME, **world.a.auth).status_code == 200
    services.tenant_set_status(tenant=world.a.tenant, status=Tenant.Status.SUSPENDED, actor=services.SYSTEM)
    # then the key is refused for the suspension
    assert client.get(ME, **world.a.auth).status_code == 403


def test_each_request_gets_its_own_copy_of_the_key_and_tenant(world, cached):
    # given the key read into the cache
    first = services.api_key_authenticate(raw=world.a.secret)
    # when a request changes its copy
    first.scopes.append("changed")
    first.tenant.name = "changed"
    # then the next request sees the key as stored
    second = services.api_key_authenticate(raw=world.a.secret)
    assert "changed" not in second.scopes and second.tenant.name != "changed"
    assert second.pk == first.pk and second.tenant is not first.tenant


# --- across processes: a running server -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_running_server_refuses_a_revoked_key_and_a_new_allowlist_within_a_second(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the server process cannot see pytest-django's in-memory SQLite database; needs PostgreSQL")
    # given the web server as shipped, with the key cache as in production, and two keys it has just used
    tenant = TenantFactory()
    revoked, revoked_secret = make_api_key(tenant, name="to revoke")
    _, fenced_secret = make_api_key(tenant, name="to fence")
    # The per-key request limit raised out of the way: the loop below asks as fast as the server answers.
    with WebServer.from_procfile(tmp_path, env={"API_KEY_CACHE_SECONDS": "0.5", "API_RATE_LIMIT": "1000000/s",
                                                "CELERY_BROKER_URL": "filesystem://"}) as web:
        for secret in (revoked_secret, fenced_secret):
            for _ in range(4):  # reach both worker processes, most likely
                assert http("GET", f"{web.url}{ME}", headers={"Authorization": f"Bearer {secret}"})[0] == 200
        # when one key is revoked and the tenant's allowlist gets an entry that leaves out loopback
        services.api_key_revoke(tenant=tenant, api_key=revoked, actor=services.SYSTEM)
        services.ip_allowlist_add(tenant=tenant, cidr="198.51.100.0/24", actor=services.SYSTEM)
        changed = time.monotonic()
        # then within a second every request of the revoked key is refused, and the other key from loopback too
        for secret, status in ((revoked_secret, 401), (fenced_secret, 403)):
            seconds = _seconds_until_refused(f"{web.url}{ME}", secret, status, since=changed)
            assert seconds < 1.0, (secret[:12], seconds, web.tail())
    assert ApiKey.unscoped.get(pk=revoked.pk).revoked_at is not None


def _seconds_until_refused(url: str, secret: str, status: int, *, since: float) -> float:
    """Seconds from `since` until 10 requests in a row got `status` (any process answering), measured
    at the first of those ten."""
    streak_began, streak = None, 0
    while streak < 10:
        assert time.monotonic() - since < 5, "still accepted after 5 s"
        sent = time.monotonic()
        answer = http("GET", url, headers={"Authorization": f"Bearer {secret}"})[0]
        if answer == status:
            streak_began, streak = (streak_began or sent), streak + 1
        else:
            assert answer == 200, answer
            streak_began, streak = None, 0
    return streak_began - since
