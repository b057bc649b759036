"""Serializers for /v1/webhook-endpoints and /v1/webhook-deliveries. Validation of meaning lives in the services."""
from rest_framework import serializers

from smsportal.api.serializers import JsonBodySerializer
from smsportal.events.models import (
    WebhookAttempt,
    WebhookCallbackSecret,
    WebhookDelivery,
    WebhookEndpoint,
)
from smsportal.events.registry import event_types

SECRET_HELP = "The signing secret (whsec_…). Shown once, in this answer; store it now."  # noqa: S105 - help text, not a secret


class WebhookEndpointSerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    events = serializers.ListField(child=serializers.ChoiceField(choices=event_types()),
                                   help_text="Subscribed event types; empty means all of them.")

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "description", "events", "enabled", "disabled_reason", "secret_prefix",
                  "previous_secret_expires_at", "consecutive_failures", "created_at", "updated_at"]
        read_only_fields = fields


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text=SECRET_HELP)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointWriteSerializer(JsonBodySerializer):
    # The service checks the types (invalid_event_type); the schema lists them.
    schema_rules = {"properties": {"events": {"items": {"enum": list(event_types())}}}}

    url = serializers.CharField(max_length=2000, help_text="http(s) URL that receives the events.")
    events = serializers.ListField(child=serializers.CharField(max_length=40), required=False, max_length=20,
                                   help_text="Event types to receive: " + ", ".join(event_types()) + ". Empty or "
                                             "absent: all of them.")
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class CallbackSecretSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(read_only=True, help_text=SECRET_HELP)

    class Meta:
        model = WebhookCallbackSecret
        fields = ["secret", "secret_prefix", "previous_secret_expires_at", "created_at", "rotated_at"]
        read_only_fields = fields


class WebhookTestResultSerializer(serializers.Serializer):
    status_code = serializers.IntegerField(allow_null=True, help_text="The receiver's HTTP status; null when none.")
    latency_ms = serializers.IntegerField(allow_null=True)
    error_class = serializers.CharField(help_text='"" on a 2xx; else e.g. timeout, connection_error, http_500.')


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["cycle", "number", "started_at", "finished_at", "status_code", "latency_ms", "error_class"]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id", read_only=True)
    endpoint = serializers.CharField(source="endpoint.public_id", read_only=True, allow_null=True, default=None,
                                     help_text="The endpoint's id; null for the message's callback_url.")
    message = serializers.CharField(source="message_public_id", read_only=True, allow_null=True, default=None,
                                    help_text="The message's id (msg_…) for a message event; else null.")
    subject = serializers.CharField(read_only=True, help_text="The id of what the event is about: msg_…, inb_…, "
                                                              "lse_… or asg_….")
    attempt_count = serializers.IntegerField(source="attempts", read_only=True,
                                             help_text="Attempts in the current cycle (a resend starts a new one).")
    attempts = WebhookAttemptSerializer(source="attempt_log", many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event_id", "event_type", "endpoint", "message", "subject", "url", "status", "cycle", "attempt_count",
                  "next_attempt_at", "last_status_code", "last_error_class", "created_at", "delivered_at", "payload",
                  "attempts"]
        read_only_fields = fields
