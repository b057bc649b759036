"""HTTP carrier connectors (generic, Twilio, Telnyx) and the checks of their callbacks, built from a CarrierConfig.

    connector = connector_from_config(config)          # config.kind == "http", setting "preset"
    connector.submit(message) -> Submitted             # or PermanentError / RouteError / CarrierThrottled
    connector.submit_many(messages) -> [Submitted | CarrierError, ...]
    connector.submit_as_completed(messages) -> yields [(index, Submitted | CarrierError), ...] as requests finish

    receipts_from_callback(config, method=..., url=..., headers=..., body=..., client_ip=...) -> [CarrierReceipt]
    inbound_from_callback(config, ...) -> [CarrierInbound]   # both raise CallbackRefused: answer 403

The view passes the full URL as the carrier called it (Twilio signs it), the raw body (every scheme
signs the bytes) and the client address it trusts (for the optional `callback_allowed_ips`).
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from messaging.carriers.config import CarrierConfig, CarrierInbound, CarrierReceipt
from messaging.carriers.http import generic, telnyx, twilio
from messaging.carriers.http.transport import CarrierThrottled, HttpConnector
from messaging.carriers.http.verify import Callback, CallbackRefused, client_check

__all__ = ["CallbackRefused", "CarrierThrottled", "HttpConnector", "connector_from_config", "inbound_from_callback",
           "receipts_from_callback"]

CONNECTORS: dict[str, type[HttpConnector]] = {
    "generic": generic.GenericConnector, "twilio": twilio.TwilioConnector, "telnyx": telnyx.TelnyxConnector,
}
_RECEIPTS = {"generic": generic.receipts, "twilio": twilio.receipts, "telnyx": telnyx.receipts}
_INBOUND = {"generic": generic.inbound, "twilio": twilio.inbound, "telnyx": telnyx.inbound}


def connector_from_config(config: CarrierConfig) -> HttpConnector:
    """The connector of the config's preset. Raises ValueError for another kind or an unknown preset."""
    return CONNECTORS[_preset(config)](config)


def receipts_from_callback(config: CarrierConfig, *, method: str, url: str, headers: Mapping[str, str], body: bytes,
                           client_ip: str | None, now: datetime | None = None) -> list[CarrierReceipt]:
    """The delivery receipts in a verified callback (none for an event that is not one). Checks the source
    address, then the signature, before reading anything; raises CallbackRefused. `now` is for tests."""
    preset = _preset(config)
    client_check(config, client_ip)
    return _RECEIPTS[preset](config, Callback(method, url, headers, body, now))


def inbound_from_callback(config: CarrierConfig, *, method: str, url: str, headers: Mapping[str, str], body: bytes,
                          client_ip: str | None, now: datetime | None = None) -> list[CarrierInbound]:
    """The mobile-originated messages in a verified callback; as receipts_from_callback."""
    preset = _preset(config)
    client_check(config, client_ip)
    return _INBOUND[preset](config, Callback(method, url, headers, body, now))


def _preset(config: CarrierConfig) -> str:
    preset = str(config.setting("preset") or "generic")
    if config.kind != "http" or preset not in CONNECTORS:
        raise ValueError(f"{config.name} is not an HTTP carrier with a known preset ({config.kind}/{preset}).")
    return preset
