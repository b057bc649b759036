"""Money as the API shows it: Decimal, never float (ARCHITECTURE.md "Money")."""
from __future__ import annotations

from decimal import Decimal

MICRO = Decimal("0.000001")  # the places of every stored amount (billing.models.MONEY)


def money_text(amount: Decimal | None) -> str | None:
    """A string decimal with at least 4 places and no more than it needs (6 at most): "0.0079", "0.015800" as
    "0.0158"; None stays None."""
    if amount is None:
        return None
    text = format(amount.quantize(MICRO), "f").rstrip("0")
    whole, _, places = text.partition(".")
    return f"{whole}.{places.ljust(4, '0')}"
