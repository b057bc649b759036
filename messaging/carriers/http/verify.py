"""What every carrier callback check shares: the refusal, header lookup, the source-address allowlist."""
from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from accounts.clientip import parse_ip
from messaging.carriers.config import CarrierConfig


class CallbackRefused(Exception):
    """A carrier callback we do not accept: the view answers 403 and changes nothing.

    `reason` is a short stable code for logs: not_configured, ip_not_allowed, signature_missing,
    signature_invalid, timestamp_stale, payload_invalid."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Callback:
    """A carrier's request to our receipts or inbound URL, as the view saw it."""

    method: str
    url: str  # the full URL as the carrier called it (scheme and host as the carrier saw them)
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    now: datetime | None = None  # for timestamped signatures; None: the current time

    def header(self, name: str) -> str:
        return header(self.headers, name)


def header(headers: Mapping[str, str], name: str) -> str:
    """A request header by name, whatever its case ('' when absent)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def secret_of(config: CarrierConfig, name: str) -> bytes:
    """A configured credential as bytes; refused when it is missing: an unconfigured secret never verifies."""
    value = config.credentials.get(name) or ""
    if not value:
        raise CallbackRefused("not_configured", f"{config.name} has no {name} to verify callbacks with.")
    return value.encode()


def equal(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time comparison that tolerates non-ASCII input (hmac.compare_digest refuses it in str)."""
    as_bytes = [value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
                for value in (expected, given)]
    return hmac.compare_digest(as_bytes[0], as_bytes[1])


def client_check(config: CarrierConfig, client_ip: object | None) -> None:
    """Refuse a caller outside `callback_allowed_ips` (a list of CIDRs), when the setting is given.

    `client_ip` is the address the view trusts (the peer, or the forwarded one from a trusted proxy)."""
    allowed = config.setting("callback_allowed_ips")
    if not allowed:
        return
    networks = _networks(allowed)
    address = parse_ip(str(client_ip)) if client_ip else None  # a str, or the view's parsed request.client_ip
    if address is None:
        raise CallbackRefused("ip_not_allowed", "The callback's source address is not known.")
    if not any(address.version == network.version and address in network for network in networks):
        raise CallbackRefused("ip_not_allowed", f"Callbacks from {address} are not allowed for {config.name}.")


def _networks(allowed: Iterable[str] | str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    if isinstance(allowed, str):
        allowed = [allowed]
    return [ipaddress.ip_network(cidr.strip(), strict=False) for cidr in allowed]


def json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CallbackRefused("payload_invalid", "The callback body is not JSON.") from None
