"""The savings calculator: what a customer's traffic costs with us against contracting the operators directly.

Our side is the tenant's price list over the default one (the public page: the default list), a country's own
price rows at the volume's tier (billing.rating.country_rate); the direct side is the reference dataset of
operator list prices (DirectPrice, billing/data/direct_prices.csv). A volume is SMS (segments) a month. A
country that either side does not price, or prices in another currency, is listed as not comparable and left
out of the totals: never an error. Input errors are 422 `SavingsInvalid` with a stable code and the field.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from billing import hooks, rating
from billing.errors import SavingsInvalid
from billing.models import DirectPrice, PriceMessageType
from billing.selectors import balance_get

if TYPE_CHECKING:
    from accounts.models import Tenant

MESSAGE_TYPES = ("otp", "transactional", "marketing")
DEFAULT_MESSAGE_TYPE = "transactional"
MAX_VOLUME = 1_000_000_000  # SMS a month in one country: far past any real tenant, short of overflowing a sum
MAX_COUNTRIES = 250
USAGE_DAYS = 30
DATA_FILE = Path(__file__).resolve().parent / "data" / "direct_prices.csv"
DIRECT_COLUMNS = ("country", "message_type", "price", "currency", "as_of", "source")
CENT = Decimal("0.1")


@dataclass
class SavingsLine:
    """One country (and message type) of an estimate; the figures are None where a side has no price."""

    country: str
    message_type: str
    volume: int
    our_unit: Decimal | None = None
    direct_unit: Decimal | None = None
    currency: str = ""
    reason: str = ""  # why it is not comparable; empty when it is

    @property
    def comparable(self) -> bool:
        return not self.reason

    @property
    def our_cost(self) -> Decimal | None:
        return None if self.our_unit is None else self.our_unit * self.volume

    @property
    def direct_cost(self) -> Decimal | None:
        return None if self.direct_unit is None else self.direct_unit * self.volume

    @property
    def saving(self) -> Decimal | None:
        return self.direct_cost - self.our_cost if self.comparable else None

    @property
    def saving_percent(self) -> Decimal | None:
        return percent(self.saving, self.direct_cost) if self.comparable else None


@dataclass
class SavingsEstimate:
    currency: str
    message_type: str | None  # None: the tenant's own mix of types (last 30 days)
    lines: list[SavingsLine] = field(default_factory=list)
    start: date | None = None  # the usage period, when the volumes are the tenant's last 30 days
    end: date | None = None

    @property
    def source(self) -> str:
        """`usage`: the tenant's last 30 days; `volumes`: the caller's figures."""
        return "usage" if self.start else "volumes"

    @property
    def comparable(self) -> list[SavingsLine]:
        return [line for line in self.lines if line.comparable]

    @property
    def not_comparable(self) -> list[SavingsLine]:
        return [line for line in self.lines if not line.comparable]

    @property
    def our_cost(self) -> Decimal:
        return sum((line.our_cost for line in self.comparable), Decimal(0))

    @property
    def direct_cost(self) -> Decimal:
        return sum((line.direct_cost for line in self.comparable), Decimal(0))

    @property
    def saving(self) -> Decimal:
        return self.direct_cost - self.our_cost

    @property
    def saving_percent(self) -> Decimal | None:
        return percent(self.saving, self.direct_cost)


def percent(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    """`part` of `whole` in percent with one place; None when there is no whole to compare with."""
    if part is None or not whole:
        return None
    return (part * 100 / whole).quantize(CENT)


# --- input ------------------------------------------------------------------------------------------


def savings_message_type_clean(value, *, allow_none: bool = True) -> str:
    """A message type of MESSAGE_TYPES; None (when allowed): the default. Raises SavingsInvalid."""
    if value is None and allow_none:
        return DEFAULT_MESSAGE_TYPE
    if not isinstance(value, str) or value not in MESSAGE_TYPES:
        raise SavingsInvalid("`message_type` must be otp, transactional or marketing.", field="message_type",
                             code="invalid_message_type")
    return value


def savings_volumes_clean(volumes) -> dict[str, int]:
    """{country: SMS a month} checked: known ISO 3166 alpha-2 codes (any case), whole numbers from 0 to
    MAX_VOLUME, 1 to MAX_COUNTRIES countries. Raises SavingsInvalid naming the first bad entry."""
    if not isinstance(volumes, dict) or not volumes:
        raise SavingsInvalid("`volumes` must be an object of country codes and SMS a month, e.g. "
                             '{"GB": 10000}.', field="volumes", code="invalid_volumes")
    if len(volumes) > MAX_COUNTRIES:
        raise SavingsInvalid(f"At most {MAX_COUNTRIES} countries.", field="volumes", code="too_many_countries")
    clean: dict[str, int] = {}
    for key, volume in volumes.items():
        country = key.upper() if isinstance(key, str) else ""
        if not (len(country) == 2 and country.isascii() and country.isalpha()
                and phonenumbers.country_code_for_region(country)):
            raise SavingsInvalid(f"{str(key)[:20]!r} is not a country code we know (ISO 3166 alpha-2, e.g. GB).",
                                 field=f"volumes.{str(key)[:20]}", code="invalid_country")
        if isinstance(volume, bool) or not isinstance(volume, int) or volume < 0:
            raise SavingsInvalid("A volume is a whole number of SMS, 0 or more.", field=f"volumes.{country}",
                                 code="invalid_volume")
        if volume > MAX_VOLUME:
            raise SavingsInvalid(f"A volume is at most {MAX_VOLUME:,} SMS a month.", field=f"volumes.{country}",
                                 code="volume_too_large")
        clean[country] = clean.get(country, 0) + volume
    return clean


# --- the estimate ------------------------------------------------------------------------------------


def savings_estimate(*, volumes: dict[str, int], message_type: str, tenant: Tenant | None = None) -> SavingsEstimate:
    """Our cost against the direct operators' for `volumes` (already clean: savings_volumes_clean) of one
    message type, priced by the tenant's list (None: the default list, as the public page shows), in the
    tenant's currency. Two queries at most (the direct prices; the balance's currency), plus the price
    cache's load when it is cold."""
    currency = _currency(tenant)
    estimate = SavingsEstimate(currency=currency, message_type=message_type)
    direct = _direct_prices()
    for country in sorted(volumes):
        estimate.lines.append(_line(tenant, country, message_type, volumes[country], currency, direct))
    return estimate


def savings_estimate_usage(*, tenant: Tenant, message_type: str | None = None,
                           today: date | None = None) -> SavingsEstimate:
    """The same for the tenant's billed traffic of the last 30 days (today included) by country and type
    (messaging's figures, through billing.hooks.message_usage), or of one type."""
    end = today or timezone.now().date()
    start = end - timedelta(days=USAGE_DAYS - 1)
    currency = _currency(tenant)
    estimate = SavingsEstimate(currency=currency, message_type=message_type, start=start, end=end)
    direct = _direct_prices()
    rows = hooks.message_usage(tenant=tenant, start=start, end=end)
    for row in sorted(rows, key=lambda r: (r["country"], r["message_type"])):
        if message_type and row["message_type"] != message_type or not row["country"]:
            continue
        estimate.lines.append(_line(tenant, row["country"], row["message_type"], row["segments"], currency, direct))
    return estimate


def _currency(tenant: Tenant | None) -> str:
    balance = balance_get(tenant=tenant) if tenant is not None else None
    return balance.currency if balance else settings.BILLING_DEFAULT_CURRENCY


def _line(tenant, country: str, message_type: str, volume: int, currency: str, direct: list[DirectPrice]) -> SavingsLine:
    line = SavingsLine(country=country, message_type=message_type, volume=volume, currency=currency)
    ours = rating.country_rate(tenant_id=tenant.pk if tenant else None, country=country, message_type=message_type,
                               currency=currency, volume=volume)
    theirs = _direct_best(direct, country=country, message_type=message_type)
    line.our_unit = ours.unit if ours else None
    line.direct_unit = theirs.price if theirs and theirs.currency == currency else None
    if ours is None and theirs is None:
        line.reason = "Neither we nor the reference dataset price this country."
    elif ours is None:
        line.reason = "We have no price for this country and message type."
    elif theirs is None:
        line.reason = "No direct operator reference price for this country."
    elif theirs.currency != currency:
        line.reason = f"The direct reference price is in {theirs.currency}, not {currency}."
    return line


def _direct_prices() -> list[DirectPrice]:
    return list(DirectPrice.objects.filter(as_of__lte=timezone.now().date()))


def _direct_best(rows: list[DirectPrice], *, country: str, message_type: str) -> DirectPrice | None:
    """A country's row for the type beats its row for any type; the latest `as_of` wins."""
    fits = [row for row in rows if row.country == country and row.message_type in ("", message_type)]
    return max(fits, key=lambda r: (r.message_type != "", r.as_of), default=None)


# --- the dataset ----------------------------------------------------------------------------------


@dataclass
class DirectPricesLoadResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


def direct_prices_load(*, text: str | None = None) -> DirectPricesLoadResult:
    """Upsert the direct price dataset (CSV with DIRECT_COLUMNS; lines starting with # are comments; default:
    billing/data/direct_prices.csv) by (country, message type, as_of): running it again changes nothing.
    Raises ValueError naming the first bad line, and then writes nothing."""
    rows = _direct_rows(DATA_FILE.read_text(encoding="utf-8") if text is None else text)
    result = DirectPricesLoadResult()
    with transaction.atomic():
        for key, values in rows:
            row, created = DirectPrice.objects.get_or_create(**key, defaults=values)
            if created:
                result.created += 1
            elif any(getattr(row, name) != value for name, value in values.items()):
                DirectPrice.objects.filter(pk=row.pk).update(**values, updated_at=timezone.now())
                result.updated += 1
            else:
                result.unchanged += 1
    return result


def _direct_rows(text: str) -> list[tuple[dict, dict]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    if tuple(reader.fieldnames or ()) != DIRECT_COLUMNS:
        raise ValueError(f"the header must be {','.join(DIRECT_COLUMNS)}")
    types = {choice.value for choice in PriceMessageType}
    rows = []
    for number, raw in enumerate(reader, start=2):
        country, kind = (raw["country"] or "").strip().upper(), (raw["message_type"] or "").strip()
        try:
            price = Decimal(raw["price"].strip())
        except (InvalidOperation, AttributeError):
            price = None
        as_of = parse_date((raw["as_of"] or "").strip())
        currency = (raw["currency"] or "").strip().upper()
        if (len(country) != 2 or not phonenumbers.country_code_for_region(country) or kind not in types
                or price is None or price <= 0 or as_of is None or len(currency) != 3 or not raw["source"]):
            raise ValueError(f"data line {number - 1} is not a valid direct price: {raw}")
        rows.append(({"country": country, "message_type": kind, "as_of": as_of},
                     {"price": price, "currency": currency, "source": raw["source"].strip()}))
    return rows
