"""API authentication: `Authorization: Bearer sk_...`, then tenant status and IP allowlist (from the key cache)."""
from __future__ import annotations

from rest_framework.authentication import BaseAuthentication

from accounts import errors, services
from smsportal.tenancy import set_current_tenant

QUERY_KEY_PARAMS = ("api_key", "key", "token", "access_token")


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        if any(p in request.query_params for p in QUERY_KEY_PARAMS):
            # A key in a URL ends up in proxy logs and browser history: refuse it outright.
            raise errors.DomainError("Send the API key in the Authorization header, never in the URL.",
                                     code="api_key_in_query")
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise errors.InvalidApiKey("Use `Authorization: Bearer <api key>`.")
        cached = services.api_key_credentials(raw=raw.strip())
        api_key = cached.api_key
        if not api_key.tenant.is_active:
            raise errors.TenantSuspended()
        # The key's tenant is active from here on (the touch is its row); reset by
        # ApiJsonErrorMiddleware when the request ends, whatever is raised below.
        set_current_tenant(api_key.tenant)
        address = getattr(request._request, "client_ip", None)
        # The allowlist as read with the key (key cache): a change is in force as a revocation is.
        if not services.ip_allowed(entries=cached.allowlist, address=address):
            raise errors.IpNotAllowed()
        services.api_key_touch(api_key=api_key)
        request._request.tenant = api_key.tenant
        return (None, api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
