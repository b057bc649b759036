"""Sender IDs and sender substitution (issue 12 section 3, docs/compliance.md "Sender IDs").

An alphanumeric `from` is looked at by the destination's country rule (compliance/data/country_rules.json):
- `allowed`: it goes as written;
- `registration_required`: only with an approved, unexpired SenderId of the tenant for that country, else
  422 `sender_not_registered` on `from`;
- `not_supported` (US, CA, ...): a number is sent from instead, from the tenant's fallback pool when it has one
  with a number of that country (or of its calling code: a US number for Canada), else from the platform's shared
  sender numbers of that country; the message records `sender_substituted: {"requested", "used"}`. No number:
  422 `sender_not_supported` on `from`.
Numbers, short codes and `pool:NAME` senders are not looked at (sender_allowed checked them).

Cost: the rules and the tenant's approved IDs come from per-process caches (compliance), so a send that needs no
substitution asks the database nothing; one that does asks once per request (`prepare`, for the whole batch):
the fallback pool's members (current, so a released number is never used), else the shared senders, which are
the platform's and kept in memory for COMPLIANCE_CACHE_SECONDS.
"""
from __future__ import annotations

import threading
import time as clock
import zlib
from collections.abc import Sequence
from dataclasses import replace
from numbers import selectors as numbers_selectors

from django.conf import settings
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from compliance import countries, geo, sender_ids
from compliance.errors import SenderNotRegistered, SenderNotSupported
from messaging.accept.registry import policy_check
from messaging.accept.steps import AcceptContext, Draft
from messaging.services import PreparedMessage

MEMO = "sender_substitutes"
RULES_MEMO = "sender_id_rules"  # (region, calling code) -> (ISO country, its rule), per request

# Registration of a number as a sender ID takes only the tenant's own numbers (compliance asks numbers through us).
sender_ids.sender_number_check_register(numbers_selectors.sender_number_usable)

_shared: tuple[float, dict[str, list[str]]] | None = None
_shared_lock = threading.Lock()


def shared_senders_cache_clear() -> None:
    global _shared
    _shared = None


def shared_senders() -> dict[str, list[str]]:
    global _shared
    known, now = _shared, clock.monotonic()
    if known is None or now - known[0] >= settings.COMPLIANCE_CACHE_SECONDS:
        with _shared_lock:
            known = _shared = (now, numbers_selectors.shared_senders_by_country())
    return known[1]


def _alphanumeric(message: PreparedMessage) -> bool:
    # After sender_allowed a number is E.164 ("+...") and a short code digits: anything else is an ID.
    return message.pool is None and not message.sender.startswith("+") and not message.sender.isdigit()


def _rule(message: PreparedMessage, memo: dict | None = None):
    """(ISO country, its rule) the sender is decided by. The recipient's region comes from validation's cache
    (PreparedMessage.country), and with a request's `memo` each (region, calling code) is looked up once."""
    key = (message.country, message.to[:4])
    if memo is not None and key in memo:
        return memo[key]
    iso = geo.geo_country(message.to, region=message.country)
    found = iso, countries.country_rule(iso)
    if memo is not None:
        memo[key] = found
    return found


def substitutes_prepare(*, context: AcceptContext, drafts: Sequence[Draft]) -> None:
    """The numbers that may replace an alphanumeric sender, once per request and only when some message needs
    one: the tenant's fallback pool's, and the shared senders', each by country."""
    rules = context.memo.setdefault(RULES_MEMO, {})
    wanted = any(_alphanumeric(d.message) and (rule := _rule(d.message, rules)[1]) is not None
                 and rule.alphanumeric == "not_supported" for d in drafts)
    if not wanted or MEMO in context.memo:
        return
    pool = sender_ids.fallback_pool_name(tenant_id=context.tenant.pk)
    own = numbers_selectors.pool_numbers_by_country(tenant=context.tenant, name=pool) if pool else {}
    context.memo[MEMO] = (own, shared_senders())


def _candidates(by_country: dict[str, list[str]], *, to: str, iso: str) -> list[str]:
    """The numbers of the recipient's country, else of its calling code (NANP: a US number for Canada)."""
    if by_country.get(iso):
        return by_country[iso]
    # The calling code read off the validated E.164 number (the shortest known of 1 to 3 digits), not parsed again.
    code = next((int(to[1:1 + size]) for size in (1, 2, 3)
                 if to[1:1 + size].isdigit() and int(to[1:1 + size]) in COUNTRY_CODE_TO_REGION_CODE), None)
    if code is None:
        return []
    return [number for region in COUNTRY_CODE_TO_REGION_CODE[code] for number in by_country.get(region, ())]


def substitute_for(*, context: AcceptContext, message: PreparedMessage, iso: str) -> str | None:
    own, shared = context.memo.get(MEMO, ({}, {}))
    for by_country in (own, shared):
        if not by_country:
            continue
        numbers = _candidates(by_country, to=message.to, iso=iso)
        if numbers:
            # The same number for the same recipient every time (a conversation stays on one number), spread
            # over the numbers across recipients.
            return numbers[zlib.crc32(message.to.encode()) % len(numbers)]
    return None


@policy_check("sender_id", codes=("sender_not_registered", "sender_not_supported"), prepare=substitutes_prepare)
def sender_id(*, context: AcceptContext, message: PreparedMessage) -> PreparedMessage | None:
    """An alphanumeric sender by the destination's rule: as it is, registered, or replaced by a number."""
    if not _alphanumeric(message):
        return None
    iso, rule = _rule(message, context.memo.setdefault(RULES_MEMO, {}))
    if rule is None or rule.alphanumeric == "allowed":
        return None
    if rule.alphanumeric == "registration_required":
        if sender_ids.sender_registered(tenant_id=context.tenant.pk, sender=message.sender, country=iso):
            return None
        raise SenderNotRegistered(
            f"{rule.name} ({iso}) takes only registered alphanumeric sender IDs, and {message.sender!r} is not "
            f"approved for it: register it (POST /v1/sender-ids) or send from a number.", field="from")
    used = substitute_for(context=context, message=message, iso=iso)
    if used is None:
        raise SenderNotSupported(
            f"{rule.name} ({iso}) takes no alphanumeric sender such as {message.sender!r}, and there is no number "
            f"of {iso} to send from instead: send from one of your numbers, or put one in your fallback pool.",
            field="from")
    return replace(message, sender=used, sender_substituted={"requested": message.sender, "used": used})
