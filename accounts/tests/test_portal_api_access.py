"""Portal API keys and IP allowlist: create (secret once), scopes by role, revoke, allowlist add/remove."""
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, IpAllowlistEntry
from accounts.roles import Role, grantable_scopes
from accounts.tests.factories import bearer, login_verified

pytestmark = pytest.mark.django_db

CREATE = reverse("portal:api-key-create")
ALLOWLIST = reverse("portal:ip-allowlist")


def secret_on(response) -> str:
    return re.search(r'id="new-api-key-secret"[^>]*>(sk_\w+)<', response.content.decode()).group(1)


def test_a_key_created_in_the_portal_shows_its_secret_once_and_works(world, client):
    owner = world.a.owner
    login_verified(client, owner)

    response = client.post(CREATE, {"name": "Checkout", "mode": "live", "scopes": ["messages:send", "admin"]})

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = secret_on(response)
    assert "never be shown again" in response.content.decode()
    key = ApiKey.unscoped.get(tenant=world.a.tenant, name="Checkout")
    assert (key.mode, key.scopes, key.created_by) == ("live", ["messages:send", "admin"], owner)
    assert secret.startswith(f"sk_live_{key.key_id}_") and secret.endswith(key.last4)
    assert secret not in str(dict(client.session))
    assert AuditEvent.unscoped.filter(action="api_key.created", target_id=key.public_id, actor=owner).exists()

    listing = client.get(reverse("portal:api-keys"))
    assert secret not in listing.content.decode()
    assert f"{key.prefix}…{key.last4}" in listing.content.decode()

    me = client.get("/v1/me", **bearer(secret))
    assert me.status_code == 200 and me.json()["tenant"]["slug"] == "alpha"


def test_a_developer_may_grant_only_the_scopes_of_their_role(world, client):
    login_verified(client, world.a.members[Role.DEVELOPER])

    form = client.get(CREATE).context["form"]
    offered = [value for value, _label in form.fields["scopes"].choices]
    refused = client.post(CREATE, {"name": "too much", "mode": "test", "scopes": ["admin"]})
    allowed = client.post(CREATE, {"name": "sender", "mode": "test", "scopes": ["messages:send"]})

    assert offered == grantable_scopes(Role.DEVELOPER) and "admin" not in offered
    assert refused.status_code == 200 and refused.context["form"].errors["scopes"]
    assert not ApiKey.unscoped.filter(name="too much").exists()
    assert allowed.status_code == 201
    assert ApiKey.unscoped.get(tenant=world.a.tenant, name="sender").scopes == ["messages:send"]


def test_create_shows_errors_next_to_fields(world, client):
    login_verified(client, world.a.owner)

    response = client.post(CREATE, {"name": "", "mode": "test", "scopes": [], "expires_at": "2001-01-01T00:00"})
    past = client.post(CREATE, {"name": "old", "mode": "test", "scopes": ["admin"], "expires_at": "2001-01-01T00:00"})

    assert set(response.context["form"].errors) == {"name", "scopes"}
    assert past.context["form"].errors["expires_at"] == ["The expiry must be in the future."]
    assert 'class="field-error"' in past.content.decode()
    assert ApiKey.unscoped.filter(tenant=world.a.tenant).count() == 1


def test_revoking_a_key_after_confirming(world, client):
    login_verified(client, world.a.owner)
    key = world.a.api_key
    url = reverse("portal:api-key-revoke", args=[key.public_id])

    assert client.get(url).status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is None

    response = client.post(url)

    assert response["Location"] == reverse("portal:api-keys")
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert client.get("/v1/me", **world.a.auth).status_code == 401
    assert AuditEvent.unscoped.filter(action="api_key.revoked", target_id=key.public_id).count() == 1
    assert "Revoked" in client.get(reverse("portal:api-keys")).content.decode()


def test_the_keys_page_has_an_empty_state(world, client):
    ApiKey.unscoped.filter(tenant=world.a.tenant).delete()
    login_verified(client, world.a.owner)

    html = client.get(reverse("portal:api-keys")).content.decode()

    assert "No API keys yet" in html and CREATE in html


def test_allowlist_add_bound_to_a_key_then_remove(world, client):
    login_verified(client, world.a.members[Role.ADMIN])
    IpAllowlistEntry.unscoped.filter(tenant=world.a.tenant).delete()

    page = client.get(ALLOWLIST)
    assert "refused with <strong>403</strong> <code>ip_not_allowed</code>" in page.content.decode()
    assert "No entries yet" in page.content.decode()
    response = client.post(ALLOWLIST, {"cidr": " 203.0.113.9 ", "api_key": world.a.api_key.public_id, "note": "VPN"})

    assert response["Location"] == ALLOWLIST
    entry = IpAllowlistEntry.unscoped.get(tenant=world.a.tenant)
    assert (entry.cidr, entry.api_key, entry.note) == ("203.0.113.9/32", world.a.api_key, "VPN")
    assert client.get("/v1/me", **world.a.auth).status_code == 403  # the test client is 127.0.0.1
    assert AuditEvent.unscoped.filter(action="ip_allowlist.added", target_id=entry.public_id).exists()

    removed = client.post(reverse("portal:ip-allowlist-remove", args=[entry.public_id]))

    assert removed["Location"] == ALLOWLIST
    assert not IpAllowlistEntry.unscoped.filter(tenant=world.a.tenant).exists()
    assert client.get("/v1/me", **world.a.auth).status_code == 200


def test_allowlist_refuses_a_bad_cidr_and_another_tenants_key(world, client):
    login_verified(client, world.a.owner)

    bad = client.post(ALLOWLIST, {"cidr": "10.0.0.300"})
    foreign = client.post(ALLOWLIST, {"cidr": "10.0.0.0/8", "api_key": world.b.api_key.public_id})

    assert bad.status_code == 200 and "not a valid IPv4 or IPv6" in bad.context["form"].errors["cidr"][0]
    assert foreign.status_code == 200 and foreign.context["form"].errors["api_key"]
    assert IpAllowlistEntry.unscoped.filter(tenant=world.a.tenant).count() == 1


def test_a_developer_sees_the_allowlist_but_cannot_change_it(world, client):
    login_verified(client, world.a.members[Role.DEVELOPER])

    page = client.get(ALLOWLIST)
    add = client.post(ALLOWLIST, {"cidr": "10.0.0.0/8"})
    remove = client.post(reverse("portal:ip-allowlist-remove", args=[world.a.allowlist_entry.public_id]))

    assert page.status_code == 200 and "0.0.0.0/0" in page.content.decode()
    assert 'name="cidr"' not in page.content.decode()
    assert add.status_code == 403 and remove.status_code == 403
    assert list(IpAllowlistEntry.unscoped.filter(tenant=world.a.tenant)) == [world.a.allowlist_entry]


def test_an_expired_key_is_shown_as_expired(world, client):
    ApiKey.unscoped.filter(pk=world.a.api_key.pk).update(expires_at=timezone.now())
    login_verified(client, world.a.owner)

    html = client.get(reverse("portal:api-keys")).content.decode()

    assert "Expired" in html
