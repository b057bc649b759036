"""Portal tenant settings: the audit log (filter, pages) and the require-2FA policy; the dashboard."""
import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AuditEvent
from accounts.roles import Role
from accounts.tests.factories import login_verified

pytestmark = pytest.mark.django_db

AUDIT = reverse("portal:audit-log")


def test_the_audit_log_shows_this_tenants_events(world, client):
    login_verified(client, world.a.members[Role.ADMIN])
    services.api_key_revoke(tenant=world.a.tenant, api_key=world.a.api_key,
                            actor=services.Actor(user=world.a.owner, ip="203.0.113.5"))
    services.api_key_revoke(tenant=world.b.tenant, api_key=world.b.api_key, actor=services.SYSTEM)

    page = client.get(AUDIT)

    html = page.content.decode()
    events = list(page.context["page"].object_list)
    assert page.status_code == 200
    assert {e.tenant_id for e in events} == {world.a.tenant.pk}
    assert events[0].action == "api_key.revoked"
    assert "203.0.113.5" in html and "owner@alpha.example.com" in html and world.a.api_key.public_id in html
    assert world.b.api_key.public_id not in html


def test_the_audit_log_filters_by_action_and_pages_by_fifty(world, client):
    login_verified(client, world.a.owner)
    for n in range(55):
        services.audit_record(action="test.bulk", actor=services.SYSTEM, tenant=world.a.tenant, changes={"n": n})

    first = client.get(AUDIT, {"action": "test.bulk"})
    second = client.get(AUDIT, {"action": "test.bulk", "page": 2})
    unknown = client.get(AUDIT, {"action": "no.such.action"})

    assert len(first.context["page"].object_list) == 50
    assert {e.action for e in first.context["page"].object_list} == {"test.bulk"}
    assert len(second.context["page"].object_list) == 5
    assert "?action=test.bulk&amp;page=2" in first.content.decode()
    # An action that is not in the menu is ignored: the whole log, first page.
    assert unknown.status_code == 200 and unknown.context["action"] == ""
    assert unknown.context["page"].paginator.count == AuditEvent.unscoped.filter(tenant=world.a.tenant).count()


def test_the_audit_log_shows_role_changes_readably(world, client):
    login_verified(client, world.a.owner)
    services.membership_change_role(tenant=world.a.tenant, membership=world.a.membership(Role.VIEWER),
                                    role=Role.ADMIN, actor=services.Actor(user=world.a.owner), actor_role=Role.OWNER)

    html = client.get(AUDIT, {"action": "membership.role_changed"}).content.decode()

    assert "viewer → admin" in html


def test_an_owner_requires_2fa_for_everyone(world, client):
    owner = world.a.owner
    login_verified(client, owner)
    url = reverse("portal:security")
    assert client.get(url).status_code == 200

    response = client.post(url, {"require_2fa": "on"})

    assert response["Location"] == url
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.require_2fa is True
    event = AuditEvent.unscoped.get(action="tenant.require_2fa_changed", tenant=world.a.tenant)
    assert event.actor == owner and event.changes == {"require_2fa": True}
    # A member without a device is now sent to enrolment.
    member = client.__class__()
    member.force_login(world.a.members[Role.VIEWER])
    assert member.get(reverse("portal:dashboard"))["Location"] == reverse("portal:2fa-setup")

    client.post(url, {})
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.require_2fa is False


def test_the_dashboard_summarises_the_tenant(world, client):
    login_verified(client, world.a.members[Role.VIEWER])

    page = client.get(reverse("portal:dashboard"))

    assert page.status_code == 200
    assert page.context["summary"]["members"] == len(Role.values)
    assert page.context["summary"]["active_keys"] == 1
    assert page.context["summary"]["pending_invitations"] == 1
    html = page.content.decode()
    assert "Alpha Industries" in html and "Bravo" not in html
    assert reverse("portal:api-key-create") not in html  # a viewer cannot create keys
