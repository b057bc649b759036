"""Request middleware: client address, portal access (sign-in, 2FA, tenant)."""
from __future__ import annotations

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse

from accounts.clientip import client_ip, forwarding_headers_strip, peer_is_trusted_proxy
from smsportal.middleware import DualMiddleware
from smsportal.tenancy import reset_current_tenant, set_current_tenant


class ClientIpMiddleware(DualMiddleware):
    """Decides once who the client is and what a forwarded header may say: first in MIDDLEWARE.

    A peer outside TRUSTED_PROXIES is the client, and its forwarding headers are dropped before any
    other middleware runs (SecurityMiddleware's HTTPS redirect reads SECURE_PROXY_SSL_HEADER).
    Sets request.client_ip, from the socket peer and trusted proxies."""

    def handle(self, request):
        self._set(request)
        return self.get_response(request)

    async def ahandle(self, request):
        self._set(request)
        return await self.get_response(request)

    @staticmethod
    def _set(request) -> None:
        meta = request.META
        if not peer_is_trusted_proxy(meta.get("REMOTE_ADDR")):
            forwarding_headers_strip(meta)
        request.client_ip = client_ip(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"))


# Portal paths open to a signed-out visitor (sign in, password reset, invitations).
PUBLIC_PREFIXES = ("/portal/login", "/portal/password-reset", "/portal/reset/", "/portal/invitations/")
# Paths open once signed in but before the second factor is verified.
PRE_OTP_PREFIXES = ("/portal/2fa/verify", "/portal/2fa/setup", "/portal/logout")
# Writes that concern the person, not the tenant: allowed while the active tenant is suspended
# (otherwise a member of a suspended tenant could not even finish signing in with 2FA).
PERSONAL_PREFIXES = ("/portal/logout", "/portal/switch", "/portal/2fa/")


class PortalAccessMiddleware(DualMiddleware):
    """Deny by default under /portal: sign-in, 2FA where present or required, an active tenant.

    Sets request.membership / request.tenant and the tenant context for the
    duration of the request; a suspended tenant's portal is read-only.
    """

    def handle(self, request):
        request.membership = None
        request.tenant = None
        if not request.path.startswith("/portal/"):
            return self.get_response(request)
        refused = self._check(request)
        if refused is not None:
            return refused
        token = set_current_tenant(request.tenant)
        try:
            return self.get_response(request)
        finally:
            reset_current_tenant(token)

    async def ahandle(self, request):
        request.membership = None
        request.tenant = None
        if not request.path.startswith("/portal/"):
            return await self.get_response(request)
        refused = await sync_to_async(self._check)(request)  # sessions, users and memberships are in the database
        if refused is not None:
            return refused
        token = set_current_tenant(request.tenant)
        try:
            return await self.get_response(request)
        finally:
            reset_current_tenant(token)

    @staticmethod
    def _check(request):
        """The redirect that refuses the request, or None after setting request.membership/tenant."""
        if request.path.startswith(PUBLIC_PREFIXES):
            return None
        user = request.user
        if not user.is_authenticated:
            return redirect(f"{reverse(settings.LOGIN_URL)}?next={request.path}")
        from accounts.selectors import membership_active_for, user_needs_2fa_enrolment

        if not request.path.startswith(PRE_OTP_PREFIXES):
            if user.otp_device is None and _has_device(user):
                return redirect(f"{reverse('portal:2fa-verify')}?next={request.path}")
            if user.otp_device is None and user_needs_2fa_enrolment(user=user):
                messages.info(request, "Two-factor authentication is required. Set it up to continue.")
                return redirect("portal:2fa-setup")
        request.membership = membership_active_for(user=user, tenant_id=request.session.get("tenant_id"))
        request.tenant = request.membership.tenant if request.membership else None
        if (
            request.tenant is not None
            and not request.tenant.is_active
            and request.method not in ("GET", "HEAD", "OPTIONS")
            and not request.path.startswith(PERSONAL_PREFIXES)
        ):
            messages.error(request, "This account is suspended: the portal is read-only. Contact your account manager.")
            return redirect(request.path)
        return None


def _has_device(user) -> bool:
    from django_otp import user_has_device

    return user_has_device(user, confirmed=True)
