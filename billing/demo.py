"""The default price lists seed_demo loads: per-segment prices for every country of the demo number stock, and a
few more; number prices (rental, lease) for every country and type of that stock.

Per-segment prices in EUR of the kind an aggregator lists (2025): the US and Canada at under a cent, the
UK a few cents, continental Europe several; India's OTP route is cheaper than its other traffic; a
volume tier from 100,000 segments a month where the traffic is large. As CSV, so it goes through the
same import as any price list (billing/prices.py).
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from billing.prices import COLUMNS
from billing.services import number_price_upsert

EFFECTIVE_FROM = "2025-01-01"
# country: (price for all types, {type: price}, tier price from 100,000 segments a month or None)
DEMO_PRICES: dict[str, tuple[str, dict[str, str], str | None]] = {
    "US": ("0.0079", {}, "0.0069"),
    "CA": ("0.0075", {}, None),
    "GB": ("0.0350", {"otp": "0.0320"}, "0.0310"),
    "DE": ("0.0750", {}, "0.0690"),
    "FR": ("0.0650", {}, "0.0600"),
    "CN": ("0.0400", {}, None),
    "IN": ("0.0055", {"otp": "0.0035"}, "0.0045"),
    "BR": ("0.0300", {}, "0.0270"),
    "NL": ("0.0800", {}, None),
    "ES": ("0.0600", {}, None),
    "IT": ("0.0700", {}, None),
    "AU": ("0.0380", {}, None),
    "JP": ("0.0650", {}, None),
    "MX": ("0.0280", {}, None),
}


def demo_prices_csv() -> str:
    lines = [",".join(COLUMNS)]
    for country, (base, by_type, tier) in DEMO_PRICES.items():
        lines.append(f",{country},,,{base},EUR,{EFFECTIVE_FROM},")
        lines += [f",{country},,{kind},{price},EUR,{EFFECTIVE_FROM}," for kind, price in by_type.items()]
        if tier:
            lines.append(f",{country},,,{tier},EUR,{EFFECTIVE_FROM},100000")
    return "\n".join(lines) + "\n"


# Number prices in EUR, (monthly rental, lease per hour), for the demo stock's countries and types
# (numbers/inventory.py DEMO_STOCK): a mobile or local number a euro or two a month in North America and western
# Europe, more where numbers are scarce or regulated (CN, IN, BR); toll-free a few euros; a US short code costs
# about a thousand a month. A lease (a verification code) a few cents an hour.
DEMO_NUMBER_PRICES: dict[tuple[str, str], tuple[str, str]] = {
    ("mobile", "US"): ("1.1500", "0.0500"), ("mobile", "GB"): ("1.2500", "0.0600"),
    ("mobile", "DE"): ("1.9000", "0.0800"), ("mobile", "FR"): ("1.9000", "0.0800"),
    ("mobile", "CN"): ("6.5000", "0.2500"), ("mobile", "IN"): ("3.2000", "0.1200"),
    ("mobile", "BR"): ("3.5000", "0.1400"),
    ("local", "US"): ("1.1500", "0.0500"), ("local", "GB"): ("1.1000", "0.0500"),
    ("local", "DE"): ("1.5000", "0.0700"), ("local", "FR"): ("1.5000", "0.0700"),
    ("toll_free", "US"): ("2.1500", "0.1000"), ("toll_free", "GB"): ("3.0000", "0.1200"),
    ("short_code", "US"): ("1000.0000", "5.0000"),
}


def demo_number_prices_load() -> int:
    """Upsert the default number prices above (in force from EFFECTIVE_FROM); returns how many were added."""
    effective = date.fromisoformat(EFFECTIVE_FROM)
    return sum(number_price_upsert(tenant=None, number_type=number_type, country=country, currency="EUR",
                                   monthly_rental=Decimal(rental), lease_per_hour=Decimal(lease),
                                   effective_from=effective)[1]
               for (number_type, country), (rental, lease) in DEMO_NUMBER_PRICES.items())
