"""Daily spend caps: a tenant's and an API key's live sends refused 402 spend_limit_reached past the cap."""
from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import ApiKey
from accounts.tests.api_assertions import assert_error
from billing.models import ApiKeySpend, Balance, LedgerEntry
from billing.tests.test_ledger import _credit, _send, live  # noqa: F401
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
