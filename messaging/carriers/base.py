"""The connector interface every carrier (simulator, HTTP, SMPP) implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SubmitResult:
    carrier_message_id: str


class CarrierError(Exception):
    def __init__(self, code: str, message: str, *, carrier_error_code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.carrier_error_code = carrier_error_code


class TransientError(CarrierError):
    """Try again later: throttled, timed out, connection lost."""


class PermanentError(CarrierError):
    """Retrying will not help: rejected destination, invalid sender, no route."""


class CarrierConnector(Protocol):
    name: str

    def submit(self, message) -> SubmitResult:
        """Hand the message to the carrier. `message.public_id` is the idempotency reference:
        a resubmission of the same message must not send a second SMS where the carrier allows."""
        ...

    # Optional: `receipt_query(message) -> str | None`, the receipt status a carrier that allows status
    # queries gives for a message it accepted (None: none yet). The sweeper asks it when a receipt is
    # overdue (messaging/pipeline.py); without it, the message ends `undelivered`, `receipt_timeout`,
    # after its validity period plus MESSAGE_RECEIPT_GRACE_SECONDS.
