"""Presentation filters for the portal's messaging pages."""
from __future__ import annotations

import re

from django import template

from messaging import templating
from messaging.models import Status

register = template.Library()

STATUS_BADGES = {
    Status.SCHEDULED: "badge-scheduled",
    Status.QUEUED: "badge-neutral",
    Status.SENDING: "badge-info",
    Status.SENT: "badge-info",
    Status.DELIVERED: "badge-success",
    Status.UNDELIVERED: "badge-danger",
    Status.FAILED: "badge-danger",
    Status.EXPIRED: "badge-warning",
    Status.REJECTED: "badge-danger",
    Status.CANCELED: "badge-neutral",
}

_PLACEHOLDER = re.compile(r"(\$\{" + templating.NAME_PATTERN + r"\})")


@register.filter
def status_badge(status: str) -> str:
    """The badge class of a message status."""
    return STATUS_BADGES.get(status, "badge-neutral")


@register.filter
def placeholders(body: str) -> list[str]:
    """A template body's placeholder names; none for a body that does not parse (stored before a rule change)."""
    try:
        return templating.placeholders(body)
    except templating.TemplateSyntaxError:
        return []


@register.filter
def template_parts(body: str) -> list[tuple[str, bool]]:
    """A template body as (text, is_placeholder) runs, to highlight its ${placeholders}."""
    return [(part, bool(_PLACEHOLDER.fullmatch(part))) for part in _PLACEHOLDER.split(body) if part]
