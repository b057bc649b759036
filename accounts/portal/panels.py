"""The dashboard's panels: apps above accounts register what they add to it, in their AppConfig.ready,
so the dashboard shows their figures without accounts importing them (.importlinter)."""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest

# A panel takes the portal request (request.tenant, request.membership set) and returns entries for the
# dashboard template's context; it decides itself what the member's role may see.
Panel = Callable[[HttpRequest], dict]

_panels: list[Panel] = []


def dashboard_panel_register(panel: Panel) -> None:
    """Add a panel once (a second registration of the same function is ignored)."""
    if panel not in _panels:
        _panels.append(panel)


def dashboard_panels_context(request: HttpRequest) -> dict:
    context: dict = {}
    for panel in _panels:
        context.update(panel(request))
    return context
