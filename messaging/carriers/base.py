"""The connector interface every carrier (simulator, HTTP, SMPP) implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SubmitResult:
    """The carrier took the message. `part_ids`: the carrier's id of each part, in order, when it took the
    message in parts (SMPP: one submit_sm each, one receipt each); empty when it took it whole."""

    carrier_message_id: str
    part_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, carrier_message_ids: tuple[str, ...]) -> SubmitResult:
        """From every part's id (one for a message in one piece): the first is the message's carrier id."""
        return cls(carrier_message_ids[0], carrier_message_ids if len(carrier_message_ids) > 1 else ())


class CarrierError(Exception):
    def __init__(self, code: str, message: str, *, carrier_error_code: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.carrier_error_code = carrier_error_code


class TransientError(CarrierError):
    """Try again later: throttled, timed out, connection lost."""


class PermanentError(CarrierError):
    """Retrying will not help: rejected destination, invalid sender, no route. Final: no other route is tried."""


class RouteError(TransientError):
    """The route failed, not the destination: the bind is down, the submit timed out, or the carrier
    answered with an error of its own (a system error, 5xx after retries). Dispatch moves the message
    to the next candidate route within its validity period, and the route's circuit counts it."""


class CarrierConnector(Protocol):
    name: str

    def submit(self, message) -> SubmitResult:
        """Hand the message to the carrier. `message.public_id` is the idempotency reference:
        a resubmission of the same message must not send a second SMS where the carrier allows."""
        ...

    # Optional: `submit_many(messages) -> list[SubmitResult | CarrierError]`, one outcome per message in
    # order: many messages handed over at once (the simulator answers them together; SMPP and HTTP
    # connectors of issue 10 will keep a window of submits in flight). Without it, dispatch calls
    # `submit` for each (submit_each below).
    #
    # Optional: `receipt_query(message) -> str | None`, the receipt status a carrier that allows status
    # queries gives for a message it accepted (None: none yet). The sweeper asks it when a receipt is
    # overdue (messaging/pipeline.py); without it, the message ends `undelivered`, `receipt_timeout`,
    # after its validity period plus MESSAGE_RECEIPT_GRACE_SECONDS.


def submit_each(connector, messages: list) -> list[SubmitResult | CarrierError]:
    """The outcomes of many messages through `connector.submit_many`, or `submit` one by one where the
    connector has no batch form. A carrier error becomes that message's outcome; anything else raises."""
    many = getattr(connector, "submit_many", None)
    if many is not None:
        return many(messages)
    outcomes: list[SubmitResult | CarrierError] = []
    for message in messages:
        try:
            outcomes.append(connector.submit(message))
        except CarrierError as exc:
            outcomes.append(exc)
    return outcomes
