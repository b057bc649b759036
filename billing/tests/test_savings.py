"""The savings calculator (issue 11, section 7): the direct operator dataset, savings_estimate, POST
/v1/billing/savings and its 422s, the portal page and the public page before sign-up."""
from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO
from numbers.tests.factories import shared_senders

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from accounts.models import Tenant
from accounts.roles import Role
from accounts.services.audit import SYSTEM
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import bearer, login_verified, make_api_key
from billing import savings, services
from billing.demo import DEMO_PRICES
from billing.models import Balance, DirectPrice, Price
from billing.portal import views as portal_views
from messaging import lifecycle
from messaging.models import Message, Status

pytestmark = pytest.mark.django_db

API = "/v1/billing/savings"
PUBLIC = reverse("pricing-savings")
PORTAL = reverse("portal:billing-savings")


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def priced(billed):
    """The direct dataset loaded; our default list: US 0.0100, GB 0.0400 (OTP 0.0350), NZ 0.0500 (no direct row);
    A's live key and 5 EUR; B's key reads billing."""
    savings.direct_prices_load()
    for country, kind, price in (("US", "", "0.0100"), ("GB", "", "0.0400"), ("GB", "otp", "0.0350"),
                                 ("NZ", "", "0.0500")):
        Price.unscoped.create(country=country, message_type=kind, price=Decimal(price), currency="EUR",
                              effective_from="2025-01-01")
    Tenant.objects.filter(pk=billed.a.tenant.pk).update(messages_per_second=10_000)
    _key, secret = make_api_key(billed.a.tenant, mode="live", name="live")
    billed.a.extra["live"] = bearer(secret)
    services.balance_credit(tenant=billed.a.tenant, amount=Decimal("5"), reason="top-up", actor=SYSTEM)
    return billed


# --- the dataset ----------------------------------------------------------------------------------------


def test_it_loads_the_direct_price_dataset_idempotently_with_source_and_date(db):
    first = savings.direct_prices_load()
    again = savings.direct_prices_load()
    assert first.created == DirectPrice.objects.count() >= 20
    assert (again.created, again.updated, again.unchanged) == (0, 0, first.created)
    assert set(DEMO_PRICES) <= set(DirectPrice.objects.values_list("country", flat=True))  # seed_demo's countries
    gb = DirectPrice.objects.get(country="GB", message_type="")
    assert (gb.price, gb.currency, gb.as_of.isoformat()) == (Decimal("0.0450"), "EUR", "2025-06-30")
    assert "Reference estimate" in gb.source


def test_it_updates_a_changed_row_and_refuses_a_bad_file_whole(db):
    savings.direct_prices_load()
    text = ("# a comment\ncountry,message_type,price,currency,as_of,source\n"
            "GB,,0.0500,EUR,2025-06-30,corrected\nFR,,abc,EUR,2025-06-30,x\n")
    with pytest.raises(ValueError, match="data line 2"):
        savings.direct_prices_load(text=text)
    assert DirectPrice.objects.get(country="GB", message_type="").price == Decimal("0.0450")
    result = savings.direct_prices_load(text=text.replace("FR,,abc", "FR,,0.0900"))
    assert (result.updated, DirectPrice.objects.get(country="GB", message_type="").source) == (2, "corrected")


def test_seed_demo_and_the_command_load_the_dataset(db, tmp_path):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    count = DirectPrice.objects.count()
    assert count >= 20 and "direct operator reference prices added" in out.getvalue()
    call_command("seed_demo", stdout=StringIO())
    assert DirectPrice.objects.count() == count
    out = StringIO()
    call_command("direct_prices_load", stdout=out)
    assert f"0 direct prices added, 0 changed, {count} already there." in out.getvalue()
    bad = tmp_path / "bad.csv"
    bad.write_text("country,price\nGB,1\n")
    with pytest.raises(CommandError, match="nothing was written"):
        call_command("direct_prices_load", str(bad), stdout=StringIO())


# --- the estimate -----------------------------------------------------------------------------------------


def test_it_estimates_our_cost_against_the_direct_cost_per_country(priced):
    estimate = savings.savings_estimate(volumes={"GB": 10000, "US": 50000}, message_type="otp")
    lines = {line.country: line for line in estimate.lines}
    assert (lines["GB"].our_unit, lines["GB"].direct_unit) == (Decimal("0.0350"), Decimal("0.0450"))  # OTP price
    assert (lines["GB"].our_cost, lines["GB"].direct_cost, lines["GB"].saving, lines["GB"].saving_percent) == (
        Decimal("350"), Decimal("450"), Decimal("100"), Decimal("22.2"))
    assert (lines["US"].our_cost, lines["US"].direct_cost, lines["US"].saving_percent) == (
        Decimal("500"), Decimal("550"), Decimal("9.1"))
    assert (estimate.our_cost, estimate.direct_cost, estimate.saving, estimate.saving_percent, estimate.currency) == (
        Decimal("850"), Decimal("1000"), Decimal("150"), Decimal("15.0"), "EUR")


def test_it_lists_countries_either_side_does_not_price_as_not_comparable(priced):
    estimate = savings.savings_estimate(volumes={"GB": 100, "NZ": 100, "SG": 100, "KZ": 100}, message_type="otp")
    reasons = {line.country: line.reason for line in estimate.not_comparable}
    assert set(reasons) == {"NZ", "SG", "KZ"}
    assert "No direct operator" in reasons["NZ"] and "We have no price" in reasons["SG"]
    assert "Neither" in reasons["KZ"]
    assert (estimate.our_cost, estimate.direct_cost) == (Decimal("3.5"), Decimal("4.5"))  # GB only


def test_it_prices_by_the_tenants_own_list_its_tier_and_its_currency(priced):
    tenant = priced.a.tenant
    Price.unscoped.create(tenant=tenant, country="US", price=Decimal("0.0080"), currency="EUR",
                          effective_from="2025-01-01")
    Price.unscoped.create(tenant=tenant, country="US", price=Decimal("0.0060"), currency="EUR",
                          effective_from="2025-01-01", min_monthly_volume=100_000)
    small = savings.savings_estimate(volumes={"US": 1000}, message_type="otp", tenant=tenant)
    large = savings.savings_estimate(volumes={"US": 200_000}, message_type="otp", tenant=tenant)
    default = savings.savings_estimate(volumes={"US": 1000}, message_type="otp", tenant=priced.b.tenant)
    assert (small.lines[0].our_unit, large.lines[0].our_unit, default.lines[0].our_unit) == (
        Decimal("0.0080"), Decimal("0.0060"), Decimal("0.0100"))
    services.balance_credit(tenant=priced.b.tenant, amount=Decimal("1"), reason="x", actor=SYSTEM)
    Balance.unscoped.filter(tenant=priced.b.tenant).update(currency="GBP")
    gbp = savings.savings_estimate(volumes={"US": 1000}, message_type="otp", tenant=priced.b.tenant)
    assert gbp.currency == "GBP" and not gbp.comparable  # no GBP prices on either side


# --- POST /v1/billing/savings ---------------------------------------------------------------------------------


def test_the_api_answers_the_figures_as_string_decimals(priced, api):
    response = api.post(API, {"volumes": {"GB": 10000, "us": 50000, "SG": 5}, "message_type": "otp"},
                        format="json", **priced.a.auth)
    assert response.status_code == 200, response.content
    body = response.json()
    assert {k: body[k] for k in ("currency", "message_type", "source", "from", "to", "our_cost", "direct_cost",
                                 "saving", "saving_percent", "not_comparable")} == {
        "currency": "EUR", "message_type": "otp", "source": "volumes", "from": None, "to": None,
        "our_cost": "850.0000", "direct_cost": "1000.0000", "saving": "150.0000", "saving_percent": "15.0",
        "not_comparable": ["SG"]}
    gb = body["countries"][0]
    assert gb == {"country": "GB", "message_type": "otp", "volume": 10000, "comparable": True, "reason": "",
                  "our_unit": "0.0350", "direct_unit": "0.0450", "our_cost": "350.0000", "direct_cost": "450.0000",
                  "saving": "100.0000", "saving_percent": "22.2"}
    sg = body["countries"][1]
    assert (sg["country"], sg["comparable"], sg["our_unit"], sg["saving"], sg["saving_percent"]) == (
        "SG", False, None, None, None)


@pytest.mark.parametrize(("body", "code", "field"), [
    ({"volumes": {"XX": 10}}, "invalid_country", "volumes.XX"),
    ({"volumes": {"GBR": 10}}, "invalid_country", "volumes.GBR"),
    ({"volumes": {"GB": -1}}, "invalid_volume", "volumes.GB"),
    ({"volumes": {"GB": 1.5}}, "invalid_volume", "volumes.GB"),
    ({"volumes": {"GB": "10"}}, "invalid_volume", "volumes.GB"),
    ({"volumes": {"GB": True}}, "invalid_volume", "volumes.GB"),
    ({"volumes": {"GB": None}}, "invalid_volume", "volumes.GB"),
    ({"volumes": {"GB": 10**12}}, "volume_too_large", "volumes.GB"),
    ({"volumes": {}}, "invalid_volumes", "volumes"),
    ({"volumes": [10]}, "invalid_volumes", "volumes"),
    ({"volumes": "GB=10"}, "invalid_volumes", "volumes"),
    ({"volumes": {"GB": 10}, "message_type": "sms"}, "invalid_message_type", "message_type"),
    ({"volumes": {"GB": 10}, "message_type": 3}, "invalid_message_type", "message_type"),
    ({"message_type": "bulk"}, "invalid_message_type", "message_type"),
    ({"volumes": {"GB": 10}, "message_type": None}, "invalid_message_type", "message_type"),
    ({"message_type": None}, "invalid_message_type", "message_type"),
    ({"volumes": None}, "invalid_volumes", "volumes"),
])
def test_the_api_refuses_what_it_cannot_estimate_with_422_and_the_field(priced, api, body, code, field):
    assert_error(api.post(API, body, format="json", **priced.a.auth), 422, code, field=field)


def test_the_api_refuses_a_body_that_is_not_an_object_and_too_many_countries(priced, api):
    assert_error(api.post(API, [1, 2], format="json", **priced.a.auth), 422, "invalid_body")
    assert_error(api.post(API, "null", content_type="application/json", **priced.a.auth), 422, "invalid_body")
    assert api.post(API, "", content_type="application/json", **priced.a.auth).json()["source"] == "usage"
    many = {f"C{i:03d}": 1 for i in range(251)}
    assert_error(api.post(API, {"volumes": many}, format="json", **priced.a.auth), 422, "too_many_countries",
                 field="volumes")
    assert_error(api.post(API, "{", content_type="application/json", **priced.a.auth), 400, "invalid_json")
    # beyond 64 bits: the parser's rule for every body (docs/hostile-input.md), before the estimate sees it
    assert_error(api.post(API, {"volumes": {"GB": 10**30}}, format="json", **priced.a.auth), 400,
                 "number_out_of_range", field="volumes.GB")


def test_the_api_needs_the_billing_read_scope(priced, api):
    _key, secret = make_api_key(priced.a.tenant, scopes=["messages:read"], name="reader")
    assert_error(api.post(API, {"volumes": {"GB": 1}}, format="json", **bearer(secret)), 403, "insufficient_scope")
    assert_error(api.post(API, {"volumes": {"GB": 1}}, format="json"), 401, "authentication_required")


def _send(api, auth, to, message_type="transactional", text="hi"):
    response = api.post("/v1/messages", {"to": to, "from": "Acme", "text": text, "message_type": message_type},
                        format="json", **auth)
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_without_a_body_it_estimates_the_tenants_last_30_days_by_country_and_type(priced, api):
    live = priced.a.extra["live"]
    _send(api, live, "+14155550100")
    _send(api, live, "+14155550101")
    _send(api, live, "+447400123456", message_type="otp", text="x" * 200)  # 2 segments at the OTP price
    canceled = _send(api, live, "+447400123457")
    lifecycle.message_transition(message_id=Message.unscoped.get(public_id=canceled).pk, to=Status.CANCELED,
                                 source="test")  # released: never charged, not counted
    body = api.post(API, **priced.a.auth).json()
    assert (body["source"], body["message_type"], body["from"] is not None) == ("usage", None, True)
    assert [(c["country"], c["message_type"], c["volume"], c["our_cost"], c["direct_cost"]) for c in body["countries"]] \
        == [("GB", "otp", 2, "0.0700", "0.0900"), ("US", "transactional", 2, "0.0200", "0.0220")]
    assert (body["our_cost"], body["direct_cost"], body["saving"]) == ("0.0900", "0.1120", "0.0220")
    otp = api.post(API, {"message_type": "otp"}, format="json", **priced.a.auth).json()
    assert [c["country"] for c in otp["countries"]] == ["GB"] and otp["message_type"] == "otp"
    assert api.post(API, **priced.b.auth).json()["countries"] == []  # B sent nothing billed


def test_the_endpoint_is_in_the_openapi_schema(priced, api):
    schema = api.get("/v1/openapi.json").json()
    operation = schema["paths"]["/v1/billing/savings"]["post"]
    assert "422" in operation["responses"] and "200" in operation["responses"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    volumes = schema["components"]["schemas"][body]["properties"]["volumes"]
    assert volumes["additionalProperties"]["maximum"] == savings.MAX_VOLUME and volumes["minProperties"] == 1


# --- the portal page -------------------------------------------------------------------------------------------


def test_the_portal_page_starts_from_the_last_30_days_and_estimates_typed_volumes(priced, client, api):
    _send(api, priced.a.extra["live"], "+14155550100")
    login_verified(client, priced.a.members[Role.BILLING])
    page = client.get(PORTAL).content.decode()
    assert "US 1</textarea>" in page and 'data-figure="our_cost">0.0100<' in page
    response = client.post(PORTAL, {"volumes": "gb 10000\nUS=50000\nSG 5", "message_type": "otp"})
    html = response.content.decode()
    assert 'data-figure="saving">150.0000<' in html and "15.0% of the direct cost" in html
    assert 'data-not-comparable="SG"' in html
    chart = html[html.index('data-chart="savings-chart"'):html.index("</svg>", html.index('data-chart="savings-chart"'))]
    assert re.findall(r"<title>([^<]+)</title></rect>", chart) == [
        "GB Our price: 350.0000 EUR", "GB Direct operator: 450.0000 EUR",
        "US Our price: 500.0000 EUR", "US Direct operator: 550.0000 EUR"]
    bad = client.post(PORTAL, {"volumes": "XX 10", "message_type": "otp"}).content.decode()
    assert "is not a country code we know" in bad and "data-savings" not in bad
    assert "whole number" in client.post(PORTAL, {"volumes": "GB ten", "message_type": "otp"}).content.decode()


def test_the_portal_page_is_refused_to_a_developer(priced, client):
    login_verified(client, priced.a.members[Role.DEVELOPER])
    assert client.get(PORTAL).status_code == 403
    assert client.post(PORTAL, {"volumes": "GB 1", "message_type": "otp"}).status_code == 403


# --- the public page ---------------------------------------------------------------------------------------------


def test_the_public_page_works_signed_out_with_the_default_list_and_csrf(priced):
    Price.unscoped.create(tenant=priced.a.tenant, country="GB", price=Decimal("0.0010"), currency="EUR",
                          effective_from="2025-01-01")  # a tenant's own price: never on the public page
    client = Client(enforce_csrf_checks=True)
    page = client.get(PUBLIC)
    assert page.status_code == 200 and "How much would you save?" in page.content.decode()
    token = page.cookies["csrftoken"].value
    assert client.post(PUBLIC, {"volumes": "GB 10000", "message_type": "transactional"}).status_code == 403
    response = client.post(PUBLIC, {"volumes": "GB 10000", "message_type": "transactional",
                                    "csrfmiddlewaretoken": token})
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-figure="our_cost">400.0000<' in html and 'data-figure="direct_cost">450.0000<' in html
    assert "11.1% of the direct cost" in html and "Alpha" not in html


def test_the_public_page_is_rate_limited_per_address(priced, client, monkeypatch):
    monkeypatch.setattr(portal_views, "PUBLIC_RATE", 2)
    statuses = [client.post(PUBLIC, {"volumes": "GB 1", "message_type": "otp"}).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "Too many estimates" in client.post(PUBLIC, {"volumes": "GB 1", "message_type": "otp"}).content.decode()
    assert client.get(PUBLIC).status_code == 200  # reading the page is not counted
