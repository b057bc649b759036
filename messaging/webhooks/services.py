"""Webhook use cases. Placeholder until the webhook delivery lands: events are not sent yet."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from messaging.models import Message, MessageEvent


def message_event_emit(*, message: Message, event_type: str, event: MessageEvent) -> None:
    """Record a webhook event for the message's callback URL and the tenant's endpoints.

    Called inside the transaction that changed the status, so the event commits with it.
    """


def callback_url_validate(url: str) -> str:
    """Check a callback URL at registration; placeholder until the SSRF guard lands (scheme only)."""
    from smsportal.errors import DomainError

    if not url.lower().startswith(("http://", "https://")):
        raise DomainError("callback_url must be an http(s) URL.", field="callback_url", code="invalid_callback_url")
    return url
