"""Inventory input and output: CSV import and export of numbers, and generating valid demo numbers."""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from numbers.models import Capability, NumberType, PhoneNumber
from numbers.services import phone_number_upsert

import phonenumbers
from django.db import transaction

from accounts.services.audit import SYSTEM, Actor
from smsportal.errors import DomainError

CSV_COLUMNS = ["number", "country", "type", "capabilities", "carrier", "monthly_cost", "monthly_price"]
SHORT_CODE = re.compile(r"^\d{3,8}$")
_PN_TYPES = {
    NumberType.MOBILE: phonenumbers.PhoneNumberType.MOBILE,
    NumberType.LOCAL: phonenumbers.PhoneNumberType.FIXED_LINE,
    NumberType.TOLL_FREE: phonenumbers.PhoneNumberType.TOLL_FREE,
}


def number_row_parse(row: dict[str, str]) -> dict:
    """Validates one CSV row and returns the keyword arguments of services.phone_number_upsert.

    Raises DomainError naming the field. A short code is kept as its digits (it has no E.164 form)."""
    country = (row.get("country") or "").strip().upper()
    type_ = (row.get("type") or "").strip()
    if type_ not in NumberType.values:
        raise DomainError(f"type must be one of {', '.join(NumberType.values)}", field="type")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise DomainError("country must be an ISO 3166-1 alpha-2 code such as GB", field="country")
    capabilities = [c.strip().lower() for c in (row.get("capabilities") or "").split("|") if c.strip()]
    if not capabilities or any(c not in Capability.values for c in capabilities):
        raise DomainError("capabilities must be sms, mms and/or voice separated by |", field="capabilities")
    return {
        "number": _number(row.get("number") or "", country, type_),
        "country": country,
        "type": type_,
        "capabilities": sorted(set(capabilities), key=Capability.values.index),
        "carrier": (row.get("carrier") or "").strip() or "simulator",
        "monthly_cost": _money(row.get("monthly_cost"), "monthly_cost"),
        "monthly_price": _money(row.get("monthly_price"), "monthly_price"),
    }


def _number(raw: str, country: str, type_: str) -> str:
    raw = raw.strip()
    if type_ == NumberType.SHORT_CODE:
        if not SHORT_CODE.match(raw):
            raise DomainError("a short code is 3 to 8 digits", field="number")
        return raw
    try:
        parsed = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException:
        raise DomainError(f"not a phone number: {raw!r}", field="number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise DomainError(f"not a valid number: {raw!r}", field="number")
    if phonenumbers.region_code_for_number(parsed) != country:
        raise DomainError(f"{raw} is not a number of {country}", field="number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _money(raw: str | None, field: str) -> Decimal:
    try:
        value = Decimal((raw or "0").strip())
    except InvalidOperation:
        raise DomainError(f"{field} must be a decimal amount such as 1.2500", field=field) from None
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.0001")) or value >= 10**8:
        raise DomainError(f"{field} must be between 0 and 99999999.9999 with at most 4 decimals", field=field)
    return value


def demo_numbers(country: str, type_: str, count: int, *, start: int = 0) -> Iterator[str]:
    """`count` valid E.164 numbers of `country` and `type_`, the same every time (for seed_demo).

    Starts from phonenumbers' example number and varies its last three digits from `start`."""
    example = phonenumbers.example_number_for_type(country, _PN_TYPES[type_])
    base = example.national_number - example.national_number % 1000
    found = 0
    for last in range(start, 1000):
        candidate = phonenumbers.PhoneNumber(country_code=example.country_code, national_number=base + last,
                                             italian_leading_zero=example.italian_leading_zero)
        if phonenumbers.is_valid_number(candidate) and phonenumbers.region_code_for_number(candidate) == country:
            yield phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
            found += 1
            if found == count:
                return


# seed_demo's stock for the carrier simulator: (country, type, count, start, capabilities, cost, price).
# US mobile and local example numbers are the same NANP block, hence the different start.
DEMO_STOCK = [
    *[(country, NumberType.MOBILE, 55, 0, ["sms", "voice"], "0.5000", "1.0000")
      for country in ("US", "GB", "DE", "FR", "CN", "IN", "BR")],
    *[(country, NumberType.LOCAL, 5, 500, ["sms", "voice"], "0.4000", "0.8000") for country in ("US", "GB", "DE", "FR")],
    *[(country, NumberType.TOLL_FREE, 3, 0, ["sms", "voice"], "1.5000", "3.0000") for country in ("US", "GB")],
]
DEMO_SHORT_CODE = {"number": "72345", "country": "US", "type": NumberType.SHORT_CODE, "capabilities": ["sms", "mms"],
                   "carrier": "simulator", "monthly_cost": Decimal("500.0000"), "monthly_price": Decimal("1000.0000")}


def demo_stock() -> Iterator[dict]:
    """The keyword arguments of services.phone_number_upsert for every demo number."""
    for country, type_, count, start, capabilities, cost, price in DEMO_STOCK:
        for number in demo_numbers(country, type_, count, start=start):
            yield {"number": number, "country": country, "type": type_, "capabilities": capabilities,
                   "carrier": "simulator", "monthly_cost": Decimal(cost), "monthly_price": Decimal(price)}
    yield DEMO_SHORT_CODE


# --- CSV import and export (import_numbers and the admin) ------------------------------------------

# The export adds these for information; the import ignores them (status and holder change only
# through the services, never from a file).
EXPORT_COLUMNS = [*CSV_COLUMNS, "status", "holder"]
MAX_IMPORT_ROWS = 10_000
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# What the number column may hold without escaping: a validated E.164 number or short code, which a
# spreadsheet reads as a plain number at worst (no function call, no reference).
_SAFE_NUMBER = re.compile(r"^(\+[1-9]\d{1,14}|\d{3,8})$")
_DESCRIPTION = ["country", "type", "capabilities", "carrier", "monthly_cost", "monthly_price"]


@dataclass
class ImportResult:
    """The outcome of one import: counts, or the errors (line, field, message) that stopped it."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


def csv_rows_read(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line, row) for each data row of CSV `text`; header names are trimmed and lower-cased.

    Raises DomainError (field "header") when a column of CSV_COLUMNS is missing."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        reader.fieldnames = [(name or "").strip().lower() for name in reader.fieldnames or []]
        rows = [(reader.line_num, row) for row in reader]
    except csv.Error as error:
        raise DomainError(f"not a readable CSV file: {error}", field="file") from None
    missing = [column for column in CSV_COLUMNS if column not in reader.fieldnames]
    if missing:
        raise DomainError(f"the header lacks the column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}",
                          field="header")
    return rows


def inventory_import(*, text: str, actor: Actor = SYSTEM) -> ImportResult:
    """Imports CSV `text` all or nothing: every row is checked first, and one bad row (or more than
    MAX_IMPORT_ROWS) imports nothing and returns the errors by line. Otherwise one transaction adds
    new numbers and updates the descriptions that changed through services.phone_number_upsert
    (never status or holder); re-importing the same file changes nothing."""
    result = ImportResult()
    try:
        rows = csv_rows_read(text)
    except DomainError as error:
        result.errors.append((1, error.field or "file", error.message))
        return result
    if len(rows) > MAX_IMPORT_ROWS:
        result.errors.append((1, "file", f"more than {MAX_IMPORT_ROWS} rows; split the file or use import_numbers"))
        return result
    parsed = _rows_parse(rows, result.errors)
    if result.errors:
        return result
    with transaction.atomic():
        existing = _existing(list(parsed))
        for number, fields in parsed.items():
            before = existing.get(number)
            if before is not None and all(getattr(before, name) == fields[name] for name in _DESCRIPTION):
                result.unchanged += 1
                continue
            _number, created = phone_number_upsert(actor=actor, **fields)
            if created:
                result.created += 1
            else:
                result.updated += 1
    return result


def _rows_parse(rows: list[tuple[int, dict[str, str]]], errors: list) -> dict[str, dict]:
    """number -> upsert arguments; a bad row or a number given twice adds to `errors`."""
    parsed: dict[str, dict] = {}
    lines: dict[str, int] = {}
    for line, row in rows:
        try:
            fields = number_row_parse({key: csv_unescape(value) for key, value in row.items() if key})
        except DomainError as error:
            errors.append((line, error.field or "", error.message))
            continue
        if fields["number"] in lines:
            errors.append((line, "number", f"{fields['number']} is also on line {lines[fields['number']]}"))
            continue
        lines[fields["number"]] = line
        parsed[fields["number"]] = fields
    return parsed


def _existing(numbers: list[str]) -> dict[str, PhoneNumber]:
    found: dict[str, PhoneNumber] = {}
    for start in range(0, len(numbers), 500):  # stay under SQLite's bound-parameter limit
        found.update((n.number, n) for n in PhoneNumber.objects.filter(number__in=numbers[start:start + 500]))
    return found


def csv_escape(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading apostrophe before a formula character."""
    return f"'{value}" if value.startswith(FORMULA_START) else value


def csv_unescape(value: str | None) -> str | None:
    """Undoes csv_escape, so an exported file imports back unchanged."""
    if value and value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def inventory_export_row(number: PhoneNumber) -> list[str]:
    """One CSV row of EXPORT_COLUMNS, in the format the import reads back.

    Every cell is escaped against formula injection except a number column holding a validated
    E.164 number or short code, so "+14155550123" stays as it is (escaped, it would import back too)."""
    raw = number.number if _SAFE_NUMBER.match(number.number) else csv_escape(number.number)
    cells = [number.country, number.type, "|".join(number.capabilities or []), number.carrier,
             f"{number.monthly_cost:f}", f"{number.monthly_price:f}", number.status,
             number.holder.slug if number.holder_id else ""]
    return [raw, *(csv_escape(str(cell)) for cell in cells)]
