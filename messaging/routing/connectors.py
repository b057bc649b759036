"""From a Carrier row to what submits to it: its CarrierConfig (credentials decrypted here only) and a connector.

Connectors are kept per process and carrier, and rebuilt when the row changes (its `updated_at`), so a changed
password or URL is in use as soon as the routing table is read again. Dispatch hands them Message rows; the
adapter turns each into the OutboundMessage a connector takes, and its `Submitted` into dispatch's SubmitResult.
"""
from __future__ import annotations

import logging
import threading

from django.conf import settings

from messaging.carriers.base import CarrierError, PermanentError, RouteError, SubmitResult
from messaging.carriers.config import CarrierConfig, OutboundMessage, Submitted
from messaging.carriers.http import connector_from_config
from messaging.carriers.simulator import NAME, SimulatorConnector
from messaging.routing.cache import carrier_named
from messaging.routing.credentials import credentials_decrypt
from messaging.routing.models import Carrier


def carrier_config(carrier: Carrier) -> CarrierConfig:
    return CarrierConfig(name=carrier.name, kind=carrier.kind, settings=dict(carrier.settings),
                         credentials=credentials_decrypt(carrier.credentials_encrypted),
                         public_base_url=settings.PUBLIC_BASE_URL)


def outbound_message(message) -> OutboundMessage:
    validity = max(1, round((message.expires_at - message.created_at).total_seconds())) if message.expires_at else None
    return OutboundMessage(reference=message.public_id, to=message.to, sender=message.sender, text=message.text,
                           encoding=message.encoding, message_type=message.message_type, validity_seconds=validity)


class ConnectorAdapter:
    """A connector of messaging/carriers/config.py's kind, as dispatch calls it (submit_many of Message rows)."""

    def __init__(self, connector) -> None:
        self.connector = connector
        self.name = connector.name

    def submit_many(self, messages: list, *, deadline: float | None = None) -> list[SubmitResult | CarrierError]:
        """`deadline` (time.monotonic()): passed on to an HTTP connector, which starts nothing after it."""
        outbound = [outbound_message(m) for m in messages]
        outcomes = (self.connector.submit_many(outbound) if deadline is None
                    else self.connector.submit_many(outbound, deadline=deadline))
        return [_result(o) for o in outcomes]

    def submit_as_completed(self, messages: list, *, deadline: float | None = None):
        """As submit_many, in sets as the requests finish (where the connector can): (index, outcome) pairs."""
        completed = getattr(self.connector, "submit_as_completed", None)
        if completed is None:
            yield list(enumerate(self.submit_many(messages, deadline=deadline)))
            return
        for done in completed([outbound_message(m) for m in messages], deadline=deadline):
            yield [(index, _result(outcome)) for index, outcome in done]


def _result(outcome: Submitted | CarrierError) -> SubmitResult | CarrierError:
    return SubmitResult.of(outcome.carrier_message_ids) if isinstance(outcome, Submitted) else outcome


class Unavailable:
    """A carrier this process cannot submit to: every submit is a route error, so the next route is tried."""

    def __init__(self, name: str, why: str) -> None:
        self.name, self.why = name, why

    def submit_many(self, messages: list) -> list[CarrierError]:
        return [RouteError("connector_unavailable", self.why) for _ in messages]


logger = logging.getLogger("smsportal.routing")
_lock = threading.Lock()
_built: dict[int, tuple[object, object]] = {}  # carrier pk -> (updated_at, connector)


def connector_of(carrier: Carrier):
    """The connector a worker submits through: the simulator kind (local carriers) and HTTP carriers. An SMPP
    carrier's binds live in the connector process (docs/carriers.md), not in a worker."""
    if carrier.kind == Carrier.Kind.SIMULATOR:
        return SimulatorConnector(name=carrier.name)
    if carrier.kind != Carrier.Kind.HTTP:
        return Unavailable(carrier.name, "This route's carrier is served by the connector process.")
    with _lock:
        held = _built.get(carrier.pk)
        if held is None or held[0] != carrier.updated_at:
            held = _built[carrier.pk] = (carrier.updated_at, _http_connector(carrier))
    return held[1]


def _http_connector(carrier: Carrier):
    try:
        return ConnectorAdapter(connector_from_config(carrier_config(carrier)))
    except (ValueError, KeyError, TypeError) as exc:  # a carrier saved in admin without what its preset needs
        logger.error("carrier %s cannot be used: %s", carrier.name, exc)
        return Unavailable(carrier.name, "This route's carrier is misconfigured.")


def connector_for(message):
    """The connector of a message dispatch does not route: test mode always the simulator, and live ones too
    with LIVE_CARRIER = "simulator" (with "routes", dispatch routes them: messaging/routing/dispatching.py)."""
    if message.mode == "test" or settings.LIVE_CARRIER == "simulator":
        return SimulatorConnector()
    raise PermanentError("no_route", f"No carrier route is configured ({settings.LIVE_CARRIER!r}).")


def connector_named(name: str):
    """The connector that recorded itself as a message's `carrier` (for its receipts); None if unknown."""
    if name == NAME:
        return SimulatorConnector()
    carrier = carrier_named(name)
    return None if carrier is None else connector_of(carrier)
