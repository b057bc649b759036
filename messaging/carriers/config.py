"""What a carrier connector is built from, and what it hands back: plain values, no models.

The Carrier rows (admin, `manage.py carriers_load`) are turned into a `CarrierConfig` by the routing
code; a connector (SMPP, HTTP presets, the simulator) only ever sees this object, so it can be built
and tested without a database. Secrets are decrypted into `credentials` in memory only: a connector
never logs them, and `CarrierConfig`'s repr leaves them out.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# The file's fields that are secrets, by carrier kind and preset: encrypted at rest, never shown back.
SECRET_FIELDS = frozenset({"password", "auth_token", "api_key", "token", "secret", "receipt_secret"})


@dataclass(frozen=True)
class CarrierConfig:
    name: str
    kind: str  # "smpp" | "http" | "simulator"
    settings: Mapping[str, Any] = field(default_factory=dict)  # the non-secret fields, as in the carriers file
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)  # decrypted secrets
    public_base_url: str = ""  # PUBLIC_BASE_URL: where our /carriers/{name}/receipts and /inbound live

    def setting(self, name: str, default: Any = None) -> Any:
        return self.settings.get(name, default)

    @property
    def receipt_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/carriers/{self.name}/receipts"

    @property
    def inbound_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/carriers/{self.name}/inbound"


@dataclass(frozen=True)
class OutboundMessage:
    """One message as a connector sends it (built from a Message row by dispatch)."""

    reference: str  # our public id (msg_...): the idempotency reference where the carrier takes one
    to: str  # E.164
    sender: str  # alphanumeric, long number (E.164) or short code
    text: str  # what is sent (after smart encoding)
    encoding: str  # "GSM-7" | "UCS-2" (messaging/encoding.py)
    message_type: str = "transactional"  # otp | transactional | marketing
    validity_seconds: int | None = None


@dataclass(frozen=True)
class Submitted:
    """The carrier took the message: its id for each part, in order (one for a single-part message).
    Receipts name any of them; the first is the message's carrier id."""

    carrier_message_ids: tuple[str, ...]

    @property
    def carrier_message_id(self) -> str:
        return self.carrier_message_ids[0]


@dataclass(frozen=True)
class CarrierReceipt:
    """A delivery receipt as a connector parsed it. `status` is our vocabulary:
    accepted | enroute | delivered | undelivered | expired | rejected | failed | unknown."""

    carrier_message_id: str
    status: str
    carrier_error_code: str = ""
    done_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class CarrierInbound:
    """A mobile-originated message as a connector received it (long ones already reassembled)."""

    to: str  # our number, E.164
    sender: str  # E.164 where the carrier gives one
    text: str
    carrier_message_id: str
    received_at: datetime | None = None
    # What a carrier with no id of its own knows a redelivery by (an SMPP MO: smpp/inbound.py mo_dedupe_key).
    dedupe_key: str = ""
