"""Rating: the per-segment price of a message at accept, from the price lists held in process memory.

Prices count only in the tenant's currency (its balance's): there is no conversion.

The single send is one SQL statement (docs/send-pipeline.md), so rating asks the database nothing on the
hot path: each process loads every price list at once and keeps it BILLING_PRICE_CACHE_SECONDS; a price
changed in this process (admin, import) clears it at once (billing/signals.py), another process sees it
within that time. A tenant's own list overrides the default list for every destination it prices.
Within a list: the longest prefix that has a price wins, then the country; among the rows of that
destination, a price for the message's own type beats one for all types, a higher volume tier in reach
beats a lower one, and the latest `effective_from` on or before today wins.

Operator (MCC/MNC) prices: a message's operator is not known at accept (routing looks it up when it sends), so
accept rates only rows without an operator, and a capture reprices (services.capture_charges): within a list, a
row for the message's operator beats the list's rows for any operator, by the same rules (the tenant's list
first).
"""
from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import phonenumbers
from django.conf import settings
from django.utils import timezone

from billing.errors import NoPriceForDestination
from billing.models import Balance, MonthlyVolume, Price


@dataclass(frozen=True)
class Rate:
    """The unit price in force for a destination and type, and the price row it came from."""

    unit: Decimal
    currency: str
    price_id: int


@dataclass
class _List:
    """One price list, indexed by destination: {prefix digits: rows}, {country: rows}; its rows that name an
    operator apart, one such index per operator (MCC/MNC digits)."""

    prefixes: dict[str, list[Price]] = field(default_factory=dict)
    countries: dict[str, list[Price]] = field(default_factory=dict)
    longest: int = 0
    operators: dict[str, _List] = field(default_factory=dict)

    def add(self, row: Price) -> None:
        if row.prefix:
            self.prefixes.setdefault(row.prefix, []).append(row)
            self.longest = max(self.longest, len(row.prefix))
        else:
            self.countries.setdefault(row.country, []).append(row)


@dataclass
class _Cache:
    lists: dict[int | None, _List]
    currencies: dict[int, str]  # each tenant's balance currency
    loaded: float
    month: date | None = None  # the month (first day, UTC) of `volumes`
    volumes: dict[tuple[int, str], int] = field(default_factory=dict)  # (tenant, country): segments this month
    operators: bool = False  # some list has a price for an operator (MCC/MNC): captures look operators up


_cache: _Cache | None = None
_lock = threading.Lock()


def price_cache_clear() -> None:
    global _cache
    _cache = None


def _load() -> _Cache:
    lists: dict[int | None, _List] = {}
    # unscoped: every tenant's price list and the default one, loaded once per process for rating at accept
    for row in Price.unscoped.order_by("pk"):
        prices = lists.setdefault(row.tenant_id, _List())
        if row.operator:
            prices.operators.setdefault(operator_digits(row.operator), _List()).add(row)
        else:
            prices.add(row)
    # unscoped: every tenant's currency, with the price lists, so rating reads nothing per message
    currencies = dict(Balance.unscoped.values_list("tenant_id", "currency"))
    month = timezone.now().date().replace(day=1)
    # unscoped: every tenant's volume this month, for volume tiers, with the price lists
    volumes = {(tenant_id, country): segments for tenant_id, country, segments in
               MonthlyVolume.unscoped.filter(month=month).values_list("tenant_id", "country", "segments")}
    return _Cache(lists=lists, currencies=currencies, loaded=time.monotonic(), month=month, volumes=volumes,
                  operators=any(prices.operators for prices in lists.values()))


def _cached() -> _Cache:
    global _cache
    cache, now = _cache, time.monotonic()
    if _stale(cache, now):
        with _lock:
            cache = _cache
            if _stale(cache, now):
                cache = _cache = _load()
    return cache


def _stale(cache: _Cache | None, now: float) -> bool:
    """Older than BILLING_PRICE_CACHE_SECONDS, or of last month (a new month's volumes start at 0)."""
    return (cache is None or now - cache.loaded >= settings.BILLING_PRICE_CACHE_SECONDS
            or cache.month != timezone.now().date().replace(day=1))


@functools.lru_cache(maxsize=100_000)
def number_countries(to: str) -> tuple[str, ...]:
    """The ISO countries whose prices may apply to an E.164 number, the closest first: the number's own region,
    then the main region of its country code. +44 7911 … is Guernsey's (GG) and +1 … may be Canada's: a price
    list that names only GB or US prices them so; an invalid number has only the main region. () when
    phonenumbers cannot parse it."""
    try:
        number = phonenumbers.parse(to)
    except phonenumbers.NumberParseException:
        return ()
    found = [phonenumbers.region_code_for_number(number), phonenumbers.region_code_for_country_code(number.country_code)]
    return tuple(dict.fromkeys(c for c in found if c and c != "ZZ"))


def _best(rows: list[Price], *, message_type: str, volume: int, today: date, currency: str) -> Price | None:
    fits = [row for row in rows if row.message_type in ("", message_type) and row.effective_from <= today
            and row.min_monthly_volume <= volume and row.currency == currency]
    return max(fits, key=lambda r: (r.message_type != "", r.min_monthly_volume, r.effective_from), default=None)


def _in_list(prices: _List, *, to: str, message_type: str, volume: int, today: date, currency: str) -> Price | None:
    digits = to.removeprefix("+")
    for length in range(min(len(digits), prices.longest), 0, -1):
        rows = prices.prefixes.get(digits[:length])
        best = rows and _best(rows, message_type=message_type, volume=volume, today=today, currency=currency)
        if best:
            return best
    for country in number_countries(to):
        rows = prices.countries.get(country)
        best = rows and _best(rows, message_type=message_type, volume=volume, today=today, currency=currency)
        if best:
            return best
    return None


def destination_country(to: str) -> str:
    """The country a message to `to` counts in for volume tiers: the number's own region ("" if none)."""
    countries = number_countries(to)
    return countries[0] if countries else ""


def month_volume(*, tenant_id: int, country: str) -> int:
    """The tenant's segments to `country` captured this month, as of the cache's last load (at most
    BILLING_PRICE_CACHE_SECONDS old): a tier takes over within that time of being reached."""
    return _cached().volumes.get((tenant_id, country), 0)


def message_rate(*, tenant_id: int, to: str, message_type: str, currency: str | None = None,
                 volume: int | None = None) -> Rate:
    """The unit price of a message to `to` (E.164) of `message_type` for the tenant: its own list, else the
    default. Only prices in `currency` count (default: the tenant's balance currency, else
    BILLING_DEFAULT_CURRENCY); `volume`: the segments of the month so far that volume tiers go by (default: the
    tenant's to that destination's country, month_volume). Raises NoPriceForDestination."""
    cache, today = _cached(), timezone.now().date()
    lists = cache.lists
    if volume is None:
        volume = cache.volumes.get((tenant_id, destination_country(to)), 0)
    currency = currency or cache.currencies.get(tenant_id, settings.BILLING_DEFAULT_CURRENCY)
    for key in (tenant_id, None):
        prices = lists.get(key)
        row = prices and _in_list(prices, to=to, message_type=message_type, volume=volume, today=today,
                                  currency=currency)
        if row:
            return Rate(unit=row.price, currency=row.currency, price_id=row.pk)
    raise NoPriceForDestination(field="to")


def country_rate(*, tenant_id: int | None, country: str, message_type: str, currency: str | None = None,
                 volume: int = 0) -> Rate | None:
    """The unit price of a message to `country` (ISO alpha-2) for the tenant (None: the default list only), as
    the savings calculator compares it: the country's own price rows only (a prefix priced apart inside the
    country is not counted), `volume` segments a month choosing the tier. None when no list prices it."""
    cache, today = _cached(), timezone.now().date()
    currency = currency or cache.currencies.get(tenant_id, settings.BILLING_DEFAULT_CURRENCY)
    for key in dict.fromkeys((tenant_id, None)):
        prices = cache.lists.get(key)
        rows = prices and prices.countries.get(country)
        row = rows and _best(rows, message_type=message_type, volume=volume, today=today, currency=currency)
        if row:
            return Rate(unit=row.price, currency=row.currency, price_id=row.pk)
    return None


def operator_digits(text: str) -> str:
    """An operator as its MCC and MNC digits ("234-15", "234/15", "23415" -> "23415"); "" for none."""
    return "".join(ch for ch in (text or "") if ch.isdigit())


def operator_prices_exist() -> bool:
    """Whether any price list has a row for an operator (a capture then looks its messages' operators up)."""
    return _cached().operators


def operator_rate(*, tenant_id: int, to: str, message_type: str, operator: str, currency: str,
                  volume: int | None = None) -> Rate | None:
    """The unit price of a message to `to` carried by `operator` (MCC/MNC) when an operator's row prices it: the
    tenant's list first, and within a list the operator's row before the list's rows for any operator (so the
    tenant's own price for the destination beats the default list's operator price). None: no operator row
    applies (the accept's price stands)."""
    digits = operator_digits(operator)
    if not digits:
        return None
    cache, today = _cached(), timezone.now().date()
    if volume is None:
        volume = cache.volumes.get((tenant_id, destination_country(to)), 0)
    for key in (tenant_id, None):
        prices = cache.lists.get(key)
        if not prices:
            continue
        own = prices.operators.get(digits)
        row = own and _in_list(own, to=to, message_type=message_type, volume=volume, today=today, currency=currency)
        if row:
            return Rate(unit=row.price, currency=row.currency, price_id=row.pk)
        if _in_list(prices, to=to, message_type=message_type, volume=volume, today=today, currency=currency):
            return None  # this list prices the destination for any operator: that price stands
    return None
