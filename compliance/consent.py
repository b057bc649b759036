"""The consent ledger and suppressions (issue 12, sections 1 and 2; docs/compliance.md "Consent and suppression").

A number's state for a send is decided by the records of the scopes that apply to it: the whole tenant, the
sender number, and the pool the message goes through. The latest ledger record among them wins (a START to one
sender after a STOPALL lets that sender message the number again; a newer tenant-wide opt-in after a STOP to one
sender lets every sender); a suppression in any of them refuses, whatever the ledger says.

The send check (messaging/accept/policies/consent.py) reads every record of a batch's numbers in ONE query, by the
numbers' keyed hashes (so an erased number's opt-out still matches), and asks nothing at all of a tenant with no
records and no suppressions: that answer is kept CONSENT_EMPTY_CACHE_SECONDS in the process, and a write here
clears it at once; a tenant with records costs that one query per request.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time as clock
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db.models import CharField, Value

from compliance.models import ConsentRecord, ConsentScope, Suppression

OPTED_IN, OPTED_OUT = ConsentRecord.Status.OPTED_IN, ConsentRecord.Status.OPTED_OUT
SUPPRESSED = "suppressed"


@cache
def _hash_key(secret: str, pepper: str) -> bytes:
    return (pepper or hashlib.sha256(f"consent-hash:{secret}".encode()).hexdigest()).encode()


def phone_hash(phone: str) -> str:
    """The keyed hash of an E.164 number kept in the ledger and suppressions (HMAC-SHA256, hex)."""
    key = _hash_key(settings.SECRET_KEY, settings.CONSENT_HASH_KEY)
    return hmac.new(key, phone.encode(), hashlib.sha256).hexdigest()


ERASED_KEPT_DIGITS = 6


def number_masked(phone: str) -> str:
    """What an erasure leaves of an E.164 number on the rows billing still needs (messages, inbound messages): its
    calling code and leading digits (the country and, mostly, the area: invoices and usage still fold it to its
    country), the rest zeros. "+447781123456" -> "+447781000000". The number itself is gone."""
    digits = phone[1:] if phone.startswith("+") else phone
    kept = min(ERASED_KEPT_DIGITS, max(len(digits) - 4, 1))
    return "+" + digits[:kept] + "0" * (len(digits) - kept)


# --- "does this tenant have any records at all", per process ------------------------------------------------

_known: dict[int, tuple[float, bool]] = {}  # tenant id -> (when, whether it had no records and no suppressions)
_lock = threading.Lock()


def consent_cache_clear(tenant_id: int | None = None) -> None:
    """A record or suppression was written (in this process): the tenant is asked again at its next send."""
    with _lock:
        if tenant_id is None:
            _known.clear()
        else:
            _known.pop(tenant_id, None)


def ledger_empty(tenant_id: int) -> bool:
    """True when the tenant has no consent record and no suppression, from process memory when known.

    "Empty" is kept CONSENT_EMPTY_CACHE_SECONDS: another process's first record is seen within that time (a write
    here clears it at once). "Not empty" is kept COMPLIANCE_CACHE_SECONDS and can only be stale the safe way (a
    lifted last suppression: the send then reads entries it did not need)."""
    now = clock.monotonic()
    known = _known.get(tenant_id)
    if known is not None:
        at, empty = known
        ttl = settings.CONSENT_EMPTY_CACHE_SECONDS if empty else settings.COMPLIANCE_CACHE_SECONDS
        if now - at < ttl:
            return empty
    # the accept pipeline runs in the tenant's context: the scoped managers filter to it
    empty = (not ConsentRecord.objects.filter(tenant_id=tenant_id).exists()
             and not Suppression.objects.filter(tenant_id=tenant_id).exists())
    with _lock:
        _known[tenant_id] = (now, empty)
    return empty


# --- deciding -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A ledger record (`status` opted_in / opted_out) or a suppression (`status` suppressed) of one number."""

    phone_hash: str
    status: str
    scope: str
    sender: str
    pool_id: str
    at: datetime
    id: int


def applies(entry: Entry, *, sender: str, pool_id: str) -> bool:
    """Whether the entry's scope covers a send from `sender` (through pool `pool_id`, "" when none)."""
    if entry.scope == ConsentScope.TENANT:
        return True
    if entry.scope == ConsentScope.SENDER:
        return entry.sender == sender
    return bool(pool_id) and entry.pool_id == pool_id


def state_for(entries: Iterable[Entry], *, sender: str, pool_id: str = "") -> str | None:
    """`suppressed`, `opted_out`, `opted_in`, or None (no record applies) for a send from `sender`."""
    latest: Entry | None = None
    for entry in entries:
        if not applies(entry, sender=sender, pool_id=pool_id):
            continue
        if entry.status == SUPPRESSED:
            return SUPPRESSED
        if latest is None or (entry.at, entry.id) > (latest.at, latest.id):
            latest = entry
    return latest.status if latest is not None else None


def consent_entries(*, tenant_id: int, phones: Sequence[str]) -> dict[str, list[Entry]]:
    """Every ledger record and suppression of `phones`, by number, in one query (a UNION over both tables,
    by keyed hash: an erased number's entries still come back under the number asked about)."""
    by_hash = {phone_hash(phone): phone for phone in set(phones)}
    fields = ("phone_hash", "status", "scope", "sender", "pool_id", "created_at", "id")
    # no ORDER BY in either part: SQLite refuses one in a compound statement's subqueries, and none is needed
    records = ConsentRecord.objects.filter(tenant_id=tenant_id, phone_hash__in=by_hash).order_by().values_list(*fields)
    suppressions = (Suppression.objects.filter(tenant_id=tenant_id, phone_hash__in=by_hash).order_by()
                    .annotate(status=_literal(SUPPRESSED)).values_list(*fields))
    found: dict[str, list[Entry]] = {}
    for row in records.union(suppressions, all=True):
        entry = Entry(*row)
        found.setdefault(by_hash[entry.phone_hash], []).append(entry)
    return found


def _literal(value: str) -> Value:
    return Value(value, output_field=CharField())


def consent_state(*, tenant_id: int, phone: str, sender: str, pool_id: str = "") -> str | None:
    """One number's state for a send from `sender`: what the check decides by (portal, tests)."""
    if ledger_empty(tenant_id):
        return None
    return state_for(consent_entries(tenant_id=tenant_id, phones=[phone]).get(phone, ()), sender=sender,
                     pool_id=pool_id)
