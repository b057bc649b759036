"""Portal team pages: roles, removal, the last-owner guard, invitations sent and accepted."""
import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.urls import reverse

from accounts import services
from accounts.models import AuditEvent, Invitation, Membership, User
from accounts.roles import Role
from accounts.tests.factories import PASSWORD, UserFactory, login_verified

pytestmark = pytest.mark.django_db

TEAM = reverse("portal:team")


def invite_link(email: str) -> str:
    message = next(m for m in reversed(mail.outbox) if m.to == [email])
    return re.search(r"http://testserver(/portal/invitations/[\w-]+/)", message.body).group(1)


def test_the_team_page_lists_members_and_pending_invitations(world, client):
    login_verified(client, world.a.members[Role.VIEWER])

    page = client.get(TEAM)

    html = page.content.decode()
    assert page.status_code == 200
    for user in world.a.members.values():
        assert user.email in html
    assert "invitee@alpha.example.com" in html
    assert "invitee@bravo.example.com" not in html and "owner@bravo.example.com" not in html
    assert reverse("portal:invite") not in html  # a viewer gets no management controls


def test_an_admin_changes_a_role(world, client):
    login_verified(client, world.a.members[Role.ADMIN])
    viewer = world.a.membership(Role.VIEWER)

    response = client.post(reverse("portal:member-role", args=[viewer.public_id]), {"role": Role.DEVELOPER})

    assert response["Location"] == TEAM
    viewer.refresh_from_db()
    assert viewer.role == Role.DEVELOPER
    event = AuditEvent.unscoped.get(action="membership.role_changed", target_id=viewer.public_id)
    assert event.actor == world.a.members[Role.ADMIN] and event.changes["role"] == ["viewer", "developer"]
    assert "is now developer" in client.get(TEAM).content.decode()


def test_an_admin_cannot_make_an_owner(world, client):
    login_verified(client, world.a.members[Role.ADMIN])
    viewer = world.a.membership(Role.VIEWER)

    response = client.post(reverse("portal:member-role", args=[viewer.public_id]), {"role": Role.OWNER})

    assert response.status_code == 200
    assert response.context["form"].errors["role"] == ["Only an owner can grant or change the owner role."]
    viewer.refresh_from_db()
    assert viewer.role == Role.VIEWER


def test_the_last_owner_cannot_be_demoted_or_removed(world, client):
    owner = world.a.owner
    membership = world.a.membership(Role.OWNER)
    login_verified(client, owner)
    events_before = AuditEvent.unscoped.filter(tenant=world.a.tenant).count()

    demote = client.post(reverse("portal:member-role", args=[membership.public_id]), {"role": Role.ADMIN})
    remove = client.post(reverse("portal:member-remove", args=[membership.public_id]))

    assert demote.status_code == 200
    assert "The last owner cannot be demoted" in demote.content.decode()
    assert demote.context["form"].errors["role"]
    assert remove.status_code == 200
    assert "The last owner cannot be removed" in remove.content.decode()
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert AuditEvent.unscoped.filter(tenant=world.a.tenant).count() == events_before


def test_an_owner_removes_a_member_after_confirming(world, client):
    login_verified(client, world.a.owner)
    developer = world.a.membership(Role.DEVELOPER)
    url = reverse("portal:member-remove", args=[developer.public_id])

    confirm = client.get(url)
    assert confirm.status_code == 200 and "Remove developer@alpha.example.com?" in confirm.content.decode()
    assert Membership.unscoped.filter(pk=developer.pk).exists()

    response = client.post(url)

    assert response["Location"] == TEAM
    assert not Membership.unscoped.filter(pk=developer.pk).exists()
    assert User.objects.filter(email="developer@alpha.example.com").exists()
    assert AuditEvent.unscoped.filter(action="membership.removed", target_id=developer.public_id).exists()


def test_inviting_sends_an_email_and_a_new_person_joins_with_a_password(world, client, django_capture_on_commit_callbacks):
    login_verified(client, world.a.members[Role.ADMIN])
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("portal:invite"), {"email": "New.Hire@Example.com", "role": Role.DEVELOPER})

    assert response["Location"] == TEAM
    invitation = Invitation.unscoped.get(tenant=world.a.tenant, email="new.hire@example.com")
    assert invitation.role == Role.DEVELOPER and invitation.invited_by == world.a.members[Role.ADMIN]
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.hire@example.com"]
    assert "Alpha Industries" in mail.outbox[0].body
    link = invite_link("new.hire@example.com")

    visitor = client.__class__()
    page = visitor.get(link)
    assert page.status_code == 200 and page.context["state"] == "new_account"
    assert "Join Alpha Industries" in page.content.decode()
    too_short = visitor.post(link, {"password1": "short", "password2": "short"})
    assert too_short.context["form"].errors["password1"]
    assert not User.objects.filter(email="new.hire@example.com").exists()

    joined = visitor.post(link, {"password1": PASSWORD, "password2": PASSWORD})

    assert joined["Location"] == reverse("portal:dashboard")
    user = User.objects.get(email="new.hire@example.com")
    assert user.check_password(PASSWORD)
    assert Membership.unscoped.get(tenant=world.a.tenant, user=user).role == Role.DEVELOPER
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert visitor.session[SESSION_KEY] == str(user.pk)
    assert visitor.get(reverse("portal:dashboard")).context["active_tenant"] == world.a.tenant
    assert visitor.get(link).status_code == 404  # used


def test_an_existing_account_accepts_while_signed_in(world, client, django_capture_on_commit_callbacks):
    outsider = world.b.members[Role.DEVELOPER]
    with django_capture_on_commit_callbacks(execute=True):
        invitation = services.invitation_create(
            tenant=world.a.tenant, email=outsider.email, role=Role.VIEWER, actor=services.Actor(user=world.a.owner),
            actor_role=Role.OWNER, accept_url_template="http://testserver/portal/invitations/{token}/",
        )
    link = invite_link(outsider.email)

    anonymous = client.get(link)
    assert anonymous.context["state"] == "sign_in"
    assert client.post(link, {"password1": "x" * 12, "password2": "x" * 12}).context["state"] == "sign_in"
    assert not Membership.unscoped.filter(tenant=world.a.tenant, user=outsider).exists()

    login_verified(client, outsider)
    page = client.get(link)
    assert page.context["state"] == "join"
    response = client.post(link)

    assert response["Location"] == reverse("portal:dashboard")
    assert Membership.unscoped.get(tenant=world.a.tenant, user=outsider).role == Role.VIEWER
    invitation.refresh_from_db()
    assert invitation.accepted_at is not None
    assert client.session["tenant_id"] == world.a.tenant.pk


def test_someone_else_signed_in_cannot_accept(world, client, django_capture_on_commit_callbacks):
    link_owner = "invitee@alpha.example.com"
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(
            tenant=world.a.tenant, email=link_owner, role=Role.ADMIN, actor=services.SYSTEM, actor_role=Role.OWNER,
            accept_url_template="http://testserver/portal/invitations/{token}/",
        )
    login_verified(client, UserFactory(email="intruder@example.com"))
    link = invite_link(link_owner)

    page = client.get(link)
    client.post(link)

    assert page.context["state"] == "other_user"
    assert not Membership.unscoped.filter(tenant=world.a.tenant, user__email="intruder@example.com").exists()


def test_an_owner_revokes_an_invitation(world, client):
    login_verified(client, world.a.owner)
    invitation = world.a.extra["invitation"]

    response = client.post(reverse("portal:invitation-revoke", args=[invitation.public_id]))

    assert response["Location"] == TEAM
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert list(client.get(TEAM).context["invitations"]) == []


def test_inviting_a_member_shows_the_error_next_to_the_email(world, client):
    login_verified(client, world.a.owner)

    response = client.post(reverse("portal:invite"), {"email": world.a.members[Role.VIEWER].email, "role": "viewer"})

    assert response.status_code == 200
    assert response.context["form"].errors["email"] == ["This person is already a member of the team."]
    assert not Invitation.unscoped.filter(email=world.a.members[Role.VIEWER].email).exists()
