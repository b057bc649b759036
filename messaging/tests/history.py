"""A message's history as the API and the portal show it (selectors.message_timeline), for the tests.

An accept stores no first event: the message row is it, and the timeline makes `accepted` (sequence 1,
source api) from the row. Every later status change is a stored MessageEvent."""
from __future__ import annotations

from messaging.models import Message, MessageEvent
from messaging.selectors import message_timeline
from smsportal.tenancy import tenant_context


def timeline(message: Message) -> list[MessageEvent]:
    with tenant_context(message.tenant):
        return message_timeline(message=Message.objects.get(pk=message.pk))


def statuses(message: Message) -> list[str]:
    return [event.status for event in timeline(message)]


def sequences(message: Message) -> list[tuple[int, str]]:
    return [(event.sequence, event.status) for event in timeline(message)]
