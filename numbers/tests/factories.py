"""Stocking the inventory in tests."""
from __future__ import annotations

from decimal import Decimal
from numbers.inventory import demo_numbers
from numbers.models import NumberType, PhoneNumber
from numbers.services import phone_number_upsert


def stock(count: int, *, country: str = "US", type: str = NumberType.MOBILE, start: int = 0) -> list[PhoneNumber]:
    """`count` available, valid numbers of `country` and `type`."""
    return [
        phone_number_upsert(number=number, country=country, type=type, capabilities=["sms", "voice"],
                            carrier="simulator", monthly_cost=Decimal("0.5000"), monthly_price=Decimal("1.0000"))[0]
        for number in demo_numbers(country, type, count, start=start)
    ]
