"""API authentication: `Authorization: Bearer sk_...`, then tenant status and IP allowlist (from the key cache)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.authentication import BaseAuthentication

from accounts import errors, services
from smsportal.tenancy import set_current_tenant

if TYPE_CHECKING:
    from django.http import HttpRequest

    from accounts.models import ApiKey

QUERY_KEY_PARAMS = ("api_key", "key", "token", "access_token")


def request_api_key(request: HttpRequest) -> ApiKey | None:
    """The API key a Django request authenticates with (None without an Authorization header), its tenant
    made the active one; raises the DomainError a bad key, tenant or address gets (401 / 403 / 400).

    DRF's ApiKeyAuthentication and the plain single send (messaging/api/send.py) both call it."""
    if any(p in request.GET for p in QUERY_KEY_PARAMS):
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
    # The allowlist as read with the key (key cache): a change is in force as a revocation is.
    if not services.ip_allowed(entries=cached.allowlist, address=getattr(request, "client_ip", None)):
        raise errors.IpNotAllowed()
    services.api_key_touch(api_key=api_key)
    request.tenant = api_key.tenant
    return api_key


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        api_key = request_api_key(request._request)
        return None if api_key is None else (None, api_key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
