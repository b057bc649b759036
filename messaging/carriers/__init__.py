"""Carrier connectors: one interface, and the choice of connector for a message."""
from __future__ import annotations

from django.conf import settings

from messaging.carriers.base import (
    CarrierConnector,
    CarrierError,
    PermanentError,
    RouteError,
    SubmitResult,
    TransientError,
    submit_each,
)

__all__ = ["CarrierConnector", "CarrierError", "PermanentError", "RouteError", "SubmitResult", "TransientError", "connector_for",
           "connector_named", "submit_each"]


def connector_for(message) -> CarrierConnector:
    """Test-mode messages always go to the simulator; live ones to the configured carrier
    (routing across real carriers comes with the routing work; until then the simulator)."""
    from messaging.carriers.simulator import SimulatorConnector

    if message.mode == "test" or settings.LIVE_CARRIER == "simulator":
        return SimulatorConnector()
    raise PermanentError("no_route", f"No carrier route is configured ({settings.LIVE_CARRIER!r}).")


def connector_named(name: str) -> CarrierConnector | None:
    """The connector that recorded itself as a message's `carrier` (for its receipts); None if unknown."""
    from messaging.carriers.simulator import NAME, SimulatorConnector
    from messaging.routing.cache import carrier_named
    from messaging.routing.connectors import connector_of

    if name == NAME:
        return SimulatorConnector()
    carrier = carrier_named(name)
    return None if carrier is None else connector_of(carrier)
