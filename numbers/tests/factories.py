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


def shared_senders(*countries: str, start: int = 900) -> dict[str, str]:
    """One platform shared sender number (available, SMS) per country, by country: what an alphanumeric sender
    to a country that takes none (US, CA) is replaced with (messaging/accept/policies/senders.py). Clears the
    policy's process cache and loads it again, so the numbers are seen at once and a send's statement count is
    what it is with a warm cache (the root conftest clears it after each test)."""
    from numbers.models import PhoneNumber

    from messaging.accept.policies import senders

    made = {}
    for country in countries or ("US", "CA"):
        (number,) = stock(1, country=country, start=start)
        PhoneNumber.objects.filter(pk=number.pk).update(shared_sender=True)
        made[country] = number.number
    senders.shared_senders_cache_clear()
    senders.shared_senders()
    return made
