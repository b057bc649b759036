"""The event types apps emit: each app registers its own in its AppConfig.ready, this layer names none.

Endpoint subscriptions, the API's and the portal's choices and event_emit all check against it.
"""
from __future__ import annotations

from collections.abc import Callable

from django.apps import apps

_types: dict[str, None] = {}  # insertion-ordered: the order apps register in (INSTALLED_APPS)


def event_types_register(*event_types: str) -> None:
    """Add event types (`message.queued`, `number.released`, …); registering one twice is harmless."""
    for event_type in event_types:
        _types[event_type] = None


def event_types() -> tuple[str, ...]:
    """Every registered type, in registration order. Only once every app is ready: before that the
    list would silently miss the types of the apps not yet ready."""
    if not apps.ready:
        raise RuntimeError("event types are registered in AppConfig.ready: read them after setup")
    return tuple(_types)


# Expanders of fan-out rows (smsportal/events/fanout.py), by event type: fn(*, tenant_id, items) -> list[Event].
_expanders: dict[str, Callable] = {}


def fanout_expander_register(event_type: str, expander: Callable) -> None:
    """The emitting app's function that turns a fan-out row's `items` into the events to deliver."""
    _expanders[event_type] = expander


def fanout_expander(event_type: str) -> Callable:
    try:
        return _expanders[event_type]
    except KeyError:
        raise LookupError(f"no fan-out expander for {event_type!r}: register one in the emitting app's ready()") from None
