"""Inventory input: parsing a CSV row of numbers, and generating valid demo numbers."""
from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from numbers.models import Capability, NumberType

import phonenumbers

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
