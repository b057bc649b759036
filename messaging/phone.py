"""E.164 validation with a per-prefix cache that answers exactly as phonenumbers does (parse + is_valid_number).

A full phonenumbers parse and validity check costs 60-120 µs a number: a batch of 1,000 spent most
of its validation there. Whether phonenumbers accepts a canonical "+<digits>" number, and what it
formats it to, depends on the length and on leading digits only, up to a *horizon* we read off the
metadata's own regular expressions: past it every pattern of the country calling code has nothing
but `\\d` left (digit wildcards). So one slow answer per (leading digits up to the horizon, length)
stands for every number that shares them. The horizon is computed, not guessed:

- `hd`: over every region of the calling code, the furthest position at which any of its patterns
  (general description, every number type, the region's leading digits) tests anything narrower than
  `\\d`;
- `hn`: the same for the main region's national-prefix-for-parsing regex; parse may strip `x` digits
  with it (x is itself fixed by the first `hn` digits and the length), after which the type patterns
  look at `x + hd` digits.

Calling codes whose patterns the analysis cannot bound (an unbounded repeat, a construct it does not
know) or that rewrite the national number (a national prefix transform rule) always take the slow
path, as does any input that is not "+" and digits. Equivalence is tested with Hypothesis against
phonenumbers itself (messaging/tests/test_phone_cache.py).
"""
from __future__ import annotations

import re
import re._constants as sre
import re._parser as sre_parse
from functools import cache

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, region_code_for_country_code

UNBOUNDED = 1_000_000
MAX_ENTRIES = 200_000  # about 40 MB at worst; cleared whole when full (the next misses refill it)
_CANONICAL = re.compile(r"\+[1-9][0-9]{1,16}")
_DIGITS = frozenset("0123456789")
_DESCS = ("general_desc", "fixed_line", "mobile", "toll_free", "premium_rate", "shared_cost", "personal_number",
          "voip", "pager", "uan", "voicemail", "no_international_dialling")

_shift: dict[tuple[str, int], int] = {}  # (+cc and the first hn national digits, length) -> digits parse strips
_verdict: dict[tuple[str, int], str | None] = {}  # (+cc and the horizon's digits, length) -> E.164 prefix, or None
_region: dict[tuple[str, int], str] = {}  # the same key -> phonenumbers' region of a valid number ("" if none)


def phone_number_e164(value: str, *, region: str | None = None) -> str | None:
    """The E.164 form of `value` if phonenumbers finds it a valid number, else None; the same answer
    as `phonenumbers_e164`, from the cache when `value` is already "+<digits>"."""
    if type(value) is not str or not _CANONICAL.fullmatch(value):
        return phonenumbers_e164(value, region=region)
    key = _key(value)
    if key is False:
        return phonenumbers_e164(value, region=region)
    if key is not None and key in _verdict:
        prefix = _verdict[key]
        return None if prefix is None else prefix + value[len(key[0]):]
    return _fill(value)


def phone_number_region(e164: str) -> str:
    """phonenumbers' region (ISO, upper case) of a valid E.164 number, "" when it has none (the same answer
    as `phonenumbers_region`); from the same per-prefix cache as `phone_number_e164`, so the policy checks of
    a number validated already cost a dictionary lookup, not another parse."""
    key = _key(e164) if type(e164) is str and _CANONICAL.fullmatch(e164) else False
    if key is False:
        return phonenumbers_region(e164)
    if key is None or key not in _region:
        _fill(e164)
        key = _key(e164)
        if key is None or key is False or key not in _region:
            return phonenumbers_region(e164)
    return _region[key]


def phonenumbers_region(value: str) -> str:
    """The slow path: phonenumbers' parse and region_code_for_number ("" for an invalid number, none, or ZZ)."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number(number):
        return ""
    region = phonenumbers.region_code_for_number(number)
    return "" if not region or region == "ZZ" else region


def _key(value: str) -> tuple[str, int] | None | bool:
    """The cache key of a canonical "+<digits>" `value`: False when its calling code is not cacheable,
    None when the key is not known yet (the parse's strip of its first digits was never seen)."""
    country = _country_code(value)
    horizons = _horizons(country) if country else None
    if horizons is None:
        return False
    hd, hn = horizons
    start, length = 1 + len(str(country)), len(value)
    shift = _shift.get((value[:start + hn], length))
    if shift is None:
        return None
    return value[:start + max(hn, shift + hd)], length


def phonenumbers_e164(value: str, *, region: str | None = None) -> str | None:
    """The slow path: phonenumbers' own parse, is_valid_number and E.164 format."""
    try:
        number = phonenumbers.parse(value, (region or "").upper() or None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _fill(value: str) -> str | None:
    """Answer by the slow path and remember the answer (and the region) for every number with the same key."""
    hd, hn = _horizons(_country_code(value))
    start = 1 + len(str(_country_code(value)))
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None  # cc, length or shape errors: rare, not cached
    national_in = value[start:]
    national_out = phonenumbers.national_significant_number(number)
    shift = len(national_in) - len(national_out)
    valid = phonenumbers.is_valid_number(number)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) if valid else None
    keep = start + max(hn, shift + hd)
    # Stripping removes leading digits only; anything else (never seen) is not cached.
    if shift < 0 or national_in[shift:] != national_out or (e164 is not None and not e164.endswith(value[keep:])):
        return e164
    if len(_verdict) >= MAX_ENTRIES:
        _verdict.clear()
        _shift.clear()
        _region.clear()
    region = phonenumbers.region_code_for_number(number) if valid else ""
    _shift[(value[:start + hn], len(value))] = shift
    _verdict[(value[:keep], len(value))] = None if e164 is None else e164[:len(e164) - len(value[keep:])]
    _region[(value[:keep], len(value))] = "" if not region or region == "ZZ" else region
    return e164


def _country_code(value: str) -> int | None:
    """The calling code as phonenumbers extracts it after a "+": the shortest of 1 to 3 digits it knows."""
    for size in (1, 2, 3):
        code = int(value[1:1 + size])
        if code in COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


@cache
def _horizons(country: int) -> tuple[int, int] | None:
    """(hd, hn) of the calling code (see the module docstring), or None when it is not cacheable."""
    regions = [PhoneMetadata.metadata_for_region_or_calling_code(country, region)
               for region in COUNTRY_CODE_TO_REGION_CODE[country]]
    main = PhoneMetadata.metadata_for_region_or_calling_code(country, region_code_for_country_code(country))
    if main is None or any(metadata is None for metadata in regions) or main.national_prefix_transform_rule:
        return None
    hd = max(_region_horizon(metadata) for metadata in regions)
    hn = pattern_horizon(main.national_prefix_for_parsing)
    return None if max(hd, hn) >= UNBOUNDED else (hd, hn)


def _region_horizon(metadata: PhoneMetadata) -> int:
    patterns = [metadata.leading_digits] + [getattr(getattr(metadata, name), "national_number_pattern", None)
                                            for name in _DESCS if getattr(metadata, name) is not None]
    return max(pattern_horizon(pattern) for pattern in patterns)


def pattern_horizon(pattern: str | None) -> int:
    """How many leading characters can change whether `pattern` matches a digit string: past that
    position it only tests `\\d`. UNBOUNDED when it cannot tell."""
    if not pattern:
        return 0
    return _walk(sre_parse.parse(pattern), {0}, 0)[1]


def _class_digits(items) -> frozenset[str] | None:
    """The digits a character class `[...]` admits; None for a class that is not about digits."""
    admitted: set[str] = set()
    negated = False
    for op, arg in items:
        if op is sre.NEGATE:
            negated = True
        elif op is sre.LITERAL:
            admitted.add(chr(arg))
        elif op is sre.RANGE:
            admitted |= {chr(code) for code in range(arg[0], arg[1] + 1)}
        elif op is sre.CATEGORY and arg is sre.CATEGORY_DIGIT:
            admitted |= _DIGITS
        else:
            return None
    return frozenset(_DIGITS - admitted if negated else admitted & _DIGITS)


def _walk(sequence, positions: set[int], horizon: int) -> tuple[set[int], int]:
    """Walk a parsed pattern: `positions` are the offsets it may be at; returns those after it and the
    horizon so far (one past the furthest offset at which something narrower than `\\d` is tested)."""
    for op, arg in sequence:
        if op is sre.LITERAL or op is sre.IN:
            narrow = op is sre.LITERAL or _class_digits(arg) != _DIGITS
            if op is sre.IN and _class_digits(arg) is None:
                return positions, UNBOUNDED
            horizon = max(horizon, max(positions) + 1) if narrow else horizon
            positions = {position + 1 for position in positions}
        elif op is sre.MAX_REPEAT or op is sre.MIN_REPEAT or op is sre.POSSESSIVE_REPEAT:
            positions, horizon = _repeat(arg, positions, horizon)
        elif op is sre.SUBPATTERN:
            positions, horizon = _walk(arg[-1], positions, horizon)
        elif op is sre.BRANCH:
            reached: set[int] = set()
            for branch in arg[1]:
                after, horizon = _walk(branch, positions, horizon)
                reached |= after
            positions = reached
        else:  # anchors, look-arounds, groups by reference: not in the metadata; do not guess
            return positions, UNBOUNDED
        if horizon >= UNBOUNDED or max(positions) > 40:
            return positions, UNBOUNDED
    return positions, horizon


def _repeat(arg, positions: set[int], horizon: int) -> tuple[set[int], int]:
    low, high, body = arg
    if high is sre.MAXREPEAT or high > 20:
        return positions, UNBOUNDED
    reached: set[int] = set()
    current = positions
    for count in range(high + 1):
        if count >= low:
            reached |= current
        if count == high:
            break
        current, horizon = _walk(body, current, horizon)
        if horizon >= UNBOUNDED:
            return current, UNBOUNDED
    return reached, horizon
