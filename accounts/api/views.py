"""/v1 views for the caller's identity, API keys and the IP allowlist."""
from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from accounts import errors as account_errors
from accounts import selectors, services
from accounts.api import serializers as s
from accounts.errors import DomainError
from accounts.models import ApiKey, IpAllowlistEntry
from accounts.roles import Scope
from smsportal.api.schema import Code, api_errors
from smsportal.api.views import ApiListView, ApiView


def actor_for(request) -> services.Actor:
    ip = getattr(request._request, "client_ip", None)
    return services.Actor(api_key=request.auth, ip=str(ip) if ip else None)


class MeView(ApiView):
    """The tenant and the key behind this request."""

    serializer_class = s.MeSerializer

    @extend_schema(summary="Who am I", description="The account (tenant) and the API key this request is "
                   "authenticated with. Any valid key may call it, whatever its scopes: use it to check a key.")
    def get(self, request):
        api_key = request.auth
        return Response(s.MeSerializer({"tenant": api_key.tenant, "key": api_key}).data)


@extend_schema_view(get=extend_schema(
    summary="List API keys",
    description="The account's API keys, newest first: name, mode, scopes, status and when each was last used "
                "(refreshed at most once a minute). Secrets are never shown again. Needs the `admin` scope."))
class ApiKeyListView(ApiListView):
    required_scope = Scope.ADMIN
    serializer_class = s.ApiKeySerializer
    # The secret is shown once: a replay of the creation answers `"secret": null`.
    idempotency_redact_fields = ("secret",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return ApiKey.objects.none()
        return selectors.api_key_list(tenant=self.request.auth.tenant)

    @extend_schema(
        summary="Create an API key",
        description="A new key with a name, a mode (`test` keys never reach a carrier) and scopes (default: all "
                    "that your role may grant). The answer holds the full key in `secret`, once: store it now. "
                    "Needs the `admin` scope.",
        request=s.ApiKeyCreateSerializer,
        responses={201: s.ApiKeyCreatedSerializer, **api_errors(
            account_errors.InvalidScope,
            Code(400, "invalid_mode", "mode must be `live` or `test`."),
            Code(400, "invalid_expiry", "expires_at must be in the future."),
            Code(403, "permission_denied", "You cannot give a key a scope that your role may not grant (field "
                                           "`scopes`)."))},
        examples=[OpenApiExample("A test key that sends", request_only=True,
                                 value={"name": "CI deploys", "mode": "test", "scopes": ["messages:send"]})])
    def post(self, request):
        data = s.ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(tenant=request.auth.tenant, actor=actor_for(request), **data.validated_data)
        api_key.secret = secret
        return Response(s.ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(ApiView):
    required_scope = Scope.ADMIN
    serializer_class = s.ApiKeySerializer

    def get_object(self):
        return selectors.api_key_get(tenant=self.request.auth.tenant, public_id=self.kwargs["api_key_id"])

    @extend_schema(summary="Show an API key", description="One API key of the account (never its secret). "
                   "Needs the `admin` scope.")
    def get(self, request, api_key_id):
        return Response(s.ApiKeySerializer(self.get_object()).data)

    @extend_schema(summary="Revoke an API key", responses={200: s.ApiKeySerializer},
                   description="Revoke the key at once: every later request with it gets 401 `invalid_api_key`. "
                               "The answer is the revoked key. Revoking twice is harmless. Needs the `admin` scope.")
    def delete(self, request, api_key_id):
        api_key = services.api_key_revoke(tenant=request.auth.tenant, api_key=self.get_object(), actor=actor_for(request))
        return Response(s.ApiKeySerializer(api_key).data)


@extend_schema_view(get=extend_schema(
    summary="List IP allowlist entries",
    description="The account's allowed address ranges, newest first. As soon as an entry applies to a key "
                "(all keys, or the one it is bound to), requests with that key from other addresses get 403 "
                "`ip_not_allowed`. Needs the `admin` scope."))
class IpAllowlistListView(ApiListView):
    required_scope = Scope.ADMIN
    serializer_class = s.IpAllowlistEntrySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return IpAllowlistEntry.objects.none()
        return selectors.ip_allowlist_list(tenant=self.request.auth.tenant)

    @extend_schema(
        summary="Add an IP allowlist entry",
        description="Allow an IPv4 or IPv6 address or CIDR block, for all keys or, with `api_key`, for one. "
                    "Add your own address first: once an entry applies, other addresses are refused. "
                    "Needs the `admin` scope.",
        request=s.IpAllowlistCreateSerializer,
        responses={201: s.IpAllowlistEntrySerializer, **api_errors(
            account_errors.InvalidCidr,
            Code(400, "api_key_not_found", "No API key with this id in your account (field `api_key`)."))},
        examples=[OpenApiExample("The office network", request_only=True,
                                 value={"cidr": "203.0.113.0/24", "note": "office"})])
    def post(self, request):
        data = s.IpAllowlistCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        tenant = request.auth.tenant
        key_id = data.validated_data.get("api_key")
        api_key = _api_key_field(tenant, key_id) if key_id else None
        entry = services.ip_allowlist_add(tenant=tenant, cidr=data.validated_data["cidr"], api_key=api_key,
                                          note=data.validated_data["note"], actor=actor_for(request))
        return Response(s.IpAllowlistEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


class IpAllowlistDetailView(ApiView):
    required_scope = Scope.ADMIN
    serializer_class = s.IpAllowlistEntrySerializer

    @extend_schema(summary="Show an IP allowlist entry", description="One entry of the account's IP "
                   "allowlist. Needs the `admin` scope.")
    def get(self, request, entry_id):
        entry = selectors.ip_allowlist_get(tenant=request.auth.tenant, public_id=entry_id)
        return Response(s.IpAllowlistEntrySerializer(entry).data)

    @extend_schema(summary="Remove an IP allowlist entry", description="Remove the entry; it takes effect "
                   "at once. With no entry left for a key, it may be used from any address. Needs the `admin` scope.")
    def delete(self, request, entry_id):
        entry = selectors.ip_allowlist_get(tenant=request.auth.tenant, public_id=entry_id)
        services.ip_allowlist_remove(tenant=request.auth.tenant, entry=entry, actor=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _api_key_field(tenant, public_id: str):
    try:
        return selectors.api_key_get(tenant=tenant, public_id=public_id)
    except Http404:
        raise DomainError("No API key with this id.", field="api_key", code="api_key_not_found") from None
