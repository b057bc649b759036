"""Serializers for /v1/me, /v1/api-keys and /v1/ip-allowlist. They never write other models."""
from rest_framework import serializers

from accounts.models import ApiKey, IpAllowlistEntry
from accounts.roles import ALL_SCOPES
from smsportal.api.serializers import JsonBodySerializer


class TenantSummarySerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    status = serializers.CharField()


class ApiKeySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    prefix = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "last4", "mode", "scopes", "status", "created_at", "last_used_at",
                  "expires_at", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=100)
    mode = serializers.ChoiceField(choices=ApiKey.Mode.choices, default=ApiKey.Mode.TEST)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=ALL_SCOPES), required=False, allow_empty=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(
        read_only=True, allow_null=True,
        help_text="The full key. Shown once; store it now. null in an idempotent replay (Idempotent-Replayed: true).",
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class MeSerializer(serializers.Serializer):
    tenant = TenantSummarySerializer()
    key = ApiKeySerializer()


class IpAllowlistEntrySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    api_key = serializers.CharField(source="api_key.public_id", read_only=True, allow_null=True, default=None)

    class Meta:
        model = IpAllowlistEntry
        fields = ["id", "cidr", "api_key", "note", "created_at"]
        read_only_fields = fields


class IpAllowlistCreateSerializer(JsonBodySerializer):
    cidr = serializers.CharField(max_length=64)
    api_key = serializers.CharField(required=False, allow_null=True, help_text="Bind the entry to one key (its id).")
    note = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
