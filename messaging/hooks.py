"""What messaging registers in the hooks of the apps below it (MessagingConfig.ready)."""
from __future__ import annotations

from numbers import hooks as numbers_hooks
from typing import TYPE_CHECKING

from accounts.portal.panels import dashboard_panel_register
from accounts.roles import role_can
from billing import hooks as billing_hooks
from messaging import accept, selectors
from messaging.routing.operators import operators_of

if TYPE_CHECKING:
    from django.http import HttpRequest

    from messaging.models import Message


def help_reply_send(*, tenant, mode: str, to: str, sender: str, text: str, metadata: dict) -> Message:
    """numbers' HELP reply: a transactional message from the number the HELP was sent to, with no API key."""
    return accept.message_send(tenant=tenant, api_key=None, mode=mode, to=to, sender=sender, text=text,
                                 message_type="transactional", metadata=metadata)


def messages_today_panel(request: HttpRequest) -> dict:
    """The dashboard's figures of today's messages, for members who may see messages."""
    allowed = role_can(request.membership.role, "messages.view")
    return {"messages_today": selectors.message_stats_today(tenant=request.tenant) if allowed else None}


def message_public_ids(*, tenant, keys) -> dict[int, str]:
    """billing's ledger names messages by primary key; the API shows their public ids."""
    return dict(selectors.message_list(tenant=tenant).filter(pk__in=keys).values_list("pk", "public_id"))


def message_usage(*, tenant, start, end) -> list[dict]:
    """billing's Billing pages and savings calculator: usage by country and type (billing may not read messages)."""
    return selectors.message_usage_by_country(tenant=tenant, start=start, end=end)


def message_usage_captured(*, tenant, start, end, currency: str) -> list[dict]:
    """billing's invoice lines for messages: what the tenant's charged messages of the period cost."""
    return selectors.message_usage_captured(tenant=tenant, start=start, end=end, currency=currency)


def register() -> None:
    billing_hooks.message_public_ids_register(message_public_ids)
    billing_hooks.message_usage_register(message_usage)
    billing_hooks.message_usage_captured_register(message_usage_captured)
    billing_hooks.operators_of_register(operators_of)  # a capture reprices by the operator's price
    numbers_hooks.help_reply_sender_register(help_reply_send)
    dashboard_panel_register(messages_today_panel)
