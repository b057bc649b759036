"""Read queries for messaging, always tenant-scoped."""
from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.models import Tenant
from messaging.models import Message, MessageEvent, MessageTemplate


def message_list(*, tenant: Tenant) -> QuerySet[Message]:
    return Message.unscoped.filter(tenant=tenant)


def message_get(*, tenant: Tenant, public_id: str, with_events: bool = False) -> Message:
    queryset = message_list(tenant=tenant)
    if with_events:
        queryset = queryset.prefetch_related(
            Prefetch("events", queryset=MessageEvent.unscoped.order_by("sequence"))
        )
    message = queryset.filter(public_id=public_id).first()
    if message is None:
        raise Http404("not found")
    return message


def template_list(*, tenant: Tenant) -> QuerySet[MessageTemplate]:
    return MessageTemplate.unscoped.filter(tenant=tenant)


def template_get(*, tenant: Tenant, public_id: str) -> MessageTemplate:
    template = template_list(tenant=tenant).filter(public_id=public_id).first()
    if template is None:
        raise Http404("not found")
    return template
