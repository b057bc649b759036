"""The mobile operator (MCC-MNC) of a destination, for routes that name one (lcr.py).

ROUTING_OPERATOR_LOOKUP is the dotted path of a function `e164 -> "MCC-MNC"` (or "" when it does not know):
a number-portability or HLR lookup the deployment provides. Without one, no message has an operator, so a
route that names an operator is never used and routes without one carry everything. Answers, "" included,
are cached for ROUTING_OPERATOR_CACHE_SECONDS in the shared cache: a lookup can be a paid network call, and a
number's operator changes only when it is ported. A lookup that fails counts as "" and is not cached.
"""
from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

logger = logging.getLogger("smsportal.routing")
_PARTS = re.compile(r"^\s*([0-9]{3})\s*[-/ ]?\s*([0-9]{2,3})\s*$")


def operator_key(text: str) -> str:
    """An operator as "MCC-MNC" whatever way it was written ("234/15", "234-15", "23415"); "" for none or junk."""
    match = _PARTS.match(text or "")
    return f"{match.group(1)}-{match.group(2)}" if match else ""


def operators_of(numbers: Iterable[str]) -> dict[str, str]:
    """Each number's operator ("MCC-MNC" or ""), from the cache or the lookup hook; {} without a hook."""
    lookup = _lookup(settings.ROUTING_OPERATOR_LOOKUP)
    if lookup is None:
        return {}
    wanted = sorted(set(numbers))
    # Not tenant-scoped: a number's operator is a fact about the number, the same for every tenant.
    keys = {number: _key(number) for number in wanted}
    cached = cache.get_many(list(keys.values()))
    found = {number: cached[key] for number, key in keys.items() if key in cached}
    fresh = {}
    for number in wanted:
        if number not in found:
            try:
                fresh[number] = operator_key(str(lookup(number) or ""))
            except Exception:
                logger.exception("operator lookup for a number failed: routed without an operator")
                found[number] = ""
    if fresh:
        cache.set_many({keys[number]: value for number, value in fresh.items()},
                       timeout=settings.ROUTING_OPERATOR_CACHE_SECONDS)
    return {**found, **fresh}


@lru_cache(maxsize=4)
def _lookup(path: str) -> Callable[[str], str] | None:
    return import_string(path) if path else None


def _key(number: str) -> str:
    return "routing-operator:" + hashlib.sha256(number.encode()).hexdigest()[:32]
