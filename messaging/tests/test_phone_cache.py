"""The per-prefix E.164 cache (messaging/phone.py) answers exactly as phonenumbers does."""
from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS

from messaging import phone

CODES = sorted(COUNTRY_CODE_TO_REGION_CODE)


def _example_numbers() -> list[str]:
    """phonenumbers' own example of every number type of every region: valid numbers the world over."""
    numbers = []
    for region in sorted(SUPPORTED_REGIONS):
        for kind in (PhoneNumberType.FIXED_LINE, PhoneNumberType.MOBILE, PhoneNumberType.TOLL_FREE,
                     PhoneNumberType.PREMIUM_RATE, PhoneNumberType.VOIP, PhoneNumberType.SHARED_COST):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                numbers.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return numbers


EXAMPLES = _example_numbers()


@st.composite
def e164_like(draw) -> str:
    """A calling code phonenumbers knows, or a seen example's leading digits, then random digits:
    numbers that share prefixes (so the cache is hit) and fall on both sides of validity."""
    if draw(st.booleans()):
        head = draw(st.sampled_from(EXAMPLES))[: draw(st.integers(2, 9))]
    else:
        head = f"+{draw(st.sampled_from(CODES))}"
    tail = draw(st.text("0123456789", min_size=0, max_size=14))
    return (head + tail)[:18]


@pytest.fixture(autouse=True)
def empty_cache():
    phone._verdict.clear()
    phone._shift.clear()
    phone._region.clear()


def test_it_accepts_every_example_number_of_every_region_as_phonenumbers_does():
    assert len(EXAMPLES) > 800
    for _round in range(2):  # the first round fills the cache, the second answers from it
        for number in EXAMPLES:
            assert phone.phone_number_e164(number) == phone.phonenumbers_e164(number), number
    assert phone._verdict  # and the cache was used


def test_it_answers_neighbours_of_the_examples_as_phonenumbers_does():
    """Every example with its last digits changed, and one digit more or less: many cache hits,
    valid and invalid answers, across every calling code."""
    for number in EXAMPLES:
        for variant in (number[:-2] + "00", number[:-2] + "99", number[:-3] + "123", number + "5", number[:-1]):
            assert phone.phone_number_e164(variant) == phone.phonenumbers_e164(variant), variant


@settings(max_examples=3000, deadline=None)
@given(numbers=st.lists(e164_like(), min_size=1, max_size=20))
@example(numbers=["+14155550100", "+14155550199", "+442079460000", "+4402079460000", "+390612345678"])
def test_it_answers_e164_input_exactly_as_phonenumbers(numbers):
    for number in numbers:  # several per example, so later ones can hit what earlier ones cached
        assert phone.phone_number_e164(number) == phone.phonenumbers_e164(number), number


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=20), region=st.sampled_from([None, "US", "GB", "DE", "IN", "BR"]))
@example(value="(415) 555-0100", region="US")
@example(value="+1 415 555 0100", region=None)
def test_it_answers_any_other_input_as_phonenumbers(value, region):
    assert phone.phone_number_e164(value, region=region) == phone.phonenumbers_e164(value, region=region)


def test_it_bounds_the_horizon_of_plain_patterns():
    assert phone.pattern_horizon(r"[2-9]\d{9}") == 1
    assert phone.pattern_horizon(r"(?:3052|5056)\d{4}|8(?:00|33)[2-9]\d{6}") == 4
    assert phone.pattern_horizon(r"\d{2}7\d{4}") == 3
    assert phone.pattern_horizon(r"\d{1,2}5") == 3
    assert phone.pattern_horizon(r"\d+5") == phone.UNBOUNDED


def test_it_caches_a_nanp_number_for_its_neighbours():
    phone.phone_number_e164("+14155550100")
    assert len(phone._verdict) == 1
    phone.phone_number_e164("+14155550142")  # same leading digits up to the horizon
    assert len(phone._verdict) == 1


def test_its_region_of_every_example_number_is_phonenumbers_own():
    for _round in range(2):  # filled by the first round, answered from the cache by the second
        for number in EXAMPLES:
            assert phone.phone_number_region(number) == phone.phonenumbers_region(number), number
    assert phone._region
    assert phone.phone_number_region("+447781123456") == "GG"  # a Guernsey mobile shares +44 with GB
    assert phone.phone_number_region("+14165550123") == "CA"


@settings(max_examples=3000, deadline=None)
@given(e164_like())
def test_its_region_agrees_with_phonenumbers_whether_validated_first_or_not(value):
    """Valid or not ("" for an invalid number), asked before validation filled the cache or after."""
    expected = phone.phonenumbers_region(value)
    assert phone.phone_number_region(value) == expected
    phone.phone_number_e164(value)
    assert phone.phone_number_region(value) == expected
