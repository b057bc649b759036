"""The default price list seed_demo loads: every country of the demo number stock, and a few more.

Per-segment prices in EUR of the kind an aggregator lists (2025): the US and Canada at under a cent, the
UK a few cents, continental Europe several; India's OTP route is cheaper than its other traffic; a
volume tier from 100,000 segments a month where the traffic is large. As CSV, so it goes through the
same import as any price list (billing/prices.py).
"""
from __future__ import annotations

from billing.prices import COLUMNS

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
