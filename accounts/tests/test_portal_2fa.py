"""Portal two-factor authentication: enrolment, verification, backup codes, turning it off."""
import base64
import re

import pytest
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.models import AuditEvent
from accounts.tests.factories import UserFactory, login_verified

pytestmark = pytest.mark.django_db

SETUP = reverse("portal:2fa-setup")
VERIFY = reverse("portal:2fa-verify")


def code_for(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"


def enrolled(user) -> tuple[TOTPDevice, list[str]]:
    device = services.totp_device_start(user=user)
    codes = services.totp_device_confirm(user=user, device=device, token=code_for(device), ip=None)
    device.refresh_from_db()
    # The confirmation spent the current time step; let the next sign-in use it again.
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    device.refresh_from_db()
    return device, codes


def test_enrolment_shows_a_qr_code_and_secret_then_confirms_and_shows_backup_codes_once(world, client):
    owner = world.a.owner
    client.force_login(owner)

    page = client.get(SETUP)

    assert page.status_code == 200
    html = page.content.decode()
    assert 'src="data:image/svg+xml' in html
    secret = re.search(r'id="totp-secret"[^>]*>([A-Z2-7]+)<', html).group(1)
    device = TOTPDevice.objects.get(user=owner, confirmed=False)
    assert secret == page.context["secret"]
    # Reloading the page keeps the same secret (the app may already have scanned it).
    assert client.get(SETUP).context["secret"] == secret

    wrong = client.post(SETUP, {"token": "000000" if code_for(device) != "000000" else "111111"})
    assert wrong.status_code == 200 and wrong.context["form"].errors["token"]
    device.throttle_reset()
    session_key = client.session.session_key
    done = client.post(SETUP, {"token": code_for(device)})

    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert 'id="backup-codes"' in done.content.decode() and len(codes) == 10
    assert set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True)) == set(codes)
    device.refresh_from_db()
    assert device.confirmed
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.session.session_key != session_key
    assert done["Cache-Control"].startswith("max-age=0") or "no-store" in done["Cache-Control"]
    assert AuditEvent.unscoped.filter(action="auth.2fa_enabled", actor=owner, tenant=world.a.tenant).exists()
    assert client.get(reverse("portal:team")).status_code == 200


def test_setup_cannot_replace_a_device_with_only_the_password(world, client):
    owner = world.a.owner
    device, _ = enrolled(owner)
    client.force_login(owner)

    response = client.get(SETUP)

    assert response["Location"] == VERIFY
    assert list(TOTPDevice.objects.filter(user=owner)) == [device]


def test_setup_never_shows_a_secret_started_by_another_session(world, client):
    owner = world.a.owner
    other_session_device = services.totp_device_start(user=owner)
    client.force_login(owner)

    page = client.get(SETUP)

    assert not TOTPDevice.objects.filter(pk=other_session_device.pk).exists()
    assert page.context["secret"] != base64.b32encode(other_session_device.bin_key).decode()


def test_it_verifies_with_a_totp_code_once(world, client):
    owner = world.a.owner
    device, _ = enrolled(owner)
    client.force_login(owner)
    token = code_for(device)

    response = client.post(VERIFY + "?next=/portal/team/", {"token": token, "next": "/portal/team/"})

    assert response["Location"] == "/portal/team/"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/portal/team/").status_code == 200

    # The same code in a new sign-in is refused: a TOTP code works once.
    other = client.__class__()
    other.force_login(owner)
    replay = other.post(VERIFY, {"token": token})
    assert replay.status_code == 200
    assert replay.context["form"].errors["token"]
    assert DEVICE_ID_SESSION_KEY not in other.session


def test_it_verifies_with_a_backup_code_only_once(world, client):
    owner = world.a.owner
    _device, codes = enrolled(owner)
    client.force_login(owner)

    response = client.post(VERIFY, {"token": codes[0].upper()})

    assert response["Location"] == reverse("portal:dashboard")
    static = StaticDevice.objects.get(user=owner)
    assert client.session[DEVICE_ID_SESSION_KEY] == static.persistent_id
    assert static.token_set.count() == 9
    again = client.__class__()
    again.force_login(owner)
    refused = again.post(VERIFY, {"token": codes[0]})
    assert refused.status_code == 200 and refused.context["form"].errors["token"]
    assert DEVICE_ID_SESSION_KEY not in again.session


def test_a_wrong_code_throttles_further_tries(world, client):
    owner = world.a.owner
    device, _ = enrolled(owner)
    client.force_login(owner)
    client.post(VERIFY, {"token": "000000" if code_for(device) != "000000" else "111111"})

    response = client.post(VERIFY, {"token": code_for(device)})  # right code, but too soon

    assert "Wait a few seconds" in response.content.decode()
    assert DEVICE_ID_SESSION_KEY not in client.session


def test_a_member_of_a_tenant_requiring_2fa_is_sent_to_setup(world, client):
    world.a.tenant.require_2fa = True
    world.a.tenant.save()
    client.force_login(world.a.members["developer"])

    for path in (reverse("portal:dashboard"), reverse("portal:api-keys"), reverse("portal:2fa")):
        assert client.get(path)["Location"] == SETUP
    assert client.get(SETUP).status_code == 200


def test_staff_without_a_team_enrols_then_sees_the_no_team_page(client, db):
    staff = UserFactory(email="am@smsportal.example.com", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("portal:dashboard"))["Location"] == SETUP

    client.get(SETUP)
    device = TOTPDevice.objects.get(user=staff)
    client.post(SETUP, {"token": code_for(device)})
    page = client.get(reverse("portal:dashboard"))

    assert page.status_code == 200
    assert "not a member of any team" in page.content.decode()
    assert "Go to the admin site" in page.content.decode()


def test_regenerating_backup_codes_needs_a_fresh_code(world, client):
    owner = world.a.owner
    device, old_codes = enrolled(owner)
    login_verified(client, owner)
    url = reverse("portal:2fa-backup-codes")

    refused = client.post(url, {"codes-token": "nonsense"})
    assert refused.status_code == 200 and refused.context["codes_form"].errors["token"]
    assert sorted(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True)) == sorted(old_codes)

    StaticDevice.objects.filter(user=owner).update(throttling_failure_count=0)
    response = client.post(url, {"codes-token": code_for(device)})

    assert response.status_code == 200
    new_codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", response.content.decode())
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert set(StaticToken.objects.filter(device__user=owner).values_list("token", flat=True)) == set(new_codes)
    assert AuditEvent.unscoped.filter(action="auth.backup_codes_regenerated", actor=owner).exists()


def test_disabling_2fa_needs_a_fresh_code_and_is_refused_when_required(world, client):
    owner = world.a.owner
    device, _ = enrolled(owner)
    login_verified(client, owner)
    url = reverse("portal:2fa-disable")

    refused = client.post(url, {"disable-token": "12"})
    assert refused.status_code == 200 and refused.context["disable_form"].errors
    assert TOTPDevice.objects.filter(user=owner).exists()

    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_count=0)
    world.a.tenant.require_2fa = True
    world.a.tenant.save()
    required = client.post(url, {"disable-token": code_for(device)}, follow=True)
    assert "cannot be turned off" in required.content.decode()
    assert TOTPDevice.objects.filter(user=owner, confirmed=True).exists()

    world.a.tenant.require_2fa = False
    world.a.tenant.save()
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    done = client.post(url, {"disable-token": code_for(device)})
    assert done["Location"] == reverse("portal:2fa")
    assert not TOTPDevice.objects.filter(user=owner).exists()
    assert not StaticDevice.objects.filter(user=owner).exists()
    assert AuditEvent.unscoped.filter(action="auth.2fa_disabled", actor=owner).exists()
