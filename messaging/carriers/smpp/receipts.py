"""Delivery receipts in deliver_sm: the text form and the TLVs, and parking of early receipts.

The text form (SMPP 3.4 appendix B; every carrier varies it) is
`id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E text:...`.
Parsing is lenient (any case, fields missing, extra or out of order, garbage): it never raises, and
what it cannot read is status "unknown". The TLVs receipted_message_id (0x001E) and message_state
(0x0427) win over the text when present.
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from messaging.carriers.config import CarrierReceipt

# stat values of the text form -> our status vocabulary (config.CarrierReceipt).
TEXT_STATUSES = {
    "DELIVRD": "delivered",
    "UNDELIV": "undelivered",
    "EXPIRED": "expired",
    "REJECTD": "rejected",
    "DELETED": "undelivered",
    "ACCEPTD": "accepted",
    "ENROUTE": "enroute",
    "UNKNOWN": "unknown",
}
# message_state TLV values (SMPP 3.4 5.2.28) -> our status vocabulary.
MESSAGE_STATES = {
    1: "enroute",
    2: "delivered",
    3: "expired",
    4: "undelivered",  # DELETED
    5: "undelivered",
    6: "accepted",
    7: "unknown",
    8: "rejected",
}

_FIELD = re.compile(r"(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:", re.IGNORECASE)
# The appendix's own layout, which most SMSCs send as is: one match instead of the lenient scan.
_CANONICAL = re.compile(r"id:(\S+) sub:(\S*) dlvrd:(\S*) submit date:(\d*) done date:(\d*) stat:(\S*) err:(\S*)"
                        r"(?: text:(.*))?\Z", re.IGNORECASE | re.DOTALL)
_CANONICAL_NAMES = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")


def receipt_fields(text: str) -> dict[str, str]:
    """The fields of a receipt text, keys lower-case ("submit date"); `text:` takes the rest of the line."""
    canonical = _CANONICAL.match(text)
    if canonical is not None:
        fields = dict(zip(_CANONICAL_NAMES, canonical.groups()[:7], strict=True))
        if canonical.group(8) is not None:
            fields["text"] = canonical.group(8).strip()
        return fields
    return _receipt_fields_lenient(text)


def _receipt_fields_lenient(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    matches = list(_FIELD.finditer(text))
    for index, match in enumerate(matches):
        name = " ".join(match.group(1).lower().split())
        if name in fields:
            continue
        end = len(text) if name == "text" or index + 1 == len(matches) else matches[index + 1].start()
        value = text[match.end():end].strip()
        fields[name] = value if name == "text" else (value.split() or [""])[0]
    return fields


def receipt_date(value: str) -> datetime | None:
    """YYMMDDhhmm[ss] (UTC: the carrier's zone is not given) or None."""
    digits = value.strip()
    if len(digits) not in (10, 12) or not digits.isascii() or not digits.isdigit():
        return None
    year = int(digits[0:2])
    year += 2000 if year < 69 else 1900  # as strptime's %y
    try:
        return datetime(year, int(digits[2:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10]),
                        int(digits[10:12] or 0), tzinfo=UTC)
    except ValueError:
        return None


def receipt_parse(text: str, *, tlv_message_id: str = "", tlv_state: int | None = None,
                  tlv_error: str = "") -> CarrierReceipt | None:
    """The receipt in a deliver_sm's text and TLVs; None when no message id can be found at all."""
    fields = receipt_fields(text)
    message_id = tlv_message_id or fields.get("id", "")
    if not message_id:
        return None
    if tlv_state is not None:
        status = MESSAGE_STATES.get(tlv_state, "unknown")
    else:
        status = TEXT_STATUSES.get(fields.get("stat", "").upper(), "unknown")
    error = tlv_error or fields.get("err", "")
    stat = fields.get("stat", "").upper() or status
    # The same few words for every receipt of one outcome: receipts are stored in groups of equal detail (one
    # statement per group), and the text's id and dates are on the message already.
    return CarrierReceipt(
        carrier_message_id=message_id,
        status=status,
        carrier_error_code=error,
        done_at=receipt_date(fields.get("done date", "")),
        detail=f"receipt: {stat}" + (f" err:{error}" if error.strip("0") else ""),
    )


class ReceiptParking:
    """Holds receipts whose carrier id is not known yet, until it is (or until `hold_seconds` pass).

    A receipt can overtake its own submit_sm_resp (the SMSC answers the submit after it sent the
    receipt, or our side has not recorded the id yet). `offer` a receipt: True when its id is known
    (apply it now), False when it was parked. `known(id)` marks an id as recorded and returns the
    receipts parked for it, to apply now; `due()` returns those parked longer than `hold_seconds`, to
    hand on anyway (the database resolves them or logs an unknown id). Known ids are remembered for
    `remember_seconds` (at most `max_known` of them), so a receipt that comes soon after its id is
    not parked. Thread-safe: one lock around the two maps, never held while calling out.
    """

    def __init__(self, *, hold_seconds: float = 10.0, remember_seconds: float = 300.0, max_known: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._hold = hold_seconds
        self._remember = remember_seconds
        self._max_known = max_known
        self._clock = clock
        self._lock = threading.Lock()
        self._known: OrderedDict[str, float] = OrderedDict()
        self._parked: OrderedDict[str, list[tuple[float, CarrierReceipt]]] = OrderedDict()

    def offer(self, receipt: CarrierReceipt) -> bool:
        with self._lock:
            if receipt.carrier_message_id in self._known:
                return True
            self._parked.setdefault(receipt.carrier_message_id, []).append((self._clock(), receipt))
            return False

    def known(self, carrier_message_id: str) -> list[CarrierReceipt]:
        with self._lock:
            now = self._clock()
            self._known[carrier_message_id] = now
            self._known.move_to_end(carrier_message_id)
            self._forget_old(now)
            return [receipt for _, receipt in self._parked.pop(carrier_message_id, [])]

    def due(self) -> list[CarrierReceipt]:
        with self._lock:
            cutoff = self._clock() - self._hold
            due: list[CarrierReceipt] = []
            for message_id in [key for key, parked in self._parked.items() if parked[0][0] <= cutoff]:
                due.extend(receipt for _, receipt in self._parked.pop(message_id))
            return due

    def release_all(self) -> list[CarrierReceipt]:
        """Every parked receipt, now (the session closes or lost its link)."""
        with self._lock:
            released = [receipt for parked in self._parked.values() for _, receipt in parked]
            self._parked.clear()
            return released

    def __len__(self) -> int:
        with self._lock:
            return sum(len(parked) for parked in self._parked.values())

    def _forget_old(self, now: float) -> None:
        while self._known and (len(self._known) > self._max_known
                               or next(iter(self._known.values())) < now - self._remember):
            self._known.popitem(last=False)
