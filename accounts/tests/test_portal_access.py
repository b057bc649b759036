"""Who reaches which portal page: sign-in and 2FA gates, the role matrix, tenants, suspension."""
import pytest
from django.urls import URLResolver, reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.middleware import PRE_OTP_PREFIXES, PUBLIC_PREFIXES
from accounts.models import ApiKey, Invitation, IpAllowlistEntry, Membership, Tenant
from accounts.portal import urls as portal_urls
from accounts.roles import Role
from accounts.tests.factories import MembershipFactory, UserFactory, login_verified

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(world):
    """The shared world, with a consent record and a suppression for each tenant: their routes are walked too."""
    from compliance.tests.consent_helpers import consent_rows

    consent_rows(world)
    return world


def portal_routes(side):
    """(name, path) for every portal URL pattern, included ones too, with the side's real object ids."""
    values = {
        "api_key_id": side.api_key.public_id,
        "entry_id": side.allowlist_entry.public_id,
        "membership_id": side.membership(Role.VIEWER).public_id,
        "invitation_id": side.extra["invitation"].public_id,
        "message_id": side.extra["message"].public_id,
        "template_id": side.extra["template"].public_id,
        "endpoint_id": side.extra["webhook_endpoint"].public_id,
        "delivery_id": side.extra["webhook_delivery"].public_id,
        "number_id": side.extra["assignment"].number.public_id,
        "lease_id": side.extra["lease"].public_id,
        "pool_id": side.extra["pool"].public_id,
        "invoice_id": side.extra["invoice"].public_id,
        "credit_note_id": side.extra["credit_note"].public_id,
        "suppression_id": side.extra["suppression"].public_id,
        "token": "not-a-real-token",
        "uidb64": "MQ",
    }
    for pattern in _flat(portal_urls.urlpatterns):
        kwargs = {name: values[name] for name in pattern.pattern.converters}
        yield pattern.name, reverse(f"portal:{pattern.name}", kwargs=kwargs)


def _flat(patterns):
    # Other apps' portal pages are included into the namespace (path("", include(...))).
    for entry in patterns:
        yield from _flat(entry.url_patterns) if isinstance(entry, URLResolver) else [entry]


def test_every_portal_page_sends_an_anonymous_visitor_to_sign_in(world, client):
    walked = 0
    for name, path in portal_routes(world.a):
        for method in (client.get, client.post):
            response = method(path)
            if path.startswith(PUBLIC_PREFIXES):
                assert response.status_code in (200, 302, 404, 405), name
                assert not response.get("Location", "").startswith(reverse("portal:login") + "?"), name
            else:
                assert response.status_code == 302, name
                assert response["Location"] == f"{reverse('portal:login')}?next={path}", name
                walked += 1
    assert walked >= 2 * 15
    assert ApiKey.unscoped.filter(tenant=world.a.tenant).count() == 1


def test_every_portal_page_needs_the_second_factor_once_a_device_exists(world, client):
    owner = world.a.owner
    TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    client.force_login(owner)  # the password only

    for name, path in portal_routes(world.a):
        if path.startswith(PUBLIC_PREFIXES + PRE_OTP_PREFIXES):
            continue
        for method in (client.get, client.post):
            response = method(path)
            assert response.status_code == 302, name
            assert response["Location"] == f"{reverse('portal:2fa-verify')}?next={path}", name
    assert Membership.unscoped.filter(tenant=world.a.tenant).count() == len(Role.values)
    assert IpAllowlistEntry.unscoped.filter(tenant=world.a.tenant).count() == 1


@pytest.mark.parametrize("role", Role.values)
def test_the_side_navigation_shows_only_what_the_role_may_see(world, client, role):
    login_verified(client, world.a.members[role])

    html = client.get(reverse("portal:dashboard")).content.decode()
    nav = html.split('<nav class="sidebar"', 1)[1].split("</nav>", 1)[0]

    expected = {
        reverse("portal:team"): True,
        reverse("portal:api-keys"): role != Role.BILLING,
        reverse("portal:ip-allowlist"): role in (Role.OWNER, Role.ADMIN, Role.DEVELOPER),
        reverse("portal:audit-log"): role in (Role.OWNER, Role.ADMIN),
        reverse("portal:security"): role == Role.OWNER,
    }
    assert {path: f'href="{path}"' in nav for path in expected} == expected


def test_a_viewer_cannot_create_keys(world, client):
    login_verified(client, world.a.members[Role.VIEWER])
    url = reverse("portal:api-key-create")

    page = client.get(url)
    post = client.post(url, {"name": "x", "mode": "test", "scopes": ["messages:read"]})

    assert page.status_code == 403 and post.status_code == 403
    assert "You can’t do that here" in page.content.decode()
    assert ApiKey.unscoped.filter(tenant=world.a.tenant).count() == 1
    listing = client.get(reverse("portal:api-keys"))
    assert listing.status_code == 200 and url not in listing.content.decode()


def test_a_developer_cannot_manage_the_team(world, client):
    login_verified(client, world.a.members[Role.DEVELOPER])
    viewer = world.a.membership(Role.VIEWER)

    assert client.get(reverse("portal:team")).status_code == 200
    assert client.get(reverse("portal:invite")).status_code == 403
    assert client.post(reverse("portal:invite"), {"email": "x@example.com", "role": "viewer"}).status_code == 403
    assert client.post(reverse("portal:member-role", args=[viewer.public_id]), {"role": "owner"}).status_code == 403
    assert client.post(reverse("portal:member-remove", args=[viewer.public_id])).status_code == 403
    invitation = world.a.extra["invitation"]
    assert client.post(reverse("portal:invitation-revoke", args=[invitation.public_id])).status_code == 403

    viewer.refresh_from_db()
    invitation.refresh_from_db()
    assert viewer.role == Role.VIEWER and invitation.revoked_at is None
    assert not Invitation.unscoped.filter(tenant=world.a.tenant, email="x@example.com").exists()


def test_billing_cannot_see_keys_and_admin_cannot_change_security(world, client):
    login_verified(client, world.a.members[Role.BILLING])
    assert client.get(reverse("portal:api-keys")).status_code == 403
    assert client.get(reverse("portal:ip-allowlist")).status_code == 403

    login_verified(client, world.a.members[Role.ADMIN])
    assert client.post(reverse("portal:security"), {"require_2fa": "on"}).status_code == 403
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.require_2fa is False


def test_another_tenants_objects_are_not_found(world, client):
    login_verified(client, world.a.owner, tenant=world.a.tenant)

    object_routes = [(name, path) for name, path in portal_routes(world.b)
                     if name.endswith(("-role", "-remove", "-revoke")) and not path.startswith(PUBLIC_PREFIXES)]
    assert len(object_routes) == 5
    for name, path in object_routes:
        assert client.get(path).status_code == 404, name
        assert client.post(path, {"role": "viewer"}).status_code == 404, name
    assert world.b.api_key.revoked_at is None
    assert IpAllowlistEntry.unscoped.filter(pk=world.b.allowlist_entry.pk).exists()
    assert Membership.unscoped.get(pk=world.b.membership(Role.VIEWER).pk).role == Role.VIEWER


def test_a_person_without_a_team_sees_a_friendly_page(client, db):
    user = UserFactory()
    login_verified(client, user)

    page = client.get(reverse("portal:dashboard"))
    team = client.get(reverse("portal:team"))

    assert page.status_code == 200
    assert "You are not a member of any team" in page.content.decode()
    assert team["Location"] == reverse("portal:dashboard")


def test_switching_tenant_needs_a_membership(world, client):
    user = world.a.members[Role.DEVELOPER]
    MembershipFactory(tenant=world.b.tenant, user=user, role=Role.VIEWER)
    third = Tenant.objects.create(slug="charlie", name="Charlie Corp")
    login_verified(client, user, tenant=world.a.tenant)
    assert client.get(reverse("portal:dashboard")).context["active_tenant"] == world.a.tenant

    response = client.post(reverse("portal:switch-tenant"), {"tenant": world.b.tenant.slug})

    assert response["Location"] == reverse("portal:dashboard")
    assert client.session["tenant_id"] == world.b.tenant.pk
    page = client.get(reverse("portal:dashboard"))
    assert page.context["active_tenant"] == world.b.tenant
    assert page.context["active_membership"].role == Role.VIEWER
    assert client.get(reverse("portal:api-key-create")).status_code == 403  # a viewer in bravo

    refused = client.post(reverse("portal:switch-tenant"), {"tenant": third.slug})
    assert refused.status_code == 404
    assert client.session["tenant_id"] == world.b.tenant.pk
    assert client.get(reverse("portal:switch-tenant")).status_code == 405


def test_a_suspended_tenants_portal_is_read_only(world, client):
    tenant = world.a.tenant
    services.tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, actor=services.SYSTEM)
    login_verified(client, world.a.owner)
    viewer = world.a.membership(Role.VIEWER)

    attempts = [
        (reverse("portal:api-key-create"), {"name": "x", "mode": "test", "scopes": ["admin"]}),
        (reverse("portal:api-key-revoke", args=[world.a.api_key.public_id]), {}),
        (reverse("portal:ip-allowlist"), {"cidr": "10.0.0.0/8"}),
        (reverse("portal:member-role", args=[viewer.public_id]), {"role": "admin"}),
        (reverse("portal:member-remove", args=[viewer.public_id]), {}),
        (reverse("portal:invite"), {"email": "new@example.com", "role": "viewer"}),
        (reverse("portal:security"), {"require_2fa": "on"}),
    ]
    for path, data in attempts:
        response = client.post(path, data)
        assert response.status_code == 302 and response["Location"] == path, path

    page = client.get(reverse("portal:dashboard"))
    assert page.status_code == 200 and "is suspended" in page.content.decode()
    keys_page = client.get(reverse("portal:api-keys")).content.decode()
    assert reverse("portal:api-key-create") not in keys_page and "Revoke" not in keys_page
    assert ApiKey.unscoped.filter(tenant=tenant).count() == 1 and world.a.api_key.is_usable()
    assert IpAllowlistEntry.unscoped.filter(tenant=tenant).count() == 1
    assert Membership.unscoped.get(pk=viewer.pk).role == Role.VIEWER
    tenant.refresh_from_db()
    assert tenant.require_2fa is False
    assert not Invitation.unscoped.filter(tenant=tenant, email="new@example.com").exists()


def test_a_member_of_a_suspended_tenant_can_still_finish_signing_in(world, client):
    services.tenant_set_status(tenant=world.a.tenant, status=Tenant.Status.SUSPENDED, actor=services.SYSTEM)
    owner = world.a.owner
    device = TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    client.force_login(owner)

    token = f"{totp(device.bin_key):06d}"
    response = client.post(reverse("portal:2fa-verify"), {"token": token})

    assert response["Location"] == reverse("portal:dashboard")
    assert client.get(reverse("portal:dashboard")).status_code == 200
