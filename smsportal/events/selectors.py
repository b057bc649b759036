"""Read queries for webhooks, always tenant-scoped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from smsportal.events.models import WebhookAttempt, WebhookCallbackSecret, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from accounts.models import Tenant


@dataclass(frozen=True)
class Subscribers:
    """The enabled endpoints that want one event type, by tenant (event_subscribers)."""

    by_tenant: dict[int, list[WebhookEndpoint]]

    def endpoints(self, *, tenant_id: int) -> list[WebhookEndpoint]:
        return self.by_tenant.get(tenant_id, [])

    def listening(self, *, tenant_id: int, callback_url: str = "") -> bool:
        """Whether an event of this tenant (with this callback_url) would have a target: emitters skip
        building the payloads, and reading what they need for them, of events nobody receives."""
        return bool(callback_url) or tenant_id in self.by_tenant


def event_subscribers(*, tenant_ids: set[int], event_type: str) -> Subscribers:
    """The enabled endpoints of these tenants subscribed to `event_type`: one query (none for no tenant)."""
    by_tenant: dict[int, list[WebhookEndpoint]] = {}
    if tenant_ids:
        for endpoint in WebhookEndpoint.unscoped.filter(tenant_id__in=tenant_ids, enabled=True).only(
                "id", "tenant_id", "url", "events"):
            if endpoint.wants(event_type):
                by_tenant.setdefault(endpoint.tenant_id, []).append(endpoint)
    return Subscribers(by_tenant=by_tenant)


def webhook_endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.unscoped.filter(tenant=tenant)


def webhook_endpoint_get(*, tenant: Tenant, public_id: str) -> WebhookEndpoint:
    endpoint = webhook_endpoint_list(tenant=tenant).filter(public_id=public_id).first()
    if endpoint is None:
        raise Http404("not found")
    return endpoint


def webhook_delivery_list(*, tenant: Tenant, endpoint: str | None = None, message: str | None = None,
                          status: str | None = None, event_type: str | None = None) -> QuerySet[WebhookDelivery]:
    """Deliveries with their endpoint and attempt log (two queries, whatever the page size).
    Filters take public ids (`endpoint`; `message`, matched against the delivery's subject)."""
    queryset = (WebhookDelivery.unscoped.filter(tenant=tenant)
                .select_related("endpoint")
                .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.unscoped.order_by("cycle", "number"))))
    filters = {"endpoint__public_id": endpoint, "subject": message, "status": status,
               "event_type": event_type}
    return queryset.filter(**{name: value for name, value in filters.items() if value})


def webhook_delivery_get(*, tenant: Tenant, public_id: str) -> WebhookDelivery:
    delivery = webhook_delivery_list(tenant=tenant).filter(public_id=public_id).first()
    if delivery is None:
        raise Http404("not found")
    return delivery


def webhook_callback_secret_get(*, tenant: Tenant) -> WebhookCallbackSecret | None:
    return WebhookCallbackSecret.unscoped.filter(tenant=tenant).first()
