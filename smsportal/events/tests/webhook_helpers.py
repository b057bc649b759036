"""Shared pieces of the webhook tests: messages, endpoints, deliveries, and tasks published instead of brokered."""
from __future__ import annotations

import json

from accounts.services import SYSTEM
from messaging import accept
from messaging.models import Message
from smsportal.events import services
from smsportal.events.models import WebhookDelivery, WebhookEndpoint

# Numbers ending 0004 are accepted by the carrier simulator without a receipt task: tests apply receipts themselves.
QUIET_NUMBER = "+14155550004"


def send(tenant, **fields) -> Message:
    """A message accepted through the real send path (so its message.queued event is emitted)."""
    fields.setdefault("to", QUIET_NUMBER)
    fields.setdefault("sender", "Acme")
    fields.setdefault("text", "Your code is 123456")
    return accept.message_send(tenant=tenant, api_key=None, **fields)


def endpoint_for(tenant, url: str, **fields) -> tuple[WebhookEndpoint, str]:
    return services.webhook_endpoint_create(tenant=tenant, url=url, actor=SYSTEM, **fields)


def delivery_of(message: Message, endpoint: WebhookEndpoint | None = None, event_type: str = "message.queued"):
    return WebhookDelivery.unscoped.get(subject=message.public_id, endpoint=endpoint, event_type=event_type)


def body_of(request) -> dict:
    return json.loads(request.body)


class Published:
    """Tasks published instead of reaching a broker: `webhooks` as (delivery id, queue, countdown)."""

    def __init__(self, monkeypatch) -> None:
        from messaging.tasks import message_dispatch_task
        from smsportal.events.tasks import webhook_deliver_task, webhooks_deliver_task

        self.webhooks: list[tuple[int, str | None, float | None]] = []
        self.dispatches: list[int] = []
        monkeypatch.setattr(webhook_deliver_task, "apply_async", self._webhook)
        monkeypatch.setattr(webhooks_deliver_task, "apply_async", self._webhooks)
        monkeypatch.setattr(message_dispatch_task, "apply_async", lambda args, **kw: self.dispatches.append(args[0]))

    def _webhook(self, args, queue=None, countdown=None, **kwargs) -> None:
        self.webhooks.append((args[0], queue, countdown))

    def _webhooks(self, args, queue=None, countdown=None, **kwargs) -> None:
        """A batch task, recorded as its deliveries (the tests look at which deliveries were enqueued)."""
        self.webhooks.extend((delivery_id, queue, countdown) for delivery_id in args[0])

    @property
    def delivery_ids(self) -> list[int]:
        return [delivery_id for delivery_id, _queue, _countdown in self.webhooks]
