"""Two-factor authentication: verify at sign-in, enrol an authenticator app, backup codes, turn off.

These pages concern the person, not a tenant, so they need no membership;
the middleware has already required sign-in (and, for all but verify and
setup, a verified second factor).
"""
from __future__ import annotations

import base64

import django_otp
import segno
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import user_has_device
from django_otp.plugins.otp_static.models import StaticDevice

from accounts import errors, selectors, services
from accounts.portal.decorators import add_domain_error, ip_for, safe_next
from accounts.portal.forms import OtpForm, TotpConfirmForm

PENDING_DEVICE_KEY = "portal_pending_totp_device"
WRONG_CODE = "That code is not valid. Check the time on your phone and try again."


@never_cache
def verify(request: HttpRequest) -> HttpResponse:
    user = request.user
    if user.is_verified() or not user_has_device(user, confirmed=True):
        return redirect(safe_next(request))  # nothing to verify; the middleware sends to setup if required
    form = OtpForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        device = _check(form, user)
        if device is not None:
            _sign_in_second_factor(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                messages.warning(request, f"You signed in with a backup code; {left} left. "
                                          "Generate new ones on your security page if you are running low.")
            return redirect(safe_next(request))
    return render(request, "portal/auth/2fa_verify.html", {"form": form, "next": request.GET.get("next", "")})


@never_cache
def setup(request: HttpRequest) -> HttpResponse:
    """Enrol by QR code; the first correct code confirms the device and shows the backup codes once."""
    user = request.user
    if user_has_device(user, confirmed=True) and not user.is_verified():
        # Someone with only the password must not replace the existing authenticator.
        return redirect("portal:2fa-verify")
    device = selectors.totp_device_pending(user=user, device_id=request.session.get(PENDING_DEVICE_KEY))
    form = TotpConfirmForm(request.POST if request.method == "POST" and device is not None else None)
    if device is None:
        if request.method == "POST":
            messages.warning(request, "That setup had expired. Scan this new code and try again.")
        device = services.totp_device_start(user=user)
        request.session[PENDING_DEVICE_KEY] = device.pk
    elif request.method == "POST" and form.is_valid():
        codes = services.totp_device_confirm(user=user, device=device, token=form.cleaned_data["token"], ip=ip_for(request))
        if codes is not None:
            del request.session[PENDING_DEVICE_KEY]
            _sign_in_second_factor(request, device)
            messages.success(request, "Two-factor authentication is on.")
            return _backup_codes_page(request, codes, first_time=True)
        form.add_error("token", WRONG_CODE)
    secret = base64.b32encode(device.bin_key).decode()
    qr = segno.make(device.config_url, error="m").svg_data_uri(scale=5, border=2, dark="#111827")
    return render(request, "portal/auth/2fa_setup.html", {"form": form, "secret": secret, "qr": qr})


@never_cache
def overview(request: HttpRequest) -> HttpResponse:
    return _overview(request)


@require_POST
@never_cache
def backup_codes(request: HttpRequest) -> HttpResponse:
    """New backup codes, replacing the old ones; needs a fresh code."""
    form = OtpForm(request.POST, prefix="codes", autofocus=False)
    if form.is_valid() and _check(form, request.user) is not None:
        codes = services.backup_codes_regenerate(user=request.user, ip=ip_for(request))
        return _backup_codes_page(request, codes, first_time=False)
    return _overview(request, codes_form=form)


@require_POST
def disable(request: HttpRequest) -> HttpResponse:
    form = OtpForm(request.POST, prefix="disable", autofocus=False)
    if form.is_valid() and _check(form, request.user) is not None:
        try:
            services.two_factor_disable(user=request.user, ip=ip_for(request))
        except errors.PermissionDenied as exc:
            messages.error(request, exc.message)
            return redirect("portal:2fa")
        messages.success(request, "Two-factor authentication is off. Your authenticator and backup codes no longer work.")
        return redirect("portal:2fa")
    return _overview(request, disable_form=form)


def _overview(request: HttpRequest, codes_form: OtpForm | None = None, disable_form: OtpForm | None = None):
    return render(request, "portal/two_factor.html", {
        "status": selectors.two_factor_status(user=request.user),
        "codes_form": codes_form or OtpForm(prefix="codes", autofocus=False),
        "disable_form": disable_form or OtpForm(prefix="disable", autofocus=False),
    })


def _check(form: OtpForm, user):
    """The device that accepts the form's code; otherwise the error is put on the form."""
    try:
        device = services.two_factor_verify(user=user, token=form.cleaned_data["token"])
    except errors.TwoFactorThrottled as exc:
        add_domain_error(form, exc)
        return None
    if device is None:
        form.add_error("token", WRONG_CODE)
    return device


def _sign_in_second_factor(request: HttpRequest, device) -> None:
    django_otp.login(request, device)
    # A new session key for the newly privileged session (fixation defence).
    request.session.cycle_key()


def _backup_codes_page(request: HttpRequest, codes: list[str], *, first_time: bool) -> HttpResponse:
    """Rendered in the POST response itself: the codes are never stored where they could be shown again."""
    return render(request, "portal/auth/backup_codes.html", {"codes": codes, "first_time": first_time})
