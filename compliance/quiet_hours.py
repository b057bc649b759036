"""Quiet hours: when a marketing message may reach a recipient, in the recipient's own time zone.

The window of a day is the country's legal preset (compliance/data/quiet_hours.json) intersected with the
tenant's own setting (QuietHoursSetting), which can only narrow it. A message outside the window is deferred
to the start of the next window (docs/compliance.md, "Quiet hours").

The time zone comes from the number (phonenumbers' time-zone data, which for a country with several zones
answers by area code: +1 212 is New York, +1 415 Los Angeles) unless the caller names one. A number whose
area spans several zones gets the most restrictive answer: the first moment allowed in every one of them.

Nothing here asks the database per message: the presets are read once per process, the tenants' settings
are held in process memory for COMPLIANCE_CACHE_SECONDS and cleared on change (compliance/signals.py).
"""
from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays
import phonenumbers
from django.conf import settings
from phonenumbers import timezone as phone_timezones

from compliance.models import QuietHoursSetting

PRESETS_PATH = Path(__file__).parent / "data" / "quiet_hours.json"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
LOOKAHEAD_DAYS = 15  # a window within two weeks, or the preset and setting leave none (then: no deferral)
OTP, TRANSACTIONAL, MARKETING = "otp", "transactional", "marketing"


@dataclass(frozen=True)
class Preset:
    """A country's legal window: per weekday (0 Monday) a (start, end) or None (no marketing that day)."""

    country: str
    days: tuple[tuple[clock, clock] | None, ...]
    holidays: bool
    law: str
    source: str


@dataclass(frozen=True)
class TenantWindow:
    """A tenant's narrowing: a daily window (or none) and ISO weekdays off; whether transactional is covered."""

    start: clock | None = None
    end: clock | None = None
    days_off: frozenset[int] = frozenset()
    apply_to_transactional: bool = False


NO_SETTING = TenantWindow()


def _clock(text: str) -> clock:
    hours, minutes = text.split(":")
    return clock(int(hours), int(minutes))


@functools.cache
def presets() -> dict[str, Preset]:
    """The legal presets, by ISO country code, read once per process."""
    data = json.loads(PRESETS_PATH.read_text())
    answer = {}
    for country, rule in data["countries"].items():
        hours = rule["hours"]
        days = tuple((lambda w: None if w is None else (_clock(w[0]), _clock(w[1])))(hours.get(day, hours.get("default")))
                     for day in WEEKDAYS)
        answer[country] = Preset(country=country, days=days, holidays=rule.get("holidays", False), law=rule["law"],
                                 source=rule["source"])
    return answer


def presets_version() -> str:
    return json.loads(PRESETS_PATH.read_text())["version"]


@functools.lru_cache(maxsize=64)
def _holidays(country: str, year: int):
    return holidays.country_holidays(country, years=year)


@functools.cache
def zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone_valid(name: str) -> bool:
    """An IANA zone name this machine knows (the caller's `timezone` override)."""
    return name in zone_names()


@functools.lru_cache(maxsize=65536)
def number_place(to: str) -> tuple[str | None, tuple[str, ...]]:
    """(ISO country, IANA zones) of an E.164 number; zones empty when phonenumbers does not know them."""
    try:
        parsed = phonenumbers.parse(to)
    except phonenumbers.NumberParseException:
        return None, ()
    zones = tuple(z for z in phone_timezones.time_zones_for_number(parsed) if z != "Etc/Unknown" and z in zone_names())
    return phonenumbers.region_code_for_number(parsed), zones


# --- the tenants' settings, per process ---------------------------------------------------------------

_settings: tuple[float, dict[int, TenantWindow]] | None = None
_lock = threading.Lock()


def settings_cache_clear() -> None:
    global _settings
    _settings = None


def tenant_window(tenant_id: int) -> TenantWindow:
    """The tenant's narrowing from the process cache (every tenant's rows in one query, then memory)."""
    global _settings
    cached = _settings
    if cached is None or time.monotonic() - cached[0] > settings.COMPLIANCE_CACHE_SECONDS:
        with _lock:
            # unscoped: every tenant's quiet-hours setting, loaded at once for the accept pipeline's check
            rows = QuietHoursSetting.unscoped.all()
            cached = _settings = (time.monotonic(), {row.tenant_id: window_of(row) for row in rows})
    return cached[1].get(tenant_id, NO_SETTING)


def window_of(row: QuietHoursSetting) -> TenantWindow:
    return TenantWindow(start=row.window_start, end=row.window_end, days_off=frozenset(row.days_off or ()),
                        apply_to_transactional=row.apply_to_transactional)


# --- the window -------------------------------------------------------------------------------------------


def applies(message_type: str, window: TenantWindow) -> bool:
    """Marketing always; transactional when the tenant asked; OTP never (a code that waits is no code)."""
    return message_type == MARKETING or (message_type == TRANSACTIONAL and window.apply_to_transactional)


def day_window(day: date, preset: Preset | None, window: TenantWindow) -> tuple[clock, clock] | None:
    """The allowed local (start, end) of `day`, or None: the legal one narrowed by the tenant's."""
    start, end = clock(0, 0), None  # None: until midnight
    if preset is not None:
        legal = preset.days[day.weekday()]
        if legal is None or (preset.holidays and day in _holidays(preset.country, day.year)):
            return None
        start, end = legal
    if day.isoweekday() in window.days_off:
        return None
    if window.start is not None:
        start = max(start, window.start)
        end = window.end if end is None else min(end, window.end)
    end = end or clock.max
    return (start, end) if start < end else None


def _next_in_zone(moment: datetime, zone: ZoneInfo, preset: Preset | None, window: TenantWindow) -> datetime:
    """The first moment at or after `moment` inside the window in `zone`."""
    local_day = moment.astimezone(zone).date()
    for offset in range(LOOKAHEAD_DAYS):
        day = local_day + timedelta(days=offset)
        allowed = day_window(day, preset, window)
        if allowed is None:
            continue
        start, end = (datetime.combine(day, edge, tzinfo=zone) for edge in allowed)
        if moment < end:
            return max(moment, start)
    return moment  # no window in two weeks: a setting that allows nothing does not hold messages forever


def next_allowed(*, moment: datetime, country: str | None, zones: tuple[str, ...], window: TenantWindow) -> datetime | None:
    """When a message meant for `moment` may go: None when `moment` itself is allowed, else the start of the
    next window (aware, UTC). With several zones, the first moment allowed in all of them (most restrictive)."""
    preset = presets().get(country or "")
    if preset is None and window.start is None and not window.days_off:
        return None
    try:
        infos = [ZoneInfo(name) for name in zones]
    except (ZoneInfoNotFoundError, ValueError):
        return None
    if not infos:
        return None
    candidate = moment
    for _ in range(3 * len(infos)):
        later = max(_next_in_zone(candidate, info, preset, window) for info in infos)
        if later == candidate:
            break
        candidate = later
    return None if candidate == moment else candidate.astimezone(ZoneInfo("UTC"))


def message_deferral(*, tenant_id: int, to: str, message_type: str, moment: datetime,
                     timezone_name: str = "") -> datetime | None:
    """When the message `to` of `message_type`, meant for `moment`, may go: None (now is fine), or the UTC start
    of the recipient's next allowed window. `timezone_name` (validated by the caller) overrides the number's."""
    window = tenant_window(tenant_id)
    if not applies(message_type, window):
        return None
    country, zones = number_place(to)
    if timezone_name:
        zones = (timezone_name,)
    return next_allowed(moment=moment, country=country, zones=zones, window=window)
