"""Portal sign-in, lockout, sign-out and password reset."""
import re

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.models import AuditEvent, LoginFailure, User
from accounts.portal.views.auth import BAD_CREDENTIALS
from accounts.tests.factories import PASSWORD, UserFactory, login_verified

pytestmark = pytest.mark.django_db

LOGIN = reverse("portal:login")


def sign_in(client, email, password=PASSWORD, **extra):
    return client.post(LOGIN, {"email": email, "password": password, **extra})


def test_it_signs_in_with_email_and_password_and_rotates_the_session(world, client):
    owner = world.a.owner
    client.get(LOGIN)
    anonymous_key = client.session.session_key

    response = sign_in(client, owner.email.upper())

    assert response.status_code == 302
    assert response["Location"] == reverse("portal:dashboard")
    assert client.session[SESSION_KEY] == str(owner.pk)
    assert client.session.session_key != anonymous_key
    assert AuditEvent.unscoped.filter(tenant=world.a.tenant, action="auth.login", actor=owner).count() == 1
    assert client.get(reverse("portal:dashboard")).status_code == 200


def test_it_refuses_a_wrong_password_and_an_unknown_email_with_the_same_message(world, client):
    wrong = sign_in(client, world.a.owner.email, "not the password")
    unknown = sign_in(client, "nobody@example.com", "not the password")

    for response in (wrong, unknown):
        assert response.status_code == 200
        assert response.context["form"].non_field_errors() == [BAD_CREDENTIALS]
        assert BAD_CREDENTIALS in response.content.decode()
    assert SESSION_KEY not in client.session
    assert set(LoginFailure.objects.values_list("email", flat=True)) == {world.a.owner.email, "nobody@example.com"}
    assert AuditEvent.unscoped.filter(action="auth.login_failed", actor=world.a.owner).exists()


def test_it_locks_sign_in_after_too_many_failures_from_one_address(world, client):
    owner = world.a.owner
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        sign_in(client, owner.email, "wrong password")

    response = sign_in(client, owner.email)  # the right password, too late

    assert response.status_code == 200
    assert "Try again later" in response.content.decode()
    assert SESSION_KEY not in client.session
    assert LoginFailure.objects.filter(email=owner.email, ip_address="127.0.0.1").count() == settings.LOGIN_FAILURE_LIMIT
    # Another address is not locked by this streak.
    other = client.__class__(REMOTE_ADDR="198.51.100.7")
    assert sign_in(other, owner.email).status_code == 302


def test_it_sends_a_user_with_a_device_to_the_second_factor_keeping_next(world, client):
    owner = world.a.owner
    TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)

    response = sign_in(client, owner.email, next="/portal/team/")

    assert response.status_code == 302
    assert response["Location"] == reverse("portal:2fa-verify") + "?next=%2Fportal%2Fteam%2F"
    # Signed in with the password only: the portal stays closed.
    assert client.get("/portal/team/")["Location"].startswith(reverse("portal:2fa-verify"))


def test_it_ignores_an_offsite_next(world, client):
    response = sign_in(client, world.a.owner.email, next="https://evil.example.com/")

    assert response["Location"] == reverse("portal:dashboard")


def test_it_sends_a_member_of_a_tenant_requiring_2fa_to_enrolment(world, client):
    world.a.tenant.require_2fa = True
    world.a.tenant.save()

    response = sign_in(client, world.a.members["viewer"].email)

    assert response["Location"] == reverse("portal:2fa-setup")


def test_logout_is_post_only(world, client):
    login_verified(client, world.a.owner)

    assert client.get(reverse("portal:logout")).status_code == 405
    response = client.post(reverse("portal:logout"))

    assert response.status_code == 302
    assert SESSION_KEY not in client.session
    assert client.get(reverse("portal:dashboard"))["Location"].startswith(LOGIN)


def test_password_reset_sends_a_link_that_sets_a_new_password(world, client):
    owner = world.a.owner
    mail.outbox.clear()

    response = client.post(reverse("portal:password-reset"), {"email": owner.email})

    assert response["Location"] == reverse("portal:password-reset-done")
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [owner.email]
    link = re.search(r"http://testserver(/portal/reset/\S+/)", message.body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and form_page.context["validlink"]
    new_password = "a brand new passphrase 42"
    done = client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert done["Location"] == reverse("portal:password-reset-complete")
    owner.refresh_from_db()
    assert owner.check_password(new_password)


def test_password_reset_for_an_unknown_email_sends_nothing_and_says_the_same(client, db):
    UserFactory(email="someone@example.com")
    mail.outbox.clear()

    response = client.post(reverse("portal:password-reset"), {"email": "nobody@example.com"})

    assert response["Location"] == reverse("portal:password-reset-done")
    assert mail.outbox == []
    assert User.objects.count() == 1


def test_an_owner_created_without_a_password_sets_one_through_reset(client, db):
    tenant, owner = services.tenant_create(slug="newco", name="NewCo", owner_email="founder@newco.example.com")
    assert not owner.has_usable_password()
    mail.outbox.clear()

    client.post(reverse("portal:password-reset"), {"email": "Founder@NewCo.example.com"})

    assert [m.to for m in mail.outbox] == [["founder@newco.example.com"]]
    link = re.search(r"http://testserver(/portal/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    new_password = "first password for newco"
    client.post(form_page.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    owner.refresh_from_db()
    assert owner.check_password(new_password)
    assert sign_in(client, owner.email, new_password)["Location"] == reverse("portal:dashboard")
