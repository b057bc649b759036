"""Carrier connectors: one interface (base.py). The choice of connector for a message is messaging/routing/connectors.py."""
from __future__ import annotations

from messaging.carriers.base import (
    CarrierConnector,
    CarrierError,
    PermanentError,
    RouteError,
    SubmitResult,
    TransientError,
    submit_each,
)

__all__ = ["CarrierConnector", "CarrierError", "PermanentError", "RouteError", "SubmitResult", "TransientError",
           "submit_each"]

