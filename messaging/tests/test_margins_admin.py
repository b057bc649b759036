"""Account managers' margins in admin: each message's price, carrier cost and margin, and the margins by tenant
and country for a period (page and CSV), against known data: two tenants, two priced countries and one whose
route costs in another currency, routes with costs, a released message, one outside the period, a test one."""
from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import PASSWORD, TenantFactory, login_verified
from billing.models import LedgerEntry
from messaging.models import Carrier, Message, MessageAttempt, Route
from messaging.routing.margins import margins_by_tenant_country

pytestmark = pytest.mark.django_db

MARCH = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MARGINS = "admin:messaging_message_margins"


def _message(tenant, to: str, *, price: str, segments: int = 1, at: datetime = MARCH, billed: bool = True,
             status: str = "delivered", attempts=()) -> Message:
    """A message as the pipeline leaves it, with its attempts: (route, outcome) in order."""
    message = Message.unscoped.create(
        tenant=tenant, to=to, sender="Acme", text="x" * segments, encoding="GSM-7", segments=segments, characters=1,
        mode="live" if billed else "test", price=Decimal(price), currency="EUR", billed=billed, status=status,
        created_at=at, expires_at=at + timedelta(days=1))
    for number, (route, outcome) in enumerate(attempts, start=1):
        MessageAttempt.unscoped.create(tenant=tenant, message=message, number=number, route=route,
                                       carrier=route.carrier.name, cost=route.cost, currency=route.currency,
                                       outcome=outcome, started_at=at)
    return message


@pytest.fixture
def known():
    """acme: 3 GB messages (one released: no revenue, a cost), 1 US one of 2 segments after a failed route;
    bolt: 1 GB one of 3 segments, 1 DE one whose route costs in USD; plus an April one and a test-key one."""
    acme, bolt = TenantFactory(slug="acme"), TenantFactory(slug="bolt")
    carrier = Carrier.objects.create(name="c1", kind="simulator")
    gb = Route.objects.create(carrier=carrier, prefix="44", country="GB", cost="0.0200", currency="EUR")
    us = Route.objects.create(carrier=carrier, prefix="1", country="", cost="0.0050", currency="EUR")  # country by prefix
    us_other = Route.objects.create(carrier=Carrier.objects.create(name="c2", kind="simulator"), prefix="1",
                                    cost="0.0010", currency="EUR")
    de = Route.objects.create(carrier=carrier, prefix="49", country="DE", cost="0.0100", currency="USD")
    for to in ("+447700900001", "+447700900002"):
        _message(acme, to, price="0.0400", attempts=[(gb, "delivered")])
    released = _message(acme, "+447700900003", price="0.0400", status="failed", attempts=[(gb, "failed")])
    LedgerEntry.unscoped.create(tenant=acme, kind="release", reserved_delta=Decimal("-0.04"), currency="EUR",
                                message_id=released.pk, messages=1)
    us_message = _message(acme, "+14155550100", price="0.0200", segments=2,
                          attempts=[(us_other, "route_error"), (us, "delivered")])
    _message(bolt, "+447700900004", price="0.0900", segments=3, attempts=[(gb, "submitted")])
    de_message = _message(bolt, "+4915112345678", price="0.0500", attempts=[(de, "delivered")])
    _message(acme, "+447700900005", price="0.0400", at=MARCH + timedelta(days=30), attempts=[(gb, "delivered")])
    _message(acme, "+447700900006", price="0.0400", billed=False, attempts=[(gb, "delivered")])
    return {"acme": acme, "bolt": bolt, "us_message": us_message, "de_message": de_message}


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    return user


def _figures(rows) -> list[tuple]:
    return [(r.tenant, r.country, r.currency, r.messages, r.segments, r.revenue, r.cost, r.margin, r.margin_percent)
            for r in rows]


D = Decimal
EXPECTED = [
    ("acme", "GB", "EUR", 3, 3, D("0.08"), D("0.06"), D("0.02"), D("25.0")),
    ("acme", "US", "EUR", 1, 2, D("0.02"), D("0.01"), D("0.01"), D("50.0")),
    ("bolt", "DE", "EUR", 1, 1, D("0.05"), None, None, None),  # a USD cost, no exchange rate: n/a
    ("bolt", "GB", "EUR", 1, 3, D("0.09"), D("0.06"), D("0.03"), D("33.3")),
]


def test_it_aggregates_margins_by_tenant_and_country_in_sql(known, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):  # the routed aggregate and the unrouted one, whatever the count
        rows = margins_by_tenant_country(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
    assert _figures(rows) == EXPECTED


@override_settings(ROUTING_COST_CURRENCY="EUR", ROUTING_EXCHANGE_RATES={"USD": Decimal("0.90")})
def test_it_converts_a_cost_with_the_routing_exchange_rates_and_marks_it_an_estimate(known):
    rows = margins_by_tenant_country(start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 4, 1, tzinfo=UTC))
    de = next(r for r in rows if r.country == "DE")
    assert (de.cost, de.margin, de.estimated) == (D("0.009"), D("0.041"), True)
    assert not next(r for r in rows if r.country == "US").estimated


def test_it_shows_the_margins_page_to_staff_with_the_known_figures(client, staff, known):
    response = client.get(reverse(MARGINS), {"month": "2026-03"})
    assert response.status_code == 200
    assert _figures(response.context["rows"]) == EXPECTED
    page = response.content.decode()
    assert "acme" in page and "25.0 %" in page and "33.3 %" in page and "n/a" in page
    # the same period as from/to days
    by_days = client.get(reverse(MARGINS), {"start": "2026-03-01", "end": "2026-03-31"})
    assert _figures(by_days.context["rows"]) == EXPECTED
    # April has only the one message
    april = client.get(reverse(MARGINS), {"month": "2026-04"})
    assert _figures(april.context["rows"]) == [("acme", "GB", "EUR", 1, 1, D("0.04"), D("0.02"), D("0.02"), D("50.0"))]


def test_it_refuses_a_period_it_cannot_read_without_a_5xx(client, staff, known):
    for query in ({"month": "2026-13"}, {"month": "2026-03", "start": "2026-03-01"}, {"start": "2026-03-01"},
                  {"start": "2026-03-09", "end": "2026-03-01"}, {"start": "yesterday", "end": "2026-03-01"}):
        response = client.get(reverse(MARGINS), query)
        assert response.status_code == 200 and response.context["form"].errors, query
        assert response.context["rows"] == []


def test_it_exports_the_margins_as_csv(client, staff, known):
    response = client.get(reverse(MARGINS), {"month": "2026-03", "export": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    assert 'filename="margins-2026-03-01-2026-03-31.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:9] == ["tenant", "country", "currency", "messages", "segments", "revenue", "carrier_cost",
                           "margin", "margin_percent"]
    assert rows[1:] == [
        ["acme", "GB", "EUR", "3", "3", "0.080000", "0.060000", "0.020000", "25.0", "EUR", "no"],
        ["acme", "US", "EUR", "1", "2", "0.020000", "0.010000", "0.010000", "50.0", "EUR", "no"],
        ["bolt", "DE", "EUR", "1", "1", "0.050000", "", "", "", "USD", "no"],
        ["bolt", "GB", "EUR", "1", "3", "0.090000", "0.060000", "0.030000", "33.3", "EUR", "no"],
    ]


def test_it_lets_only_staff_who_may_see_messages_and_attempts_see_the_margins(client, known):
    user = User.objects.create_user(email="support@smsportal.example.com", password=PASSWORD, is_staff=True)
    login_verified(client, user)
    assert client.get(reverse(MARGINS)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_message"))
    user = User.objects.get(pk=user.pk)  # a fresh permission cache
    assert client.get(reverse(MARGINS)).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_messageattempt"))
    assert client.get(reverse(MARGINS), {"month": "2026-03"}).status_code == 200
    client.logout()
    assert client.get(reverse(MARGINS)).status_code == 302  # to the admin's login


def test_it_shows_each_messages_price_carrier_cost_and_margin(client, staff, known):
    page = client.get(reverse("admin:messaging_message_changelist"), {"tenant__id__exact": known["acme"].pk})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Margins by tenant and country" in html  # the link to the period page
    us = client.get(reverse("admin:messaging_message_change", args=[known["us_message"].pk])).content.decode()
    # its last sent attempt (0.0050 a segment, 2 segments), not the failed route before it
    assert "0.010000 EUR" in us and "0.010000 EUR" in us.split("Margin")[-1]


def test_it_shows_a_mixed_currency_margin_as_n_a(client, staff, known):
    page = client.get(reverse("admin:messaging_message_change", args=[known["de_message"].pk])).content.decode()
    assert "0.010000 USD" in page  # the carrier cost, in its own currency
    margin = page.split(">Margin:<")[1][:200]
    assert "n/a" in margin and "0.04" not in margin
    with override_settings(ROUTING_COST_CURRENCY="EUR", ROUTING_EXCHANGE_RATES={"USD": Decimal("0.90")}):
        page = client.get(reverse("admin:messaging_message_change", args=[known["de_message"].pk])).content.decode()
    assert "≈ 0.041000 EUR" in page
