"""Sign-in lockout and two-factor authentication."""
from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import errors
from accounts.clientip import IPAddress
from accounts.models import LoginFailure, User
from accounts.services.audit import Actor, _audit_everywhere


def login_locked(*, email: str, ip: str | None) -> bool:
    """Locked after LOGIN_FAILURE_LIMIT failures for the email from one address within the lockout
    window, or four times that from any addresses (a spray across many addresses)."""
    since = timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    recent = LoginFailure.objects.filter(email=email.lower(), created_at__gte=since)
    if recent.count() >= settings.LOGIN_FAILURE_LIMIT * 4:
        return True
    return recent.filter(ip_address=ip).count() >= settings.LOGIN_FAILURE_LIMIT


def login_failed(*, email: str, ip: str | None) -> None:
    email = email.lower()
    LoginFailure.objects.create(email=email, ip_address=ip)
    user = User.objects.filter(email=email).first()
    if user is not None:
        _audit_everywhere(user=user, action="auth.login_failed", actor=Actor(user=user, ip=ip))


def login_succeeded(*, user: User, ip: str | None) -> None:
    LoginFailure.objects.filter(email=user.email.lower()).delete()
    _audit_everywhere(user=user, action="auth.login", actor=Actor(user=user, ip=ip))


def totp_device_start(*, user: User):
    """A fresh unconfirmed TOTP device; any earlier unconfirmed one is discarded."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: User, device, token: str, ip: str | None) -> list[str] | None:
    """Confirm enrolment with a first token; returns new backup codes, or None if the token is wrong."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not device.verify_token(token.strip().replace(" ", "")):
        return None
    TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save()
    codes = backup_codes_regenerate(user=user, ip=ip, audit=False)
    _audit_everywhere(user=user, action="auth.2fa_enabled", actor=Actor(user=user, ip=ip))
    return codes


BACKUP_CODE_COUNT = 10


@transaction.atomic
def backup_codes_regenerate(*, user: User, ip: str | None, audit: bool = True) -> list[str]:
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device, _ = StaticDevice.objects.get_or_create(user=user, name="Backup codes", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    if audit:
        _audit_everywhere(user=user, action="auth.backup_codes_regenerated", actor=Actor(user=user, ip=ip))
    return codes


OTP_CODE_RE = re.compile(r"^[0-9]{6,8}$")


def two_factor_verify(*, user: User, token: str):
    """The confirmed device that accepts `token`, or None.

    Digits go to the authenticator (a TOTP code is accepted once: the device
    remembers its last time step); anything else is tried as a backup code,
    which is deleted when used. Routing by shape keeps a mistyped backup code
    from throttling the authenticator and vice versa. Each device throttles its
    own failures (1 s, 2 s, 4 s ... between tries): while it does, this raises
    TwoFactorThrottled. The devices are locked for the check, so two requests
    cannot spend the same code.
    """
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    token = token.strip().replace(" ", "").replace("-", "")
    model = TOTPDevice if OTP_CODE_RE.match(token) else StaticDevice
    if model is StaticDevice:
        token = token.lower()
    with transaction.atomic():
        devices = list(model.objects.devices_for_user(user, confirmed=True).select_for_update())
        allowed = [d for d in devices if d.verify_is_allowed()[0]]
        if devices and not allowed:
            raise errors.TwoFactorThrottled()
        return next((d for d in allowed if d.verify_token(token)), None)


@transaction.atomic
def two_factor_disable(*, user: User, ip: str | None) -> None:
    """Remove every second factor; refused for staff and for members of a tenant that requires 2FA."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.selectors import user_needs_2fa_enrolment

    if user_needs_2fa_enrolment(user=user):
        raise errors.PermissionDenied(
            "Two-factor authentication is required for your account, so it cannot be turned off."
        )
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    _audit_everywhere(user=user, action="auth.2fa_disabled", actor=Actor(user=user, ip=ip))


def ip_text(address: IPAddress | None) -> str | None:
    return str(address) if address is not None else None
