"""Small presentation filters for portal templates."""
from __future__ import annotations

from django import template

from accounts.roles import Scope

register = template.Library()


# Actions whose changes hold [before, after] pairs (the others hold values, e.g. a list of scopes).
_TRANSITION_ACTIONS = ("tenant.suspended", "tenant.reactivated")


@register.filter
def change_value(value, action: str = "") -> str:
    """An audit change as text: a [before, after] pair of a "...changed" action reads "before → after"."""
    if isinstance(value, list | tuple):
        if len(value) == 2 and (action.endswith("changed") or action in _TRANSITION_ACTIONS):
            return f"{_text(value[0])} → {_text(value[1])}"
        return ", ".join(_text(v) for v in value) or "—"
    return _text(value)


def _text(value) -> str:
    if value is None or value == "":
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


@register.filter
def scope_label(value: str) -> str:
    try:
        return Scope(value).label
    except ValueError:
        return value
