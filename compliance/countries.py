"""Country rules for callers: what a destination allows, from a per-process cache of the CountryRule rows.

The send pipeline's checks (sender IDs, content, geo permissions, quiet hours) read a rule per message, so
nothing here asks the database when the cache is warm: the first call loads every country at once (one query)
and keeps them COMPLIANCE_CACHE_SECONDS; a rule saved in this process clears it at once (compliance/signals.py,
and the loader and override services), another process sees the change within that time.
"""
from __future__ import annotations

import functools
import threading
import time as clock
from dataclasses import dataclass
from datetime import date, time

import phonenumbers
from django.conf import settings

from compliance.models import CountryRule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # datetime.weekday() order


@dataclass(frozen=True)
class QuietHours:
    """A country's legal sending window in the recipient's local time: messages of `applies_to` types may go
    from `start` to `end` on `days` (a `day_overrides` day has its own window), not on other days, and not on
    public holidays when `holidays` is true."""

    start: time
    end: time
    days: tuple[str, ...]
    holidays: bool
    applies_to: tuple[str, ...]
    law: str
    day_overrides: tuple[tuple[str, time, time], ...] = ()

    def window(self, day: str) -> tuple[time, time] | None:
        """The allowed (start, end) on `day` ("mon".."sun"), or None: no sending that day."""
        for name, start, end in self.day_overrides:
            if name == day:
                return start, end
        return (self.start, self.end) if day in self.days else None

    def as_json(self) -> dict:
        return {"start": self.start.strftime("%H:%M"), "end": self.end.strftime("%H:%M"), "days": list(self.days),
                "holidays": self.holidays, "applies_to": list(self.applies_to), "law": self.law,
                "day_overrides": {day: {"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
                                  for day, start, end in self.day_overrides}}


@dataclass(frozen=True)
class CountryRuleData:
    """One country's rules as callers read them (a snapshot of its CountryRule row; "none" is None)."""

    iso: str
    name: str
    region: str
    alphanumeric: str  # "allowed" | "registration_required" | "not_supported"
    numeric_sender: bool
    two_way: bool
    registration: str
    template_required: bool
    signature_required: str | None  # e.g. "【】": the message must open with a signature in these brackets
    marketing_opt_out_text: str | None
    marketing_opt_out_keyword: str | None  # a marketing body containing it (any case) meets the opt-out rule
    quiet_hours: QuietHours | None
    max_parts: int
    risk: str  # "low" | "medium" | "high"
    approval_required: bool
    source: str
    as_of: date
    overridden: bool
    changed: date  # the last account-manager change, else the dataset's date
    dataset_version: str

    @property
    def alphanumeric_allowed(self) -> bool:
        """Some alphanumeric sender may be used (registered ones only, where registration is required)."""
        return self.alphanumeric != "not_supported"


@dataclass(frozen=True)
class CountryRulesMeta:
    """What the rules as a whole publish: the dataset version and the date of the latest change."""

    version: str
    changed: date | None


@dataclass(frozen=True)
class _Cache:
    rules: dict[str, CountryRuleData]
    meta: CountryRulesMeta
    loaded: float


_cache: _Cache | None = None
_lock = threading.Lock()


def country_rules_cache_clear() -> None:
    global _cache
    _cache = None


def _quiet_hours(value: dict | None) -> QuietHours | None:
    if not value:
        return None
    overrides = tuple((day, time.fromisoformat(w["start"]), time.fromisoformat(w["end"]))
                      for day, w in (value.get("day_overrides") or {}).items())
    return QuietHours(start=time.fromisoformat(value["start"]), end=time.fromisoformat(value["end"]),
                      days=tuple(value["days"]), holidays=value["holidays"], applies_to=tuple(value["applies_to"]),
                      law=value["law"], day_overrides=overrides)


def _data(row: CountryRule) -> CountryRuleData:
    changed = row.overridden_at.date() if row.overridden_at else row.dataset_date
    return CountryRuleData(
        iso=row.iso, name=row.name, region=row.region, alphanumeric=row.alphanumeric,
        numeric_sender=row.numeric_sender, two_way=row.two_way, registration=row.registration,
        template_required=row.template_required, signature_required=row.signature_required or None,
        marketing_opt_out_text=row.marketing_opt_out_text or None,
        marketing_opt_out_keyword=row.marketing_opt_out_keyword or None, quiet_hours=_quiet_hours(row.quiet_hours),
        max_parts=row.max_parts, risk=row.risk, approval_required=row.approval_required, source=row.source,
        as_of=row.as_of, overridden=row.overridden, changed=max(changed, row.dataset_date),
        dataset_version=row.dataset_version)


def _load() -> _Cache:
    rules = {row.iso: _data(row) for row in CountryRule.objects.all()}
    versions = sorted({rule.dataset_version for rule in rules.values()})
    meta = CountryRulesMeta(version=versions[-1] if versions else "",
                            changed=max((rule.changed for rule in rules.values()), default=None))
    return _Cache(rules=rules, meta=meta, loaded=clock.monotonic())


def _cached() -> _Cache:
    global _cache
    cache, now = _cache, clock.monotonic()
    if cache is None or now - cache.loaded >= settings.COMPLIANCE_CACHE_SECONDS:
        with _lock:
            cache = _cache
            if cache is None or now - cache.loaded >= settings.COMPLIANCE_CACHE_SECONDS:
                cache = _cache = _load()
    return cache


def country_rules() -> dict[str, CountryRuleData]:
    """Every country's rules by ISO code (upper case). Do not change the dict: it is the cache's."""
    return _cached().rules


def country_rule(iso: str) -> CountryRuleData | None:
    """The rules of the country `iso` (ISO 3166-1 alpha-2, any case), or None when the dataset has none."""
    return _cached().rules.get(iso.upper()) if isinstance(iso, str) else None


def country_rules_meta() -> CountryRulesMeta:
    """The dataset version in force and the date of the latest change (dataset or override)."""
    return _cached().meta


@functools.lru_cache(maxsize=100_000)
def country_of(number: str) -> str:
    """The ISO country (upper case) of an E.164 number, by phonenumbers' own region for it: +44 7781 … is
    Guernsey's (GG), +1 416 … Canada's. "" when the number cannot be parsed or has no region."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ""
    region = phonenumbers.region_code_for_number(parsed) or phonenumbers.region_code_for_country_code(
        parsed.country_code)
    return "" if not region or region == "ZZ" else region

