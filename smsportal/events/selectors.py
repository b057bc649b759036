"""Read queries for webhooks, always tenant-scoped."""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.models import Tenant
from messaging.webhooks.models import WebhookAttempt, WebhookCallbackSecret, WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.unscoped.filter(tenant=tenant)


def webhook_endpoint_get(*, tenant: Tenant, public_id: str) -> WebhookEndpoint:
    endpoint = webhook_endpoint_list(tenant=tenant).filter(public_id=public_id).first()
    if endpoint is None:
        raise Http404("not found")
    return endpoint


def webhook_delivery_list(*, tenant: Tenant, endpoint: str | None = None, message: str | None = None,
                          status: str | None = None, event_type: str | None = None) -> QuerySet[WebhookDelivery]:
    """Deliveries with their endpoint, message and attempt log (three queries, whatever the page size).
    Filters take public ids (`endpoint`, `message`)."""
    queryset = (WebhookDelivery.unscoped.filter(tenant=tenant)
                .select_related("endpoint", "message")
                .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.unscoped.order_by("cycle", "number"))))
    filters = {"endpoint__public_id": endpoint, "message__public_id": message, "status": status,
               "event_type": event_type}
    return queryset.filter(**{name: value for name, value in filters.items() if value})


def webhook_delivery_get(*, tenant: Tenant, public_id: str) -> WebhookDelivery:
    delivery = webhook_delivery_list(tenant=tenant).filter(public_id=public_id).first()
    if delivery is None:
        raise Http404("not found")
    return delivery


def webhook_callback_secret_get(*, tenant: Tenant) -> WebhookCallbackSecret | None:
    return WebhookCallbackSecret.unscoped.filter(tenant=tenant).first()
