"""Daily spend caps: a tenant's and an API key's live sends refused 402 spend_limit_reached past the cap."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import ApiKey
from accounts.tests.api_assertions import assert_error
from billing.models import ApiKeySpend, Balance, LedgerEntry
from billing.tests.test_ledger import _credit, _send, _shared_senders, live  # noqa: F401 - fixtures
from messaging import lifecycle
from messaging.models import Message, Status

pytestmark = pytest.mark.django_db


def test_a_tenant_cap_refuses_the_send_past_it_and_writes_nothing(live, api):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    Balance.unscoped.filter(tenant=live.a.tenant).update(daily_spend_cap=Decimal("0.02"))
    assert [_send(api, live.a.extra["live"], to=f"+1415555010{i}").status_code for i in range(2)] == [202, 202]
    count, entries = Message.unscoped.count(), LedgerEntry.unscoped.count()
    assert_error(_send(api, live.a.extra["live"], to="+14155550109"), 402, "spend_limit_reached", field="to")
    assert (Message.unscoped.count(), LedgerEntry.unscoped.count()) == (count, entries)
    assert Balance.unscoped.get(tenant=live.a.tenant).reserved == Decimal("0.02")


def test_a_release_gives_back_todays_spend(live, api):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    Balance.unscoped.filter(tenant=live.a.tenant).update(daily_spend_cap=Decimal("0.01"))
    assert _send(api, live.a.extra["live"]).status_code == 202
    assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 402
    message = Message.unscoped.get(tenant=live.a.tenant, billed=True)
    lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")
    assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 202


def test_a_key_cap_refuses_that_key_only_and_keeps_no_count_of_a_refusal(live, api):  # noqa: F811
    _credit(live.a.tenant, "0.015")
    key = ApiKey.unscoped.filter(tenant=live.a.tenant, mode="live").get()
    ApiKey.unscoped.filter(pk=key.pk).update(daily_spend_cap=Decimal("0.01"))
    assert _send(api, live.a.extra["live"]).status_code == 202
    assert_error(_send(api, live.a.extra["live"], to="+14155550101"), 402, "spend_limit_reached", field="to")
    assert ApiKeySpend.unscoped.get(api_key=key).amount == Decimal("0.01")
    # the key under its cap but the balance short: insufficient_balance, and the key's count rolled back
    ApiKey.unscoped.filter(pk=key.pk).update(daily_spend_cap=Decimal("1"))
    assert_error(_send(api, live.a.extra["live"], to="+14155550101"), 402, "insufficient_balance", field="to")
    assert ApiKeySpend.unscoped.get(api_key=key).amount == Decimal("0.01")


def _key_capped(live, cap: str) -> ApiKey:  # noqa: F811  (the `live` fixture by name)
    key = ApiKey.unscoped.filter(tenant=live.a.tenant, mode="live").get()
    ApiKey.unscoped.filter(pk=key.pk).update(daily_spend_cap=Decimal(cap))
    return key


def test_it_gives_a_keys_released_hold_back_to_its_daily_cap(live, api):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    key = _key_capped(live, "0.01")
    assert _send(api, live.a.extra["live"]).status_code == 202
    assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 402
    message = Message.unscoped.get(tenant=live.a.tenant, billed=True)
    # when its hold is released the same day
    lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")
    # then the key's spend of the day is back to 0 and the key may send again
    assert ApiKeySpend.unscoped.get(api_key=key).amount == Decimal(0)
    assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 202
    assert ApiKeySpend.unscoped.get(api_key=key).amount == Decimal("0.01")
    # a repeated release (already settled) gives nothing back again
    lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")
    assert ApiKeySpend.unscoped.get(api_key=key).amount == Decimal("0.01")


def test_it_never_takes_a_keys_spend_below_zero(live, api):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    key = _key_capped(live, "1")
    assert _send(api, live.a.extra["live"]).status_code == 202
    ApiKeySpend.unscoped.filter(api_key=key).update(amount=Decimal("0.004"))  # less than the hold (0.01)
    message = Message.unscoped.get(tenant=live.a.tenant, billed=True)
    lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")
    assert ApiKeySpend.unscoped.get(api_key=key).amount == Decimal(0)


def test_it_gives_nothing_back_on_a_release_of_another_day(live, api, time_machine):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    key = _key_capped(live, "0.02")
    Balance.unscoped.filter(tenant=live.a.tenant).update(daily_spend_cap=Decimal("0.02"))
    day1 = (timezone.now() + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    time_machine.move_to(day1, tick=False)
    assert _send(api, live.a.extra["live"]).status_code == 202
    held_yesterday = Message.unscoped.get(tenant=live.a.tenant, billed=True)
    # given a hold on day 2 too
    time_machine.move_to(day1 + timedelta(days=1), tick=False)
    assert _send(api, live.a.extra["live"], to="+14155550101").status_code == 202
    # when day 1's message is released on day 2
    lifecycle.message_transition(message_id=held_yesterday.pk, to=Status.CANCELED, source="test")
    # then day 2's spend (key and tenant) keeps only day 2's hold, and day 1's row is left as it was
    day2 = (day1 + timedelta(days=1)).date()
    assert ApiKeySpend.unscoped.get(api_key=key, day=day2).amount == Decimal("0.01")
    assert ApiKeySpend.unscoped.get(api_key=key, day=day1.date()).amount == Decimal("0.01")
    balance = Balance.unscoped.get(tenant=live.a.tenant)
    assert (balance.spent_day, balance.spent_today) == (day2, Decimal("0.01"))
    assert balance.reserved == Decimal("0.01")  # the hold itself is released whatever the day
    assert LedgerEntry.unscoped.filter(message_id=held_yesterday.pk, kind="release").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the CHECKs are enforced by PostgreSQL")
@pytest.mark.parametrize(("model", "field"), [("balance", "daily_spend_cap"), ("balance", "spent_today"),
                                              ("spend", "amount"), ("key", "daily_spend_cap")])
def test_it_refuses_a_negative_cap_or_spend_in_the_database(live, model, field):  # noqa: F811
    _credit(live.a.tenant, "1.00")
    key = ApiKey.unscoped.filter(tenant=live.a.tenant, mode="live").get()
    ApiKeySpend.unscoped.create(tenant=live.a.tenant, api_key=key, day=timezone.now().date(), amount=Decimal("0.01"))
    rows = {"balance": Balance.unscoped.filter(tenant=live.a.tenant), "spend": ApiKeySpend.unscoped.filter(api_key=key),
            "key": ApiKey.unscoped.filter(pk=key.pk)}[model]
    rows.update(**{field: Decimal(0)})  # zero is allowed
    with pytest.raises(IntegrityError, match="not_negative"), transaction.atomic():
        rows.update(**{field: Decimal("-0.000001")})
