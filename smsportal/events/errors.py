"""Errors of webhooks, each with a stable code."""
from smsportal.errors import Conflict, DomainError, NotFound


class InvalidCallbackUrl(DomainError):
    code = "invalid_callback_url"
    message = "The URL cannot receive webhooks."


class InvalidEventType(DomainError):
    code = "invalid_event_type"


class TooManyWebhookEndpoints(Conflict):
    code = "too_many_webhook_endpoints"


class WebhookEndpointDisabled(Conflict):
    code = "webhook_endpoint_disabled"
    message = "The endpoint is disabled; enable it first."


class WebhookNotFound(NotFound):
    code = "not_found"
