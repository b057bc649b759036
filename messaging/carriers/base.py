"""The connector interface every carrier (simulator, HTTP, SMPP) implements."""
from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
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


class DeadlinePassed(TransientError):
    """Not sent: the dispatch ran out of time before this message's turn, and nothing of it reached the carrier.
    Dispatch puts it back in the queue at once; it is neither the route's failure nor the destination's."""


DEADLINE_PASSED = "dispatch_deadline"


def deadline_passed() -> DeadlinePassed:
    return DeadlinePassed(DEADLINE_PASSED, "The dispatch ran out of time before this message was sent; it is queued again.")


class CarrierConnector(Protocol):
    name: str

    def submit(self, message) -> SubmitResult:
        """Hand the message to the carrier. `message.public_id` is the idempotency reference:
        a resubmission of the same message must not send a second SMS where the carrier allows."""
        ...

    # Optional: `submit_many(messages) -> list[SubmitResult | CarrierError]`, one outcome per message in
    # order: many messages handed over at once (the simulator answers them together; the HTTP connectors keep
    # `concurrency` requests in flight). Without it, dispatch calls `submit` for each (submit_each below).
    # A `submit_many` that takes `deadline=` (time.monotonic()) starts no request after it and cuts the ones in
    # flight at it: the messages not started are DeadlinePassed.
    #
    # Optional: `submit_as_completed(messages, deadline=None)`, yielding lists of (index in messages, outcome) as
    # the submits finish (the HTTP connectors: a slow request does not hold back the others' ids); every
    # message's outcome once. Dispatch records each list as it comes (submit_in_sets below).
    #
    # Optional: `receipt_query(message) -> str | None`, the receipt status a carrier that allows status
    # queries gives for a message it accepted (None: none yet). The sweeper asks it when a receipt is
    # overdue (messaging/pipeline.py); without it, the message ends `undelivered`, `receipt_timeout`,
    # after its validity period plus MESSAGE_RECEIPT_GRACE_SECONDS.


def submit_each(connector, messages: list, *, deadline: float | None = None) -> list[SubmitResult | CarrierError]:
    """The outcomes of many messages through `connector.submit_many`, or `submit` one by one where the
    connector has no batch form. A carrier error becomes that message's outcome; anything else raises.
    `deadline` (time.monotonic()): no submit starts after it (DeadlinePassed), where the connector allows."""
    many = getattr(connector, "submit_many", None)
    if many is not None:
        if deadline is not None and "deadline" in inspect.signature(many).parameters:
            return many(messages, deadline=deadline)
        return many(messages)
    outcomes: list[SubmitResult | CarrierError] = []
    for message in messages:
        if deadline is not None and time.monotonic() >= deadline:
            outcomes.append(deadline_passed())
            continue
        try:
            outcomes.append(connector.submit(message))
        except CarrierError as exc:
            outcomes.append(exc)
    return outcomes


def submit_in_sets(connector, messages: list, *,
                   deadline: float | None = None) -> Iterator[list[tuple[int, SubmitResult | CarrierError]]]:
    """The outcomes of many messages in sets as they are known: (index in `messages`, outcome) pairs, every
    message once over all the sets. A connector with `submit_as_completed` gives a set as its requests finish;
    any other gives one set of all, by submit_each. Anything but a carrier error raises, as submit_each."""
    completed = getattr(connector, "submit_as_completed", None)
    if completed is None:
        yield list(enumerate(submit_each(connector, messages, deadline=deadline)))
        return
    yield from completed(messages, deadline=deadline)
