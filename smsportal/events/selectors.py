"""Read queries for webhooks, always tenant-scoped."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.http import Http404

from smsportal.events.models import WebhookAttempt, WebhookCallbackSecret, WebhookDelivery, WebhookEndpoint
from smsportal.tenancy import tenant_scoped

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
        # unscoped: the emitters' tenants, by the ids they give (a worker's batch spans tenants)
        for endpoint in WebhookEndpoint.unscoped.filter(tenant_id__in=tenant_ids, enabled=True).only(
                "id", "tenant_id", "url", "events"):
            if endpoint.wants(event_type):
                by_tenant.setdefault(endpoint.tenant_id, []).append(endpoint)
    return Subscribers(by_tenant=by_tenant)


# The enabled endpoints of a tenant as one process last read them: (time.monotonic() of the read, endpoints).
_endpoints_read: dict[int, tuple[float, list[WebhookEndpoint]]] = {}


def event_subscribers_cached(*, tenant_id: int, event_type: str) -> Subscribers:
    """event_subscribers for one tenant, from what this process read at most WEBHOOK_ENDPOINTS_CACHE_SECONDS
    ago: the accept path (message.queued) asks on every send, and endpoints seldom change.

    A change to an endpoint is in force at once in the process that saved it (endpoints_cache_clear,
    a post_save / post_delete receiver, smsportal/events/apps.py) and within the TTL in the others: an
    event emitted meanwhile goes to the endpoints as they were just before."""
    read = _endpoints_read.get(tenant_id)
    if read is None or time.monotonic() - read[0] >= settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS:
        read_at = time.monotonic()
        # unscoped: by the tenant id the caller gives (the emitting tenant's own rows)
        endpoints = list(WebhookEndpoint.unscoped.filter(tenant_id=tenant_id, enabled=True).only(
            "id", "tenant_id", "url", "events"))
        read = (read_at, endpoints)
        if settings.WEBHOOK_ENDPOINTS_CACHE_SECONDS > 0:
            _endpoints_read[tenant_id] = read
    wanting = [endpoint for endpoint in read[1] if endpoint.wants(event_type)]
    return Subscribers(by_tenant={tenant_id: wanting} if wanting else {})


def endpoints_cache_clear(**_) -> None:
    """Forget the endpoints this process read (after an endpoint is saved or deleted; tests)."""
    _endpoints_read.clear()


@tenant_scoped
def webhook_endpoint_list(*, tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.all()


def webhook_endpoint_get(*, tenant: Tenant, public_id: str) -> WebhookEndpoint:
    endpoint = webhook_endpoint_list(tenant=tenant).filter(public_id=public_id).first()
    if endpoint is None:
        raise Http404("not found")
    return endpoint


@tenant_scoped
def webhook_delivery_list(*, tenant: Tenant, endpoint: str | None = None, message: str | None = None,
                          status: str | None = None, event_type: str | None = None) -> QuerySet[WebhookDelivery]:
    """Deliveries with their endpoint and attempt log (two queries, whatever the page size).
    Filters take public ids (`endpoint`; `message`, matched against the delivery's subject)."""
    queryset = (WebhookDelivery.objects.select_related("endpoint")
                .prefetch_related(Prefetch("attempt_log", queryset=WebhookAttempt.objects.order_by("cycle", "number"))))
    filters = {"endpoint__public_id": endpoint, "subject": message, "status": status,
               "event_type": event_type}
    return queryset.filter(**{name: value for name, value in filters.items() if value})


def webhook_delivery_get(*, tenant: Tenant, public_id: str) -> WebhookDelivery:
    delivery = webhook_delivery_list(tenant=tenant).filter(public_id=public_id).first()
    if delivery is None:
        raise Http404("not found")
    return delivery


@tenant_scoped
def webhook_callback_secret_get(*, tenant: Tenant) -> WebhookCallbackSecret | None:
    return WebhookCallbackSecret.objects.first()
