"""Mobile-originated deliver_sm: addresses, text, the reassembly of long messages and the key a redelivery is known by."""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from messaging.carriers.config import CarrierInbound
from messaging.carriers.smpp.codec import Concatenation, decode_text

logger = logging.getLogger("messaging.carriers.smpp")

TON_ALPHANUMERIC = 5


def e164(address: str, ton: int) -> str:
    """An SMPP address as E.164 with '+' (digits, any TON but alphanumeric); alphanumerics as they are."""
    digits = address.strip().lstrip("+")
    if ton == TON_ALPHANUMERIC or not digits.isdigit():
        return address.strip()
    return f"+{digits}"


def mo_dedupe_key(*, sender: str, to: str, text: str, message_id: str = "", reference: int | None = None,
                  concatenation: Concatenation | None = None) -> str:
    """The key an MO is known by (with its carrier), the same for every delivery of the same deliver_sm; the
    inbound service takes a delivery under the key of an MO it stored within `mo_redelivery_seconds` for that
    MO again (numbers/inbound.py), measured from that MO, so with no window boundary to straddle.

    An SMSC that lost our deliver_sm_resp delivers the MO again, on this or another session, with a new
    sequence_number, and a deliver_sm carries no time of its own (schedule_delivery_time and validity_period
    are NULL in SMPP 3.4 deliver_sm). What stays the same: the SMSC's message id where it sends one (the
    receipted_message_id TLV on an MO): `smpp-mo-id-<id>`; else the addresses, the text, the handset's message
    reference (user_message_reference, TP-MR, where given) and a long MO's concatenation reference and part
    count: `smpp-mo-<hash>`. The same text from the same sender after the redelivery time is a new message;
    within it, without a TP-MR, it is the same one (a STOP, a HELP or a code repeated is one message)."""
    if message_id:
        return f"smpp-mo-id-{message_id}"[:100]
    parts = [sender, to, "" if reference is None else str(reference), text]
    if concatenation is not None:
        parts[2:2] = [str(concatenation.reference), str(concatenation.total)]
    return "smpp-mo-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def mo_inbound(*, sender: str, to: str, text: str, received_at: datetime, message_id: str = "",
               reference: int | None = None, concatenation: Concatenation | None = None) -> CarrierInbound:
    """The whole MO as the inbound service takes it, known by its dedupe key (no carrier id: the store gives
    it one). A long MO (`concatenation`, after reassembly) is known by its concatenation: its parts' own ids,
    if any, are not its id."""
    long = concatenation is not None and concatenation.total > 1
    key = mo_dedupe_key(sender=sender, to=to, text=text, message_id="" if long else message_id, reference=reference,
                        concatenation=concatenation if long else None)
    return CarrierInbound(to=to, sender=sender, text=text, carrier_message_id="", received_at=received_at,
                          dedupe_key=key)


@dataclass(frozen=True)
class MoPart:
    """One part of a long MO, handed to a session's `on_inbound_part` (the connector stores it durably before
    its deliver_sm is answered: messaging/connector/mo.py). `reference`: this deliver_sm's TP-MR, if any."""

    sender: str
    to: str
    concatenation: Concatenation
    payload: bytes
    data_coding: int
    reference: int | None = None


@dataclass
class _Pending:
    first_seen: float
    data_coding: int
    total: int
    parts: dict[int, bytes] = field(default_factory=dict)


class Reassembler:
    """Collects the parts of long MO messages (UDH IEI 0x00/0x08 or sar_* TLVs), in any order.

    `add` returns the whole text once the last part is in (None before); parts are joined as octets
    and decoded once, so an escape or a surrogate pair cut across parts still decodes. `expire()`
    drops messages still incomplete after `timeout_seconds` and returns how many it dropped.
    Thread-safe (one lock); the reader thread is its only caller in a session.
    """

    def __init__(self, *, timeout_seconds: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, int, int], _Pending] = {}

    def add(self, *, sender: str, to: str, concatenation: Concatenation, payload: bytes, data_coding: int) -> str | None:
        key = (sender, to, concatenation.reference, concatenation.total)
        if not 1 <= concatenation.number <= concatenation.total:
            logger.warning("smpp: MO part %s of %s ignored", concatenation.number, concatenation.total)
            return None
        with self._lock:
            pending = self._pending.setdefault(key, _Pending(self._clock(), data_coding, concatenation.total))
            pending.parts[concatenation.number] = payload
            if len(pending.parts) < pending.total:
                return None
            del self._pending[key]
        return decode_text(b"".join(pending.parts[number] for number in sorted(pending.parts)), pending.data_coding)

    def expire(self) -> int:
        cutoff = self._clock() - self._timeout
        with self._lock:
            stale = [key for key, pending in self._pending.items() if pending.first_seen <= cutoff]
            for key in stale:
                del self._pending[key]
        for _sender, _to, reference, total in stale:
            logger.warning("smpp: long MO message ref %s (%s parts) incomplete after %ss, dropped", reference, total,
                           self._timeout)
        return len(stale)

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)
