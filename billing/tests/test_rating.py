"""Price lists and rating at accept: longest prefix, country, tenant override, type, date, tiers; the API's price."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from numbers.tests.factories import shared_senders

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.tests.api_assertions import assert_error
from billing import rating
from billing.errors import NoPriceForDestination
from billing.models import Price
from messaging.models import Message

pytestmark = pytest.mark.django_db

SEND, QUOTE = "/v1/messages", "/v1/messages/quote"
US, GB = "+14155550100", "+447400123456"
PAST = date(2025, 1, 1)


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


def _price(price: str, *, tenant=None, prefix="", country="", message_type="", effective_from=PAST, volume=0,
           currency="EUR") -> Price:
    return Price.unscoped.create(tenant=tenant, prefix=prefix, country=country, message_type=message_type,
                                 price=Decimal(price), currency=currency, effective_from=effective_from,
                                 min_monthly_volume=volume)


def _rate(tenant, to=US, message_type="transactional", **kwargs) -> Decimal:
    return rating.message_rate(tenant_id=tenant.pk, to=to, message_type=message_type, **kwargs).unit


def test_the_longest_prefix_wins_then_the_country(billed):
    _price("0.0100", country="US")
    _price("0.0090", prefix="1")
    _price("0.0080", prefix="1415")
    # then +1415... takes the 4-digit prefix, +1212... the 1-digit one; a GB number its country's row
    _price("0.0300", country="GB")
    assert _rate(billed.a.tenant) == Decimal("0.0080")
    assert _rate(billed.a.tenant, to="+12125550100") == Decimal("0.0090")
    assert _rate(billed.a.tenant, to=GB) == Decimal("0.0300")


def test_a_number_of_a_shared_country_code_takes_its_own_regions_price_else_the_main_ones(billed):
    """+44 7911 … is a Guernsey number (phonenumbers: GG) and +44 7700 900… a reserved, invalid one: with
    only a GB price both are priced as GB; a GG price, once listed, wins for the Guernsey number."""
    _price("0.0350", country="GB")
    assert _rate(billed.a.tenant, to="+447911123456") == Decimal("0.0350")
    assert _rate(billed.a.tenant, to="+447700900123") == Decimal("0.0350")
    _price("0.0410", country="GG")
    rating.price_cache_clear()
    assert _rate(billed.a.tenant, to="+447911123456") == Decimal("0.0410")
    assert _rate(billed.a.tenant, to=GB) == Decimal("0.0350")


def test_a_tenants_list_overrides_the_default_only_where_it_prices(billed):
    _price("0.0100", country="US")
    _price("0.0300", country="GB")
    _price("0.0070", country="US", tenant=billed.a.tenant)
    assert _rate(billed.a.tenant) == Decimal("0.0070")
    assert _rate(billed.a.tenant, to=GB) == Decimal("0.0300")  # not in A's list: the default
    assert _rate(billed.b.tenant) == Decimal("0.0100")  # A's list is A's alone


def test_its_own_type_beats_all_types_and_the_latest_date_in_force_wins(billed):
    _price("0.0100", country="US")
    _price("0.0060", country="US", message_type="otp")
    _price("0.0095", country="US", effective_from=PAST + timedelta(days=30))
    _price("0.0001", country="US", effective_from=timezone.now().date() + timedelta(days=1))  # not yet
    assert _rate(billed.a.tenant, message_type="otp") == Decimal("0.0060")
    assert _rate(billed.a.tenant, message_type="marketing") == Decimal("0.0095")


def test_a_volume_tier_applies_from_its_monthly_volume(billed):
    _price("0.0100", country="US")
    _price("0.0080", country="US", volume=100_000)
    assert _rate(billed.a.tenant, volume=99_999) == Decimal("0.0100")
    assert _rate(billed.a.tenant, volume=100_000) == Decimal("0.0080")


def test_no_price_for_the_destination_raises_its_code(billed):
    _price("0.0300", country="GB")
    with pytest.raises(NoPriceForDestination) as raised:
        _rate(billed.a.tenant)
    assert (raised.value.status, raised.value.code, raised.value.field) == (422, "no_price_for_destination", "to")


def test_rating_from_the_warm_cache_asks_the_database_nothing_and_a_saved_price_clears_it(billed, settings):
    settings.BILLING_PRICE_CACHE_SECONDS = 3600
    price = _price("0.0100", country="US")
    assert _rate(billed.a.tenant) == Decimal("0.0100")
    with CaptureQueriesContext(connection) as queries:
        assert _rate(billed.a.tenant) == Decimal("0.0100")
    assert len(queries) == 0
    # when the price changes in this process, the next rating sees it
    price.price = Decimal("0.0110")
    price.save()
    assert _rate(billed.a.tenant) == Decimal("0.0110")


# --- through the API ---------------------------------------------------------------------------------------


def test_a_send_answers_its_price_segments_times_the_unit_and_a_test_key_is_not_billed(billed, api):
    _price("0.0079", country="US")
    # when a test key sends two segments' worth of text
    response = api.post(SEND, {"to": US, "from": "Acme", "text": "x" * 200}, format="json", **billed.a.auth)
    body = response.json()
    # then the answer and the stored message show 2 x 0.0079, not billed
    assert response.status_code == 202, body
    assert (body["segments"], body["price"], body["currency"], body["billed"]) == (2, "0.0158", "EUR", False)
    message = Message.unscoped.get(public_id=body["id"])
    assert (message.price, message.currency, message.billed) == (Decimal("0.0158"), "EUR", False)
    shown = api.get(f"{SEND}/{body['id']}", **billed.a.auth).json()
    assert (shown["price"], shown["currency"], shown["billed"]) == ("0.0158", "EUR", False)


def test_the_quote_shows_the_price_before_sending(billed, api):
    _price("0.0350", country="GB")
    count = Message.unscoped.count()
    body = api.post(QUOTE, {"to": GB, "from": "Acme", "text": "hi"}, format="json", **billed.a.auth).json()
    assert (body["price"], body["currency"], body["billed"]) == ("0.0350", "EUR", False)
    assert Message.unscoped.count() == count


def test_a_destination_without_a_price_is_refused_422_and_nothing_is_stored(billed, api):
    _price("0.0350", country="GB")
    count = Message.unscoped.count()
    response = api.post(SEND, {"to": US, "from": "Acme", "text": "hi"}, format="json", **billed.a.auth)
    error = assert_error(response, 422, "no_price_for_destination", field="to")
    assert error["message"]
    assert Message.unscoped.count() == count
    assert_error(api.post(QUOTE, {"to": US, "from": "Acme", "text": "hi"}, format="json", **billed.a.auth),
                 422, "no_price_for_destination", field="to")


def test_a_batch_prices_each_message_and_refuses_the_unpriced_one_by_index(billed, api):
    _price("0.0350", country="GB")
    response = api.post(f"{SEND}/batch", {"defaults": {"from": "Acme", "text": "hi"},
                                          "messages": [{"to": GB}, {"to": US}]}, format="json", **billed.a.auth)
    priced, refused = response.json()["results"]
    assert response.status_code == 202
    assert (priced["price"], priced["currency"]) == ("0.0350", "EUR")
    assert refused["error"]["code"] == "no_price_for_destination"
