"""The tenant's HELP reply: set in the portal (owners, audited) and shown in admin."""
import pytest
from django.urls import reverse

from accounts import services
from accounts.models import AuditEvent, User
from accounts.roles import Role
from accounts.tests.factories import PASSWORD, login_verified
from smsportal.errors import DomainError

pytestmark = pytest.mark.django_db

URL = reverse("portal:security")


def _post(client, text: str):
    return client.post(URL, {"form": "help_reply", "help_reply": text})


def test_an_owner_sets_the_help_reply_and_it_is_audited(world, client):
    # given the owner on the security page, which shows the HELP reply form
    owner = world.a.owner
    login_verified(client, owner)
    assert 'name="help_reply"' in client.get(URL).content.decode()
    # when they save a reply
    response = _post(client, "  Acme: help@acme.example. Reply STOP to opt out.  ")
    # then it is stored trimmed, audited with before/after, and the 2FA policy is untouched
    assert response.status_code == 302 and response["Location"] == URL
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.help_reply == "Acme: help@acme.example. Reply STOP to opt out."
    assert world.a.tenant.require_2fa is False
    event = AuditEvent.unscoped.get(action="tenant.help_reply_changed", tenant=world.a.tenant)
    assert event.actor == owner
    assert event.changes == {"help_reply": ["", "Acme: help@acme.example. Reply STOP to opt out."]}
    # and the other tenant's reply is unchanged; saving the same text again records nothing
    world.b.tenant.refresh_from_db()
    assert world.b.tenant.help_reply == ""
    _post(client, "Acme: help@acme.example. Reply STOP to opt out.")
    assert AuditEvent.unscoped.filter(action="tenant.help_reply_changed").count() == 1


def test_a_help_reply_longer_than_320_characters_is_refused(world, client):
    login_verified(client, world.a.owner)
    response = _post(client, "x" * 321)
    assert response.status_code == 200 and response.context["help_form"].errors["help_reply"]
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.help_reply == ""


def test_the_service_refuses_more_than_320_characters(world):
    with pytest.raises(DomainError) as error:
        services.tenant_set_help_reply(tenant=world.a.tenant, help_reply="x" * 321, actor=services.SYSTEM)
    assert (error.value.code, error.value.field) == ("invalid_help_reply", "help_reply")


def test_a_member_below_owner_cannot_change_it(world, client):
    login_verified(client, world.a.members[Role.ADMIN])
    assert _post(client, "mine now").status_code == 403
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.help_reply == ""


def test_clearing_it_returns_to_the_default(world, client):
    services.tenant_set_help_reply(tenant=world.a.tenant, help_reply="Custom", actor=services.SYSTEM)
    login_verified(client, world.a.owner)
    _post(client, "")
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.help_reply == ""


def test_the_2fa_form_still_works_beside_it(world, client):
    login_verified(client, world.a.owner)
    client.post(URL, {"require_2fa": "on"})
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.require_2fa is True and world.a.tenant.help_reply == ""


def test_account_managers_see_the_help_reply_in_admin(world, client):
    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, staff)
    page = client.get(reverse("admin:accounts_tenant_change", args=[world.a.tenant.pk]))
    assert page.status_code == 200 and 'name="help_reply"' in page.content.decode()


def test_an_account_manager_changes_the_help_reply_in_admin_through_the_service(world, client):
    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, staff)
    url = reverse("admin:accounts_tenant_change", args=[world.a.tenant.pk])
    form = client.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and not isinstance(value, list)}
    data.update({"help_reply": "  Alpha help: help@alpha.example  ", "account_manager": "",
                 "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    world.a.tenant.refresh_from_db()
    assert world.a.tenant.help_reply == "Alpha help: help@alpha.example"
    event = AuditEvent.unscoped.filter(tenant=world.a.tenant, action="tenant.help_reply_changed").get()
    assert event.changes == {"help_reply": ["", "Alpha help: help@alpha.example"]}
