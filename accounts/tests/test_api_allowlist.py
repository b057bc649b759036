"""/v1/ip-allowlist: managing entries, and enforcing them on every key (KEY-5 through the API)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.models import AuditEvent, IpAllowlistEntry
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, make_api_key

pytestmark = pytest.mark.django_db

URL = "/v1/ip-allowlist"


def _audits(tenant, action):
    return list(AuditEvent.unscoped.filter(tenant=tenant, action=action))


@pytest.fixture
def restricted(world):
    """Tenant A with two fresh keys K and L and no allowlist entries at all (the world's entry is removed)."""
    services.ip_allowlist_remove(tenant=world.a.tenant, entry=world.a.allowlist_entry, actor=services.SYSTEM)
    k, k_secret = make_api_key(world.a.tenant, name="K")
    other, l_secret = make_api_key(world.a.tenant, name="L")
    return {"k": k, "k_auth": bearer(k_secret), "l": other, "l_auth": bearer(l_secret)}


# --- managing entries ---------------------------------------------------------------------------


def test_it_adds_a_tenant_wide_ipv4_entry(world, api):
    # given tenant A's admin key
    a = world.a
    # when it adds a CIDR without a key
    response = api.post(URL, {"cidr": "198.51.100.0/24", "note": "office"}, format="json", **a.auth)
    # then the entry is created tenant-wide and audited with the caller's key and address
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["cidr"] == "198.51.100.0/24" and body["api_key"] is None and body["note"] == "office"
    assert body["id"].startswith("ipa_")
    entry = IpAllowlistEntry.unscoped.get(public_id=body["id"])
    assert entry.tenant == a.tenant and entry.api_key is None
    (event,) = _audits(a.tenant, "ip_allowlist.added")[:1]
    assert event.target_id == entry.public_id and event.actor_api_key == a.api_key
    assert event.actor_label == f"api key {a.api_key.prefix}" and event.ip_address == "127.0.0.1"
    assert event.changes == {"cidr": "198.51.100.0/24", "api_key": None, "note": "office"}


@pytest.mark.parametrize(("given", "stored"), [
    ("198.51.100.7", "198.51.100.7/32"),
    ("198.51.100.7/24", "198.51.100.0/24"),
    (" 10.0.0.0/8 ", "10.0.0.0/8"),
    ("2001:db8::/32", "2001:db8::/32"),
    ("2001:DB8::1", "2001:db8::1/128"),
    ("::ffff:198.51.100.7", "198.51.100.7/32"),
    ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
])
def test_it_normalises_the_cidr(world, api, given, stored):
    # given a CIDR written in any accepted form; when added
    response = api.post(URL, {"cidr": given}, format="json", **world.a.auth)
    # then it is stored and shown in canonical form (IPv4-mapped as IPv4)
    assert response.status_code == 201, response.json()
    assert response.json()["cidr"] == stored
    assert IpAllowlistEntry.unscoped.get(public_id=response.json()["id"]).cidr == stored


def test_it_binds_an_entry_to_one_key(world, api):
    # given a second key of tenant A
    other, _ = make_api_key(world.a.tenant, name="bound")
    # when an IPv6 entry is added for that key
    response = api.post(URL, {"cidr": "2001:db8::/32", "api_key": other.public_id}, format="json", **world.a.auth)
    # then it is bound to it, and the audit names the key
    assert response.status_code == 201, response.json()
    assert response.json()["api_key"] == other.public_id
    assert IpAllowlistEntry.unscoped.get(public_id=response.json()["id"]).api_key == other
    assert _audits(world.a.tenant, "ip_allowlist.added")[0].changes["api_key"] == other.public_id


@pytest.mark.parametrize("cidr", ["not-an-ip", "300.1.2.3", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/8/8", "1.2.3"])
def test_it_refuses_an_invalid_cidr(world, api, cidr):
    # given the entries and audit events before
    before, audits_before = IpAllowlistEntry.unscoped.count(), AuditEvent.unscoped.count()
    # when an invalid CIDR is posted
    response = api.post(URL, {"cidr": cidr}, format="json", **world.a.auth)
    # then 400 invalid_cidr on the field, and nothing is written
    assert_error(response, 400, "invalid_cidr", field="cidr")
    assert IpAllowlistEntry.unscoped.count() == before
    assert AuditEvent.unscoped.count() == audits_before


def test_it_refuses_another_tenants_key_exactly_like_an_unknown_one(world, api):
    # given B's key id and an id that exists nowhere
    before = IpAllowlistEntry.unscoped.count()
    audits_before = AuditEvent.unscoped.count()
    # when A binds an entry to each
    foreign = api.post(URL, {"cidr": "10.0.0.0/8", "api_key": world.b.api_key.public_id}, format="json", **world.a.auth)
    unknown = api.post(URL, {"cidr": "10.0.0.0/8", "api_key": "key_doesnotexist00000000"}, format="json", **world.a.auth)
    # then both are 400 on the api_key field with the same body, and nothing is written
    assert_error(foreign, 400, "api_key_not_found", field="api_key")
    assert foreign.json() == unknown.json()
    assert IpAllowlistEntry.unscoped.count() == before
    assert AuditEvent.unscoped.count() == audits_before


def test_it_refuses_a_missing_cidr(world, api):
    # given no cidr; when posted; then 400 on the field
    assert_error(api.post(URL, {"note": "x"}, format="json", **world.a.auth), 400, "required", field="cidr")


def test_it_lists_only_the_tenants_entries(world, api):
    # given one more entry for A
    newer = services.ip_allowlist_add(tenant=world.a.tenant, cidr="2001:db8::/32", actor=services.SYSTEM)
    # when A lists its entries
    response = api.get(URL, **world.a.auth)
    # then exactly A's two entries, newest first, with no trace of B's
    assert response.status_code == 200
    assert [e["id"] for e in response.json()["results"]] == [newer.public_id, world.a.allowlist_entry.public_id]
    assert response.json()["results"][1]["api_key"] == world.a.api_key.public_id
    assert world.b.allowlist_entry.public_id not in response.content.decode()


def test_it_lists_entries_with_a_constant_number_of_queries(world, api, django_assert_num_queries):
    # given the query count for a list of one entry (after a first call that records the key's use)
    api.get("/v1/me", **world.a.auth)
    with CaptureQueriesContext(connection) as one:
        assert api.get(URL, **world.a.auth).status_code == 200
    # when ten more entries, bound to keys, exist
    for n in range(10):
        key, _ = make_api_key(world.a.tenant, name=f"k{n}")
        services.ip_allowlist_add(tenant=world.a.tenant, cidr=f"10.{n}.0.0/16", api_key=key, actor=services.SYSTEM)
    # then listing them costs no more queries (no query per row)
    with django_assert_num_queries(len(one.captured_queries)):
        assert len(api.get(URL, **world.a.auth).json()["results"]) == 11


def test_it_gets_and_deletes_an_entry(world, api):
    # given A's entry bound to its admin key
    entry = services.ip_allowlist_add(tenant=world.a.tenant, cidr="192.0.2.0/24", actor=services.SYSTEM)
    # when A gets it
    shown = api.get(f"{URL}/{entry.public_id}", **world.a.auth)
    # then it is shown
    assert shown.status_code == 200 and shown.json()["cidr"] == "192.0.2.0/24"
    # when A deletes it
    deleted = api.delete(f"{URL}/{entry.public_id}", **world.a.auth)
    # then 204, the row is gone, the removal is audited with the caller; deleting again is 404
    assert deleted.status_code == 204 and deleted.content == b""
    assert not IpAllowlistEntry.unscoped.filter(pk=entry.pk).exists()
    (event,) = _audits(world.a.tenant, "ip_allowlist.removed")
    assert event.target_id == entry.public_id and event.changes["cidr"] == "192.0.2.0/24"
    assert event.actor_api_key == world.a.api_key and event.ip_address == "127.0.0.1"
    assert_error(api.delete(f"{URL}/{entry.public_id}", **world.a.auth), 404, "not_found")


def test_it_hides_another_tenants_entry(world, api):
    # given B's entry
    entry = world.b.allowlist_entry
    # when A reads or deletes it, and a made-up id
    got = api.get(f"{URL}/{entry.public_id}", **world.a.auth)
    deleted = api.delete(f"{URL}/{entry.public_id}", **world.a.auth)
    missing = api.get(f"{URL}/ipa_doesnotexist000000000", **world.a.auth)
    # then 404 with the body of a missing entry, and B's entry is untouched
    assert_error(got, 404, "not_found")
    assert got.json() == deleted.json() == missing.json()
    assert IpAllowlistEntry.unscoped.filter(pk=entry.pk, cidr=entry.cidr).exists()
    assert not AuditEvent.unscoped.filter(action="ip_allowlist.removed").exists()


# --- enforcement ----------------------------------------------------------------------------------


def test_it_refuses_other_addresses_when_an_entry_applies(world, client, restricted):
    # given an entry for K only
    services.ip_allowlist_add(tenant=world.a.tenant, cidr="198.51.100.0/24", api_key=restricted["k"], actor=services.SYSTEM)
    # when K calls from outside and from inside the block
    outside = client.get("/v1/me", REMOTE_ADDR="203.0.113.9", **restricted["k_auth"])
    inside = client.get("/v1/me", REMOTE_ADDR="198.51.100.7", **restricted["k_auth"])
    # then outside is refused and not counted as a use; inside is served
    assert_error(outside, 403, "ip_not_allowed")
    assert inside.status_code == 200
    assert inside.json()["key"]["id"] == restricted["k"].public_id


def test_it_does_not_touch_last_used_when_refusing_an_address(world, client, restricted):
    # given an entry for K
    services.ip_allowlist_add(tenant=world.a.tenant, cidr="198.51.100.0/24", api_key=restricted["k"], actor=services.SYSTEM)
    # when K calls from outside only
    assert_error(client.get("/v1/me", **restricted["k_auth"]), 403, "ip_not_allowed")
    # then the key is not marked as used
    restricted["k"].refresh_from_db()
    assert restricted["k"].last_used_at is None


def test_an_entry_bound_to_one_key_does_not_restrict_another(world, client, restricted):
    # given an entry bound to K
    services.ip_allowlist_add(tenant=world.a.tenant, cidr="198.51.100.0/24", api_key=restricted["k"], actor=services.SYSTEM)
    # when L calls from an address outside K's block
    response = client.get("/v1/me", REMOTE_ADDR="203.0.113.9", **restricted["l_auth"])
    # then L is served
    assert response.status_code == 200


def test_a_tenant_wide_entry_restricts_every_key(world, client, restricted):
    # given a tenant-wide entry
    services.ip_allowlist_add(tenant=world.a.tenant, cidr="198.51.100.0/24", actor=services.SYSTEM)
    # when K and L call from outside; then both are refused, and the other tenant is not affected
    assert_error(client.get("/v1/me", **restricted["k_auth"]), 403, "ip_not_allowed")
    assert_error(client.get("/v1/me", **restricted["l_auth"]), 403, "ip_not_allowed")
    assert client.get("/v1/me", **world.b.auth).status_code == 200


@pytest.mark.parametrize(("remote_addr", "allowed"), [
    ("2001:db8::5", True),
    ("2001:db8:ffff::1", True),
    ("2001:db9::1", False),
    ("::ffff:198.51.100.7", True),
    ("198.51.100.255", True),
    ("198.51.101.1", False),
    ("::1", False),
])
def test_it_matches_ipv4_and_ipv6_clients(world, client, restricted, remote_addr, allowed):
    # given tenant-wide entries for an IPv4 and an IPv6 block
    for cidr in ("198.51.100.0/24", "2001:db8::/32"):
        services.ip_allowlist_add(tenant=world.a.tenant, cidr=cidr, actor=services.SYSTEM)
    # when K calls from the address
    response = client.get("/v1/me", REMOTE_ADDR=remote_addr, **restricted["k_auth"])
    # then it is served exactly when the address (IPv4-mapped read as IPv4) is in a block
    if allowed:
        assert response.status_code == 200
    else:
        assert_error(response, 403, "ip_not_allowed")


def test_an_ipv4_mapped_entry_admits_the_ipv4_client(world, api, restricted):
    # given an entry written as IPv4-mapped IPv6, added through the API
    added = api.post(URL, {"cidr": "::ffff:198.51.100.0/120", "api_key": restricted["k"].public_id}, format="json",
                     **world.a.auth)
    assert added.status_code == 201
    # when K calls from the IPv4 address and from outside; then served and refused
    assert api.get("/v1/me", REMOTE_ADDR="198.51.100.7", **restricted["k_auth"]).status_code == 200
    assert_error(api.get("/v1/me", REMOTE_ADDR="203.0.113.9", **restricted["k_auth"]), 403, "ip_not_allowed")


# KEY-5 through the API: trusted proxy 127.0.0.2/32, allowlist 198.51.100.0/24 and 2001:db8::/32.
PROXIED = [
    ("direct 127.0.0.1 with a spoofed allowed address", "127.0.0.1", "198.51.100.7", False),
    ("direct allowed client", "198.51.100.7", None, True),
    ("direct IPv6 client", "2001:db8::5", None, True),
    ("direct IPv4-mapped client", "::ffff:198.51.100.7", None, True),
    ("untrusted peer forwarding an allowed address", "203.0.113.9", "198.51.100.7", False),
    ("proxy: right-most hop is allowed", "127.0.0.2", "1.2.3.4, 198.51.100.7", True),
    ("proxy: forged allowed hop on the left", "127.0.0.2", "198.51.100.7, 203.0.113.9", False),
    ("proxy: empty header is the proxy itself", "127.0.0.2", "", False),
    ("proxy: garbage fails closed", "127.0.0.2", "garbage", False),
    ("proxy: garbage after an allowed hop fails closed", "127.0.0.2", "198.51.100.7, garbage", False),
    ("proxy: two header lines joined by the server", "127.0.0.2", "203.0.113.9, 198.51.100.7, 127.0.0.2", True),
    ("proxy: IPv6 client", "127.0.0.2", "2001:db8::5", True),
    ("proxy: IPv6 client outside the block", "127.0.0.2", "2001:db9::5", False),
    ("proxy: bracketed IPv6 with a port", "127.0.0.2", "[2001:db8::5]:443", True),
    ("proxy: IPv4 with a port", "127.0.0.2", "198.51.100.7:5555", True),
    ("proxy: IPv4-mapped client", "127.0.0.2", "::ffff:198.51.100.7", True),
    ("proxy: only proxy hops", "127.0.0.2", "127.0.0.2", False),
]


@pytest.mark.parametrize(("remote_addr", "forwarded_for", "allowed"), [row[1:] for row in PROXIED],
                         ids=[row[0] for row in PROXIED])
def test_it_applies_the_allowlist_to_the_real_client_behind_a_trusted_proxy(
    world, client, restricted, settings, remote_addr, forwarded_for, allowed
):
    # given a trusted proxy and a tenant-wide allowlist
    settings.TRUSTED_PROXIES = ["127.0.0.2/32"]
    for cidr in ("198.51.100.0/24", "2001:db8::/32"):
        services.ip_allowlist_add(tenant=world.a.tenant, cidr=cidr, actor=services.SYSTEM)
    headers = {"REMOTE_ADDR": remote_addr, **restricted["k_auth"]}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    # when K calls
    response = client.get("/v1/me", **headers)
    # then spoofed left-most values never grant access and malformed chains are denied
    if allowed:
        assert response.status_code == 200, response.json()
    else:
        assert_error(response, 403, "ip_not_allowed")
    restricted["k"].refresh_from_db()
    assert (restricted["k"].last_used_at is not None) is allowed


def test_the_audit_trail_records_the_real_client_behind_the_proxy(world, api, settings):
    # given a trusted proxy
    settings.TRUSTED_PROXIES = ["127.0.0.2/32"]
    # when A adds an entry through the proxy for a client whose chain starts with a forged hop
    response = api.post(URL, {"cidr": "192.0.2.0/24"}, format="json", REMOTE_ADDR="127.0.0.2",
                        HTTP_X_FORWARDED_FOR="10.9.9.9, 198.51.100.7", **world.a.auth)
    # then the audit event carries the address the proxy saw, not the forged one
    assert response.status_code == 201
    assert _audits(world.a.tenant, "ip_allowlist.added")[0].ip_address == "198.51.100.7"
