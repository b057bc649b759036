"""The portal's Billing section: balance and 30 days of spend, the ledger, usage by country, prices; who may see
them; and prices in the send form and the message pages (issue 11, section 6)."""
from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from numbers.tests.factories import shared_senders

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Tenant
from accounts.roles import Role
from accounts.services.audit import SYSTEM
from accounts.tests.factories import bearer, login_verified, make_api_key
from billing import charts, selectors, services
from billing.models import Balance, LedgerEntry, LedgerKind, Price
from messaging import lifecycle
from messaging.models import Message, Status

pytestmark = pytest.mark.django_db

OVERVIEW = reverse("portal:billing")
LEDGER = reverse("portal:billing-ledger")
USAGE = reverse("portal:billing-usage")
PRICES = reverse("portal:billing-prices")
SAVINGS = reverse("portal:billing-savings")
PAGES = (OVERVIEW, LEDGER, USAGE, PRICES, SAVINGS)
QUOTE = reverse("portal:message-quote")


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def money(billed):
    """A's live key, US at 0.0100 and GB at 0.0400 a segment (default list), 1 EUR on A's balance, 2 EUR credit."""
    Tenant.objects.filter(pk=billed.a.tenant.pk).update(messages_per_second=10_000)
    billed.a.tenant.refresh_from_db()
    Price.unscoped.create(country="US", price=Decimal("0.0100"), currency="EUR", effective_from="2025-01-01")
    Price.unscoped.create(country="GB", price=Decimal("0.0400"), currency="EUR", effective_from="2025-01-01")
    _key, secret = make_api_key(billed.a.tenant, mode="live", name="live")
    billed.a.extra["live"] = bearer(secret)
    services.balance_credit(tenant=billed.a.tenant, amount=Decimal("1"), reason="test top-up", actor=SYSTEM)
    Balance.unscoped.filter(tenant=billed.a.tenant).update(credit_limit=Decimal("2"))
    return billed


def _send(api, auth, to="+14155550100", text="hi", message_type="transactional") -> Message:
    response = api.post("/v1/messages", {"to": to, "from": "Acme", "text": text, "message_type": message_type},
                        format="json", **auth)
    assert response.status_code == 202, response.content
    return Message.unscoped.get(public_id=response.json()["id"])


def _sent(message: Message) -> None:
    lifecycle.messages_transition(message_ids=[message.pk], to=Status.SENDING, source="test")
    lifecycle.messages_transition(message_ids=[message.pk], to=Status.SENT, source="test")


def _figure(html: str, name: str) -> str:
    return re.search(rf'data-figure="{name}">([^<]+)<', html).group(1)


# --- who may see it ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.BILLING, Role.ADMIN])
def test_it_shows_every_billing_page_and_the_nav_entry_to_roles_with_billing_view(money, client, role):
    login_verified(client, money.a.members[role])
    for page in PAGES:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
        assert f'href="{OVERVIEW}"' in response.content.decode()  # the nav entry
        assert 'class="nav-item is-active" href="/portal/billing/"' in response.content.decode()


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.VIEWER])
def test_it_refuses_the_billing_pages_and_hides_the_nav_entry_for_other_roles(money, client, role):
    login_verified(client, money.a.members[role])
    for page in PAGES:
        assert client.get(page).status_code == 403, page
        assert client.post(page).status_code in (403, 405), page
    dashboard = client.get(reverse("portal:dashboard")).content.decode()
    assert f'href="{OVERVIEW}"' not in dashboard and ">Billing<" not in dashboard


def test_it_needs_a_signed_in_member(money, client):
    response = client.get(OVERVIEW)
    assert response.status_code == 302 and reverse("portal:login") in response["Location"]


# --- overview -------------------------------------------------------------------------------------------


def test_it_shows_the_balance_figures_and_recent_entries(money, client, api):
    _send(api, money.a.extra["live"])  # holds 0.0100
    login_verified(client, money.a.owner)
    html = client.get(OVERVIEW).content.decode()
    assert (_figure(html, "available"), _figure(html, "balance"), _figure(html, "reserved"),
            _figure(html, "credit_limit")) == ("2.9900", "1.0000", "0.0100", "2.0000")
    assert "EUR" in html and "test top-up" in html and "Hold (accept)" in html
    assert "test top-up" not in client.get(OVERVIEW).content.decode().replace("test top-up", "", 1)  # once


def test_the_spend_chart_has_one_bar_per_day_with_the_days_captures(money, client, api):
    today = timezone.now().date()
    sent = _send(api, money.a.extra["live"], to="+447400123456")  # 0.0400, captured today
    _sent(sent)
    # captures of earlier days, inserted as the settle step writes them (the ledger is append-only)
    for days_ago, amount in ((3, "0.0300"), (3, "0.0200"), (29, "0.0500"), (30, "9.0000")):
        LedgerEntry.unscoped.create(tenant=money.a.tenant, kind=LedgerKind.CAPTURE, currency="EUR",
                                    balance_delta=-Decimal(amount), reserved_delta=-Decimal(amount),
                                    created_at=timezone.now() - timedelta(days=days_ago))
    LedgerEntry.unscoped.create(tenant=money.b.tenant, kind=LedgerKind.CAPTURE, currency="EUR",
                                balance_delta=Decimal("-7"), reserved_delta=Decimal("-7"))  # B's: not A's
    login_verified(client, money.a.owner)
    html = client.get(OVERVIEW).content.decode()
    chart = html[html.index('data-chart="spend-chart"'):]
    chart = chart[:chart.index("</svg>")]
    bars = re.findall(r'<rect class="chart-bar"[^>]*><title>([^<]+)</title>', chart)
    assert len(bars) == 30
    assert bars[-1] == f"{today.isoformat()}: 0.0400 EUR"
    assert bars[-4] == f"{(today - timedelta(days=3)).isoformat()}: 0.0500 EUR"
    assert bars[0] == f"{(today - timedelta(days=29)).isoformat()}: 0.0500 EUR"  # 30 days ago is out
    assert sum(1 for title in bars if title.endswith(": 0.0000 EUR")) == 27
    assert "0.1400 EUR" in html  # the 30 days' total
    assert 'role="img"' in chart and "<title id=\"spend-chart-title\">" in chart


def test_the_spend_selector_counts_captures_only_per_utc_day(money, api):
    message = _send(api, money.a.extra["live"])  # a hold and later a release: no spend
    lifecycle.message_transition(message_id=message.pk, to=Status.CANCELED, source="test")
    spend = selectors.ledger_spend_by_day(tenant=money.a.tenant)
    assert len(spend) == 30 and spend[-1]["day"] == timezone.now().date()
    assert all(row["amount"] == 0 for row in spend)


def test_the_column_chart_scales_to_the_largest_value():
    chart = charts.column_chart([("a", Decimal("1")), ("b", Decimal("4")), ("c", Decimal("0"))], width=300,
                                height=100, gap=0)
    assert [(bar.x, bar.width, bar.height, bar.y) for bar in chart["bars"]] == [
        (0, 100, 25, 75), (100, 100, 100, 0), (200, 100, 0, 100)]
    empty = charts.column_chart([("a", Decimal(0))])
    assert empty["bars"][0].height == 0


# --- the ledger -------------------------------------------------------------------------------------------


def test_the_ledger_pages_newest_first_with_the_settled_message(money, client, api, django_assert_max_num_queries):
    message = _send(api, money.a.extra["live"])
    _sent(message)
    for i in range(55):
        services.balance_credit(tenant=money.a.tenant, amount=Decimal("0.01"), reason=f"credit {i}", actor=SYSTEM)
    login_verified(client, money.a.owner)
    first = client.get(LEDGER).content.decode()
    assert first.count("<tr>") - 1 == 50  # the header row and 50 entries
    assert "credit 54" in first and "credit 5<" in first and "credit 4<" not in first
    assert "Page 1 of 2 · 58 entries" in first
    second = client.get(LEDGER + "?page=2").content.decode()
    assert second.count("<tr>") - 1 == 8 and "test top-up" in second and "credit 4<" in second
    assert f'href="{reverse("portal:message-detail", args=[message.public_id])}"' in second
    with django_assert_max_num_queries(14):  # session, user, membership, ... : not one per entry
        client.get(LEDGER)


def test_the_ledger_shows_no_other_tenants_entries(money, client):
    login_verified(client, money.b.owner)
    assert "test top-up" not in client.get(LEDGER).content.decode()
    assert "test top-up" not in client.get(OVERVIEW).content.decode()


# --- usage --------------------------------------------------------------------------------------------------


def _usage_rows(html: str) -> list[tuple[str, ...]]:
    table = html[html.index("data-usage-table"):html.index("</table>", html.index("data-usage-table"))]
    return [tuple(re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row))
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)][1:]


def test_usage_by_country_sums_match_the_api_and_the_chart(money, client, api):
    _send(api, money.a.extra["live"], to="+14155550100")
    _send(api, money.a.extra["live"], to="+14155550101", message_type="otp")
    _send(api, money.a.extra["live"], to="+447400123456", text="x" * 200)  # 2 segments: 0.0800
    released = _send(api, money.a.extra["live"], to="+14155550102")
    lifecycle.message_transition(message_id=released.pk, to=Status.CANCELED, source="test")  # never charged
    login_verified(client, money.a.members[Role.BILLING])
    html = client.get(USAGE).content.decode()
    rows = _usage_rows(html)
    assert rows == [("GB", "1", "2", "0.0800"), ("US", "2", "2", "0.0200"), ("Total", "3", "4", "0.1000")]
    api_total = api.get("/v1/usage?group_by=country&from=" + timezone.now().date().replace(day=1).isoformat(),
                        **money.a.auth).json()["total"]
    assert (api_total["messages"], api_total["segments"], api_total["amount"]) == (3, 4, "0.1000")
    chart = html[html.index('data-chart="usage-chart"'):html.index("</svg>", html.index('data-chart="usage-chart"'))]
    assert re.findall(r"<title>([^<]+)</title></rect>", chart) == ["GB: 0.0800 EUR", "US: 0.0200 EUR"]


def test_usage_takes_a_range_and_refuses_a_reversed_one(money, client, api):
    _send(api, money.a.extra["live"])
    login_verified(client, money.a.owner)
    yesterday = (timezone.now().date() - timedelta(days=1)).isoformat()
    assert "No charged messages" in client.get(USAGE, {"start": yesterday, "end": yesterday}).content.decode()
    today = timezone.now().date().isoformat()
    html = client.get(USAGE, {"start": today, "end": yesterday}).content.decode()
    assert "must be on or before" in html and _usage_rows(html)[-1] == ("Total", "1", "1", "0.0100")
    assert client.get(USAGE, {"start": "nonsense"}).status_code == 200


# --- prices -------------------------------------------------------------------------------------------------


def test_the_price_list_shows_the_tenants_prices_with_a_country_filter(money, client):
    Price.unscoped.create(tenant=money.a.tenant, country="GB", price=Decimal("0.0300"), currency="EUR",
                          effective_from="2025-01-01")
    login_verified(client, money.a.owner)
    html = client.get(PRICES).content.decode()
    assert "0.0300 EUR" in html and "0.0100 EUR" in html and "0.0400 EUR" not in html  # A's own GB wins
    assert "Yours" in html and "Default" in html
    gb = client.get(PRICES, {"country": "gb"}).content.decode()
    assert "0.0300 EUR" in gb and "0.0100 EUR" not in gb
    bad = client.get(PRICES, {"country": "XX"}).content.decode()
    assert "is not a country code we know" in bad
    login_verified(client, money.b.owner)
    assert "0.0300" not in client.get(PRICES).content.decode()


def test_the_price_list_shows_number_prices_own_over_default_with_the_country_filter(money, client):
    from billing.models import NumberPrice

    NumberPrice.unscoped.create(number_type="mobile", country="GB", monthly_rental=Decimal("2.50"),
                                lease_per_hour=Decimal("0.10"), currency="EUR", effective_from="2025-01-01")
    NumberPrice.unscoped.create(tenant=money.a.tenant, number_type="local", country="US",
                                monthly_rental=Decimal("1.25"), lease_per_hour=Decimal("0.07"), currency="EUR",
                                effective_from="2025-01-01")
    login_verified(client, money.a.owner)
    table = client.get(PRICES).content.decode().split("data-number-prices-table")[1]
    assert "2.5000 EUR" in table and "0.1000 EUR" in table and "1.2500 EUR" in table and "Yours" in table
    us = client.get(PRICES, {"country": "US"}).content.decode().split("data-number-prices-table")[1]
    assert "1.2500 EUR" in us and "2.5000 EUR" not in us
    assert "No number price for FR" in client.get(PRICES, {"country": "FR"}).content.decode()
    login_verified(client, money.b.owner)
    assert "1.2500" not in client.get(PRICES).content.decode()


# --- prices in the send form and the message pages -----------------------------------------------------------


def _quote(client, **fields):
    data = {"content": "text", "text": "Your code is 123456", "sender": "Alpha", "to": "+14155550199",
            "message_type": "transactional", "smart_encoding": "on", **fields}
    response = client.post(QUOTE, data)
    assert response.status_code == 200
    return response.json()


def test_the_send_forms_quote_shows_the_price_currency_and_that_a_test_is_not_billed(money, client):
    login_verified(client, money.a.members[Role.DEVELOPER])
    answer = _quote(client, text="x" * 200)  # 2 segments to the US
    assert (answer["price"], answer["currency"], answer["billed"], answer["segments"]) == ("0.0200", "EUR", False, 2)
    assert "0.0200 <small>EUR</small>" in answer["html"] and "test, not billed" in answer["html"]
    uk = _quote(client, to="+447400123456")
    assert (uk["price"], uk["currency"]) == ("0.0400", "EUR")


def test_the_quote_says_what_the_price_waits_for(money, client):
    login_verified(client, money.a.members[Role.DEVELOPER])
    missing = _quote(client, to="")
    assert missing["price"] is None and "Enter the recipient and the sender" in missing["html"]
    assert missing["segments"] == 1  # the length is still there
    unpriced = _quote(client, to="+33612345678")
    assert unpriced["price"] is None and "no price for this destination" in unpriced["html"]
    invalid = _quote(client, to="+1")
    assert invalid["price"] is None and "Price:" in invalid["html"]


def test_the_send_page_check_shows_the_price_without_javascript(money, client):
    login_verified(client, money.a.members[Role.DEVELOPER])
    response = client.post(reverse("portal:message-send"), {
        "to": "+14155550199", "region": "", "sender": "Alpha", "message_type": "transactional", "content": "text",
        "text": "hello", "template": "", "variables": "", "scheduled_at": "", "smart_encoding": "on",
        "action": "check"})
    html = response.content.decode()
    assert "0.0100 <small>EUR</small>" in html and "test, not billed" in html


def test_the_message_pages_show_a_messages_price(money, client, api):
    live = _send(api, money.a.extra["live"], to="+447400123456")
    login_verified(client, money.a.owner)
    listing = client.get(reverse("portal:messages")).content.decode()
    assert "0.0400 <span class=\"muted small\">EUR</span>" in listing
    detail = client.get(reverse("portal:message-detail", args=[live.public_id])).content.decode()
    assert "0.0400 EUR" in detail and "billed" in detail and "test, not billed" not in detail
    unpriced = money.a.extra["message"]  # the world's, sent with billing off: no price
    detail = client.get(reverse("portal:message-detail", args=[unpriced.public_id])).content.decode()
    assert "data-message-price" not in detail
