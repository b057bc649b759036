"""Management commands: create_tenant, create_api_key, seed_demo (idempotent)."""
import io
import re

import pytest
from django.core.management import CommandError, call_command

from accounts import services
from accounts.models import ApiKey, AuditEvent, Membership, Tenant, User
from accounts.roles import Role
from accounts.tests.factories import bearer

pytestmark = pytest.mark.django_db


def _run(*args, **options) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out, **options)
    return out.getvalue().strip().splitlines()


# --- create_tenant ----------------------------------------------------------------------------------


def test_create_tenant_creates_the_tenant_its_owner_and_membership(client):
    # given nothing; when the command runs with a password
    lines = _run("create_tenant", "acme", "--name", "Acme Ltd", "--owner-email", "Boss@Acme.example.com",
                 "--password", "a long enough password")
    # then the tenant, the owner (email lower-cased) and an owner membership exist, and it is audited
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Ltd" and tenant.status == "active"
    owner = User.objects.get(email="boss@acme.example.com")
    assert Membership.unscoped.get(tenant=tenant, user=owner).role == Role.OWNER
    event = AuditEvent.unscoped.get(tenant=tenant, action="tenant.created")
    assert event.actor_label == "system" and event.changes == {"owner": "boss@acme.example.com"}
    assert lines == ["Created tenant acme (Acme Ltd) with owner boss@acme.example.com"]
    # and the owner can sign in with that password
    assert client.login(email="boss@acme.example.com", password="a long enough password")


def test_create_tenant_without_a_password_leaves_an_unusable_one(db):
    # given no --password; when run; then the owner must use password reset
    _run("create_tenant", "acme", "--name", "Acme Ltd", "--owner-email", "boss@acme.example.com")
    assert not User.objects.get(email="boss@acme.example.com").has_usable_password()


def test_create_tenant_adds_an_existing_person_as_owner(world):
    # given a person who already belongs to tenant A
    person = world.a.members[Role.VIEWER]
    # when they become the owner of a new tenant
    _run("create_tenant", "second", "--name", "Second Co", "--owner-email", person.email)
    # then no second user is made, and they own the new tenant while keeping their old role
    assert User.objects.filter(email=person.email).count() == 1
    assert Membership.unscoped.get(tenant__slug="second", user=person).role == Role.OWNER
    assert Membership.unscoped.get(tenant=world.a.tenant, user=person).role == Role.VIEWER


@pytest.mark.parametrize("slug", ["alpha", "Alpha", "ALPHA "])
def test_create_tenant_refuses_a_duplicate_slug(world, slug):
    # given tenant "alpha" exists, and the rows before
    counts = (Tenant.objects.count(), User.objects.count(), AuditEvent.unscoped.count())
    # when the command is asked for the same slug (in any spelling that slugifies to it)
    with pytest.raises(CommandError, match="already exists"):
        _run("create_tenant", slug, "--name", "Impostor", "--owner-email", "impostor@example.com")
    # then nothing is created and alpha keeps its name
    assert (Tenant.objects.count(), User.objects.count(), AuditEvent.unscoped.count()) == counts
    assert Tenant.objects.get(slug="alpha").name == "Alpha Industries"


# --- create_api_key ---------------------------------------------------------------------------------


def test_create_api_key_prints_the_secret_alone_on_the_last_line(world, client):
    # given tenant A; when a key is created with defaults
    lines = _run("create_api_key", "alpha", "--name", "ops")
    secret = lines[-1]
    # then the last line is the secret and nothing else, and the key is a test key with every scope
    assert re.fullmatch(services.API_KEY_RE, secret) and services.api_key_well_formed(secret)
    key = ApiKey.unscoped.get(tenant=world.a.tenant, name="ops")
    assert key.mode == "test" and key.scopes == ["admin"] and secret.startswith(key.prefix + "_")
    assert secret not in "\n".join(lines[:-1]) and key.public_id in lines[0]
    assert AuditEvent.unscoped.get(tenant=world.a.tenant, action="api_key.created", target_id=key.public_id)
    # and the secret authenticates as tenant A
    me = client.get("/v1/me", **bearer(secret))
    assert me.status_code == 200 and me.json()["key"]["id"] == key.public_id
    assert me.json()["tenant"]["slug"] == "alpha"


def test_create_api_key_with_mode_and_scopes(world, client):
    # given tenant A; when a live key limited to two scopes is created
    secret = _run("create_api_key", "alpha", "--name", "sender", "--mode", "live",
                  "--scope", "messages:send", "--scope", "messages:read")[-1]
    # then it has exactly those, and works, but cannot manage keys
    key = ApiKey.unscoped.get(name="sender")
    assert key.mode == "live" and key.scopes == ["messages:send", "messages:read"]
    assert secret.startswith("sk_live_")
    assert client.get("/v1/me", **bearer(secret)).json()["key"]["scopes"] == ["messages:send", "messages:read"]
    assert client.get("/v1/api-keys", **bearer(secret)).status_code == 403


def test_create_api_key_refuses_an_unknown_tenant_or_scope(world):
    # given no tenant "nope"; when asked; then a clear error and no key
    keys = ApiKey.unscoped.count()
    with pytest.raises(CommandError, match="No tenant"):
        _run("create_api_key", "nope", "--name", "x")
    with pytest.raises(CommandError):
        _run("create_api_key", "alpha", "--name", "x", "--scope", "everything")
    assert ApiKey.unscoped.count() == keys


# --- seed_demo --------------------------------------------------------------------------------------


def _printed(lines: list[str]) -> tuple[str, str]:
    """(password, key) from seed_demo's output."""
    text = "\n".join(lines)
    password = re.search(r"password (\S+)\)", text).group(1)
    key = re.search(r"Test key: (\S+)", text).group(1)
    return password, key


def test_seed_demo_twice_leaves_one_demo_that_works(db, client):
    # given the demo seeded once
    first_password, first_key = _printed(_run("seed_demo"))
    # when seeded again
    password, key = _printed(_run("seed_demo"))
    # then there is still one demo tenant, one owner and exactly one active demo key
    tenant = Tenant.objects.get(slug="demo")
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert User.objects.filter(email="demo@example.com").count() == 1
    assert list(Membership.unscoped.filter(tenant=tenant).values_list("user__email", "role")) == [
        ("demo@example.com", Role.OWNER)]
    active = [k for k in ApiKey.unscoped.filter(tenant=tenant, name="Demo test key") if k.is_usable()]
    assert len(active) == 1 and active[0].mode == "test"
    assert ApiKey.unscoped.filter(tenant=tenant, name="Demo test key", revoked_at__isnull=False).count() == 1
    # and the printed password signs in, while the first run's password no longer does
    assert client.login(email="demo@example.com", password=password)
    client.logout()
    assert not client.login(email="demo@example.com", password=first_password)
    # and the printed key works, while the first run's key was revoked
    me = client.get("/v1/me", **bearer(key))
    assert me.status_code == 200 and me.json()["tenant"]["slug"] == "demo"
    assert me.json()["key"]["id"] == active[0].public_id
    assert client.get("/v1/me", **bearer(first_key)).status_code == 401
    assert AuditEvent.unscoped.filter(tenant=tenant, action="api_key.revoked").count() == 1


def test_seed_demo_prints_a_working_curl_line(db):
    # given a fresh database; when seeded; then the curl example carries the printed key
    lines = _run("seed_demo")
    _, key = _printed(lines)
    assert any(line.strip().startswith("Try:") and f"Bearer {key}" in line and "/v1/me" in line for line in lines)
