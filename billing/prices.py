"""Price lists as CSV: `manage.py prices_import FILE.csv [--numbers] [--tenant SLUG]` and the admin's import and
export, of message prices (Price) and, with `--numbers`, of number prices (NumberPrice).

Columns `prefix,country,operator,message_type,price,currency,effective_from,min_monthly_volume`; blank means
any (message type: all; effective_from: today; min_monthly_volume: 0), but a row names a prefix or a
country. The whole file is checked first: any bad line and nothing is written, with every bad line's
error. The import is idempotent: a row's key (list, prefix, country, operator, type, tier, date) is
upserted, so importing the same file again changes nothing.

Number prices: columns `number_type,country,monthly_rental,lease_per_hour,currency,effective_from` (the number
type as numbers names it: mobile, local, toll_free, short_code...; effective_from blank: today), upserted by
(list, type, country, currency, effective_from) with the same rules: checked whole first, idempotent.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from numbers.selectors import number_type_choices
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date

from billing import rating
from billing.models import NumberPrice, Price, PriceMessageType

if TYPE_CHECKING:
    from accounts.models import Tenant

COLUMNS = ("prefix", "country", "operator", "message_type", "price", "currency", "effective_from",
           "min_monthly_volume")
MAX_ROWS = 200_000
_TYPES = {choice.value for choice in PriceMessageType}


@dataclass
class PriceImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message): nothing was written


@dataclass(frozen=True)
class _Row:
    prefix: str
    country: str
    operator: str
    message_type: str
    price: Decimal
    currency: str
    effective_from: date
    min_monthly_volume: int

    def key(self) -> tuple:
        return (self.prefix, self.country, self.operator, self.message_type, self.min_monthly_volume,
                self.effective_from)


def prices_parse(text: str) -> tuple[list[_Row], list[tuple[int, str]]]:
    """The rows of a price CSV and the errors of its bad lines, by line number (the header is line 1)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None or [name.strip().lower() for name in reader.fieldnames] != list(COLUMNS):
        return [], [(1, f"the header must be {','.join(COLUMNS)}")]
    rows, errors, seen = [], [], {}
    for line, record in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            errors.append((line, f"a price list holds at most {MAX_ROWS} rows"))
            break
        values = {k.strip().lower(): (v or "").strip() for k, v in record.items() if k is not None}
        try:
            row = _row(values)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        if row.key() in seen:
            errors.append((line, f"the same price as line {seen[row.key()]}"))
            continue
        seen[row.key()] = line
        rows.append(row)
    return rows, errors


def _row(record: dict[str, str]) -> _Row:
    prefix = record["prefix"].removeprefix("+")
    if prefix and (not prefix.isdigit() or len(prefix) > 15):
        raise ValueError(f"prefix {record['prefix']!r} must be the digits an E.164 number starts with")
    country = record["country"].upper()
    if country and (len(country) != 2 or not country.isalpha()):
        raise ValueError(f"country {record['country']!r} must be an ISO 3166 alpha-2 code, or blank")
    if not prefix and not country:
        raise ValueError("give a prefix or a country")
    operator = record["operator"].replace("-", "").replace("/", "")
    if operator and (not operator.isdigit() or len(operator) not in (5, 6)):
        raise ValueError(f"operator {record['operator']!r} must be an MCC/MNC such as 23415, or blank")
    message_type = record["message_type"].lower()
    if message_type in ("all", "any", "*"):
        message_type = ""
    if message_type not in _TYPES:
        raise ValueError(f"message_type {record['message_type']!r} must be otp, transactional, marketing or blank")
    try:
        price = Decimal(record["price"])
    except InvalidOperation:
        raise ValueError(f"price {record['price']!r} is not a decimal number") from None
    if not price.is_finite() or price < 0 or price.as_tuple().exponent < -6 or price >= 10**12:
        raise ValueError(f"price {record['price']!r} must be 0 or more, with at most 6 decimal places")
    currency = record["currency"].upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {record['currency']!r} must be a 3-letter code")
    effective_from = parse_date(record["effective_from"]) if record["effective_from"] else timezone.now().date()
    if effective_from is None:
        raise ValueError(f"effective_from {record['effective_from']!r} is not a date such as 2027-01-01")
    volume = record["min_monthly_volume"] or "0"
    if not volume.isdigit():
        raise ValueError(f"min_monthly_volume {record['min_monthly_volume']!r} must be a whole number, or blank")
    return _Row(prefix, country, operator, message_type, price, currency, effective_from, int(volume))


def prices_import(*, tenant: Tenant | None, text: str) -> PriceImportResult:
    """Upsert the CSV's prices into the tenant's list (None: the default list), in one transaction.

    With any bad line nothing is written and `errors` lists them all."""
    rows, errors = prices_parse(text)
    if errors:
        return PriceImportResult(errors=errors)
    result = _list_upsert(Price, tenant=tenant, rows=rows, key_of=_key, values=("price", "currency"))
    transaction.on_commit(rating.price_cache_clear)
    return result


def _list_upsert(model, *, tenant: Tenant | None, rows, key_of, values: tuple[str, ...]) -> PriceImportResult:
    """Upsert parsed `rows` into one list of `model` (Price, NumberPrice), matched by `key_of(row) == row.key()`: a
    new key is created with every field of its row, a known one gets its `values` fields if they differ."""
    result = PriceImportResult()
    with transaction.atomic():
        # unscoped: the import writes one list (a tenant's or the default, which has no tenant) for staff
        prices = model.unscoped.select_for_update()
        prices = prices.filter(tenant=tenant) if tenant else prices.filter(tenant__isnull=True)
        existing = {key_of(price): price for price in prices}
        for row in rows:
            price = existing.get(row.key())
            if price is None:
                model.unscoped.create(tenant=tenant, **{f.name: getattr(row, f.name) for f in fields(row)})
                result.created += 1
            elif any(getattr(price, name) != getattr(row, name) for name in values):
                for name in values:
                    setattr(price, name, getattr(row, name))
                price.save(update_fields=[*values, "updated_at"])
                result.updated += 1
            else:
                result.unchanged += 1
    return result


def _key(price: Price) -> tuple:
    return (price.prefix, price.country, price.operator, price.message_type, price.min_monthly_volume,
            price.effective_from)


def prices_csv(prices: Iterable[Price]) -> str:
    """The prices as the import reads them (an export imports back unchanged)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for price in prices:
        writer.writerow([price.prefix, price.country, price.operator, price.message_type, price.price,
                         price.currency, price.effective_from.isoformat(), price.min_monthly_volume or ""])
    return out.getvalue()


# --- number prices ---------------------------------------------------------------------------------------------

NUMBER_COLUMNS = ("number_type", "country", "monthly_rental", "lease_per_hour", "currency", "effective_from")


@dataclass(frozen=True)
class _NumberRow:
    number_type: str
    country: str
    monthly_rental: Decimal
    lease_per_hour: Decimal
    currency: str
    effective_from: date

    def key(self) -> tuple:
        return (self.number_type, self.country, self.currency, self.effective_from)


def number_prices_parse(text: str) -> tuple[list[_NumberRow], list[tuple[int, str]]]:
    """The rows of a number price CSV and the errors of its bad lines, by line number (the header is line 1)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if reader.fieldnames is None or [name.strip().lower() for name in reader.fieldnames] != list(NUMBER_COLUMNS):
        return [], [(1, f"the header must be {','.join(NUMBER_COLUMNS)}")]
    rows, errors, seen = [], [], {}
    types = {value for value, _ in number_type_choices()}
    for line, record in enumerate(reader, start=2):
        if line - 1 > MAX_ROWS:
            errors.append((line, f"a price list holds at most {MAX_ROWS} rows"))
            break
        values = {k.strip().lower(): (v or "").strip() for k, v in record.items() if k is not None}
        try:
            row = _number_row(values, types=types)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        if row.key() in seen:
            errors.append((line, f"the same number price as line {seen[row.key()]}"))
            continue
        seen[row.key()] = line
        rows.append(row)
    return rows, errors


def _money(record: dict[str, str], name: str) -> Decimal:
    try:
        value = Decimal(record[name])
    except InvalidOperation:
        raise ValueError(f"{name} {record[name]!r} is not a decimal number") from None
    if not value.is_finite() or value < 0 or value.as_tuple().exponent < -6 or value >= 10**12:
        raise ValueError(f"{name} {record[name]!r} must be 0 or more, with at most 6 decimal places")
    return value


def _number_row(record: dict[str, str], *, types: set[str]) -> _NumberRow:
    number_type = record["number_type"].lower()
    if number_type not in types:
        raise ValueError(f"number_type {record['number_type']!r} must be one of {', '.join(sorted(types))}")
    country = record["country"].upper()
    if len(country) != 2 or not country.isalpha():
        raise ValueError(f"country {record['country']!r} must be an ISO 3166 alpha-2 code")
    monthly_rental, lease_per_hour = _money(record, "monthly_rental"), _money(record, "lease_per_hour")
    currency = record["currency"].upper()
    if len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency {record['currency']!r} must be a 3-letter code")
    effective_from = parse_date(record["effective_from"]) if record["effective_from"] else timezone.now().date()
    if effective_from is None:
        raise ValueError(f"effective_from {record['effective_from']!r} is not a date such as 2027-01-01")
    return _NumberRow(number_type, country, monthly_rental, lease_per_hour, currency, effective_from)


def number_prices_import(*, tenant: Tenant | None, text: str) -> PriceImportResult:
    """Upsert the CSV's number prices into the tenant's list (None: the default list), in one transaction.

    With any bad line nothing is written and `errors` lists them all."""
    rows, errors = number_prices_parse(text)
    if errors:
        return PriceImportResult(errors=errors)
    return _list_upsert(NumberPrice, tenant=tenant, rows=rows, values=("monthly_rental", "lease_per_hour"),
                        key_of=lambda p: (p.number_type, p.country, p.currency, p.effective_from))


def number_prices_csv(prices: Iterable[NumberPrice]) -> str:
    """The number prices as the import reads them (an export imports back unchanged)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(NUMBER_COLUMNS)
    for price in prices:
        writer.writerow([price.number_type, price.country, price.monthly_rental, price.lease_per_hour,
                         price.currency, price.effective_from.isoformat()])
    return out.getvalue()
