"""/v1 views for the caller's identity, API keys and the IP allowlist."""
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api import serializers as s
from accounts.errors import DomainError
from accounts.models import ApiKey, IpAllowlistEntry
from accounts.roles import Scope
from smsportal.api.views import ApiListView, ApiView


def actor_for(request) -> services.Actor:
    ip = getattr(request._request, "client_ip", None)
    return services.Actor(api_key=request.auth, ip=str(ip) if ip else None)


class MeView(ApiView):
    """The tenant and the key behind this request."""

    serializer_class = s.MeSerializer

    def get(self, request):
        api_key = request.auth
        return Response(s.MeSerializer({"tenant": api_key.tenant, "key": api_key}).data)


class ApiKeyListView(ApiListView):
    required_scope = Scope.ADMIN
    serializer_class = s.ApiKeySerializer
    # The secret is shown once: a replay of the creation answers `"secret": null`.
    idempotency_redact_fields = ("secret",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no tenant
            return ApiKey.unscoped.none()
        return selectors.api_key_list(tenant=self.request.auth.tenant)

    @extend_schema(request=s.ApiKeyCreateSerializer, responses={201: s.ApiKeyCreatedSerializer})
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

    def get(self, request, api_key_id):
        return Response(s.ApiKeySerializer(self.get_object()).data)

    @extend_schema(responses={200: s.ApiKeySerializer}, description="Revoke the key. Revoking twice is harmless.")
    def delete(self, request, api_key_id):
        api_key = services.api_key_revoke(tenant=request.auth.tenant, api_key=self.get_object(), actor=actor_for(request))
        return Response(s.ApiKeySerializer(api_key).data)


class IpAllowlistListView(ApiListView):
    required_scope = Scope.ADMIN
    serializer_class = s.IpAllowlistEntrySerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return IpAllowlistEntry.unscoped.none()
        return selectors.ip_allowlist_list(tenant=self.request.auth.tenant)

    @extend_schema(request=s.IpAllowlistCreateSerializer, responses={201: s.IpAllowlistEntrySerializer})
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

    def get(self, request, entry_id):
        entry = selectors.ip_allowlist_get(tenant=request.auth.tenant, public_id=entry_id)
        return Response(s.IpAllowlistEntrySerializer(entry).data)

    def delete(self, request, entry_id):
        entry = selectors.ip_allowlist_get(tenant=request.auth.tenant, public_id=entry_id)
        services.ip_allowlist_remove(tenant=request.auth.tenant, entry=entry, actor=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _api_key_field(tenant, public_id: str):
    try:
        return selectors.api_key_get(tenant=tenant, public_id=public_id)
    except Http404:
        raise DomainError("No API key with this id.", field="api_key", code="api_key_not_found") from None
