"""Carrier connectors: one interface (base.py). The choice of connector for a message is messaging/routing/connectors.py."""
from __future__ import annotations

from messaging.carriers.base import (
    DEADLINE_PASSED,
    CarrierConnector,
    CarrierError,
    DeadlinePassed,
    PermanentError,
    RouteError,
    SubmitResult,
    TransientError,
    submit_each,
    submit_in_sets,
)

__all__ = ["DEADLINE_PASSED", "CarrierConnector", "CarrierError", "DeadlinePassed", "PermanentError", "RouteError", "SubmitResult", "TransientError",
           "submit_each", "submit_in_sets"]

