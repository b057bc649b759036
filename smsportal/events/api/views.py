"""/v1 views for webhook endpoints, the callback secret and webhook deliveries.

Scopes: managing endpoints and secrets, test sends and resends need `admin`; reading deliveries
needs `messages:read` (they carry message data, nothing secret).
"""
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response

from accounts.api.views import actor_for
from accounts.roles import Scope
from smsportal.api.schema import Code, api_errors
from smsportal.api.views import ApiListView, ApiView
from smsportal.events import errors, selectors, services
from smsportal.events.api import serializers as s
from smsportal.events.api.filters import WebhookDeliveryFilter
from smsportal.events.models import WebhookDelivery, WebhookEndpoint

ENDPOINT_ERRORS = (errors.InvalidCallbackUrl, Code(400, "invalid_event_type", "`events` holds an unknown event type."))


@extend_schema_view(get=extend_schema(
    summary="List webhook endpoints",
    description="The URLs that receive your account's events, newest first, with the events each subscribes to "
                "and its delivery health. Secrets are never shown again (only `secret_prefix`). Needs the "
                "`admin` scope."))
class WebhookEndpointListView(ApiListView):
    """List the webhook endpoints, or register one (its signing secret is in the answer, once)."""

    required_scope = Scope.ADMIN
    serializer_class = s.WebhookEndpointSerializer
    idempotency_redact_fields = ("secret",)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # unscoped: schema generation has no tenant; an empty queryset reads nothing
            return WebhookEndpoint.unscoped.none()
        return selectors.webhook_endpoint_list(tenant=self.request.auth.tenant)

    @extend_schema(
        summary="Register a webhook endpoint",
        description="A public http(s) URL that receives the events you choose (none listed: all), each signed "
                    "with Standard Webhooks headers. The answer holds the signing `secret` (`whsec_…`), once: "
                    "store it now. Needs the `admin` scope.",
        request=s.WebhookEndpointWriteSerializer,
        responses={201: s.WebhookEndpointCreatedSerializer, **api_errors(
            *ENDPOINT_ERRORS, Code(409, "too_many_webhook_endpoints", "The account has the most endpoints allowed."))},
        examples=[OpenApiExample("Delivery receipts", request_only=True, value={
            "url": "https://yourapp.example/webhooks/sms", "events": ["message.delivered", "message.failed"],
            "description": "Receipts"})])
    def post(self, request):
        data = s.WebhookEndpointWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(tenant=request.auth.tenant, actor=actor_for(request),
                                                            **data.validated_data)
        endpoint.secret = secret
        return Response(s.WebhookEndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(ApiView):
    required_scope = Scope.ADMIN
    serializer_class = s.WebhookEndpointSerializer

    def _get(self, request, endpoint_id) -> WebhookEndpoint:
        return selectors.webhook_endpoint_get(tenant=request.auth.tenant, public_id=endpoint_id)

    @extend_schema(summary="Show a webhook endpoint", description="One endpoint (its `secret_prefix`, never "
                   "the secret). Needs the `admin` scope.")
    def get(self, request, endpoint_id):
        return Response(s.WebhookEndpointSerializer(self._get(request, endpoint_id)).data)

    @extend_schema(summary="Change a webhook endpoint",
                   description="Change `url`, `events`, `description` or `enabled`; fields left out stay as they "
                               "are. Enabling an endpoint clears its failure count. Needs the `admin` scope.",
                   request=s.WebhookEndpointWriteSerializer(partial=True),
                   responses={200: s.WebhookEndpointSerializer, **api_errors(*ENDPOINT_ERRORS)},
                   examples=[OpenApiExample("Enable it again", request_only=True, value={"enabled": True})])
    def patch(self, request, endpoint_id):
        endpoint = self._get(request, endpoint_id)
        data = s.WebhookEndpointWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_update(tenant=request.auth.tenant, endpoint=endpoint,
                                                    actor=actor_for(request), **data.validated_data)
        return Response(s.WebhookEndpointSerializer(endpoint).data)

    @extend_schema(summary="Delete a webhook endpoint", responses={204: None},
                   description="Delete the endpoint with its deliveries and their attempt log; nothing more is "
                               "sent to it. Needs the `admin` scope.")
    def delete(self, request, endpoint_id):
        services.webhook_endpoint_delete(tenant=request.auth.tenant, endpoint=self._get(request, endpoint_id),
                                         actor=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateSecretView(ApiView):
    """A new signing secret, in the answer once; the old one keeps signing beside it for 24 hours."""

    required_scope = Scope.ADMIN
    serializer_class = s.WebhookEndpointCreatedSerializer
    idempotency_redact_fields = ("secret",)

    @extend_schema(summary="Rotate an endpoint's secret",
                   description="A new signing secret, in the answer once. For 24 hours the old secret signs "
                               "beside it (two signatures), so you can switch without losing events. Needs the "
                               "`admin` scope.",
                   request=None, responses={200: s.WebhookEndpointCreatedSerializer})
    def post(self, request, endpoint_id):
        endpoint = selectors.webhook_endpoint_get(tenant=request.auth.tenant, public_id=endpoint_id)
        endpoint, secret = services.webhook_endpoint_rotate_secret(tenant=request.auth.tenant, endpoint=endpoint,
                                                                   actor=actor_for(request))
        endpoint.secret = secret
        return Response(s.WebhookEndpointCreatedSerializer(endpoint).data)


class WebhookEndpointTestView(ApiView):
    """Send a signed `webhook.test` event now. Answers only the status code, latency and error class."""

    required_scope = Scope.ADMIN
    serializer_class = s.WebhookTestResultSerializer

    @extend_schema(summary="Send a test event",
                   description="Send a signed `webhook.test` event to the endpoint now and answer how it went: "
                               "the receiver's status code, the latency and an error class; nothing of the "
                               "receiver's answer. Needs the `admin` scope.",
                   request=None, responses={200: s.WebhookTestResultSerializer})
    def post(self, request, endpoint_id):
        endpoint = selectors.webhook_endpoint_get(tenant=request.auth.tenant, public_id=endpoint_id)
        result = services.webhook_endpoint_test(tenant=request.auth.tenant, endpoint=endpoint)
        return Response(s.WebhookTestResultSerializer(result).data)


class CallbackSecretView(ApiView):
    """The secret that signs deliveries to per-message `callback_url`s: created on the first call, rotated
    on later ones (the old one keeps signing for 24 hours). In the answer once."""

    required_scope = Scope.ADMIN
    serializer_class = s.CallbackSecretSerializer
    idempotency_redact_fields = ("secret",)

    @extend_schema(summary="Get or rotate the callback secret",
                   description="The secret that signs deliveries to the `callback_url` of messages and leases: "
                               "made on the first call, rotated on later ones (the old one keeps signing for 24 "
                               "hours). In the answer once. Needs the `admin` scope.",
                   request=None, responses={200: s.CallbackSecretSerializer})
    def post(self, request):
        row, secret = services.webhook_callback_secret_rotate(tenant=request.auth.tenant, actor=actor_for(request))
        row.secret = secret
        return Response(s.CallbackSecretSerializer(row).data)


@extend_schema_view(get=extend_schema(
    summary="List webhook deliveries",
    description="Events sent (or being sent) to your endpoints and callback URLs, newest first, each with its "
                "attempts: status code, latency and error class. Filter by endpoint, message, status and event "
                "type. Needs the `messages:read` scope."))
class WebhookDeliveryListView(ApiListView):
    """Deliveries, newest first, each with its attempts (status code, latency, error class)."""

    required_scope = Scope.MESSAGES_READ
    serializer_class = s.WebhookDeliverySerializer
    filterset_class = WebhookDeliveryFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            # unscoped: schema generation has no tenant; an empty queryset reads nothing
            return WebhookDelivery.unscoped.none()
        return selectors.webhook_delivery_list(tenant=self.request.auth.tenant)


class WebhookDeliveryDetailView(ApiView):
    required_scope = Scope.MESSAGES_READ
    serializer_class = s.WebhookDeliverySerializer

    @extend_schema(summary="Show a webhook delivery", description="One delivery with its payload and every "
                   "attempt. Needs the `messages:read` scope.")
    def get(self, request, delivery_id):
        delivery = selectors.webhook_delivery_get(tenant=request.auth.tenant, public_id=delivery_id)
        return Response(s.WebhookDeliverySerializer(delivery).data)


class WebhookDeliveryResendView(ApiView):
    """Deliver the same event again now: a new attempt cycle with the same webhook-id and payload."""

    required_scope = Scope.ADMIN
    serializer_class = s.WebhookDeliverySerializer

    @extend_schema(summary="Resend a webhook delivery",
                   description="Send the same event again now (same `webhook-id`, same body) as a new attempt "
                               "cycle, whatever its status. A disabled endpoint gets 409 "
                               "`webhook_endpoint_disabled`. Needs the `admin` scope.",
                   request=None, responses={202: s.WebhookDeliverySerializer,
                                            **api_errors(errors.WebhookEndpointDisabled)})
    def post(self, request, delivery_id):
        tenant = request.auth.tenant
        delivery = selectors.webhook_delivery_get(tenant=tenant, public_id=delivery_id)
        services.webhook_delivery_resend(tenant=tenant, delivery=delivery)
        delivery = selectors.webhook_delivery_get(tenant=tenant, public_id=delivery_id)
        return Response(s.WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
