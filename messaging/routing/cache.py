"""The routing table a process routes from: carriers, routes, circuits and quality, read at most every
ROUTING_CACHE_SECONDS (default 15 s), so a change made in admin or by carriers_load anywhere is in use
within that time without a restart, and at once in the process that made it (routing_cache_clear, called
by the loader and by every save or delete of these rows: messaging/apps.py)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings

from messaging.routing.models import Carrier, Route, RouteCircuit, RouteQuality


@dataclass(frozen=True)
class RoutingTable:
    carriers: dict[int, Carrier]
    routes: tuple[Route, ...]
    circuits: dict[int, RouteCircuit]  # by route id
    quality: dict[tuple[int, str], RouteQuality]  # by (route id, window)
    read_at: float


_lock = threading.Lock()
_table: RoutingTable | None = None


def routing_table() -> RoutingTable:
    global _table
    table = _table
    if table is None or time.monotonic() - table.read_at >= settings.ROUTING_CACHE_SECONDS:
        with _lock:
            table = _table = _read()
    return table


def routing_cache_clear(**_) -> None:
    global _table
    _table = None


def _read() -> RoutingTable:
    read_at = time.monotonic()  # before the queries: never fresher than the rows
    carriers = {c.pk: c for c in Carrier.objects.filter(enabled=True)}
    routes = tuple(Route.objects.filter(enabled=True, carrier_id__in=list(carriers), cost_from__isnull=False).order_by("pk"))
    circuits = {c.route_id: c for c in RouteCircuit.objects.all()}
    quality = {(q.route_id, q.window): q for q in RouteQuality.objects.all()}
    return RoutingTable(carriers=carriers, routes=routes, circuits=circuits, quality=quality, read_at=read_at)


def carrier_named(name: str) -> Carrier | None:
    """An enabled carrier by name, from the routing table."""
    return next((c for c in routing_table().carriers.values() if c.name == name), None)
