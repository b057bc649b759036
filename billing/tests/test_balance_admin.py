"""Account managers' balances and ledgers in admin: the figures (available, held, credit limit, the daily caps and
today's spend), a link to the tenant's own ledger, and the ledger read-only (entries are append-only)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, User
from accounts.services.audit import SYSTEM
from accounts.tests.factories import PASSWORD, TenantFactory, login_verified, make_api_key
from billing import services
from billing.models import ApiKeySpend, Balance, LedgerEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client) -> User:
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)
    return user


@pytest.fixture
def balances():
    """acme: 10.00 topped up, 0.25 held, a credit limit of 5, a cap of 20 with 1.50 spent today, and a capped key
    that spent 0.40 today; bolt: 3.00 topped up."""
    acme, bolt = TenantFactory(slug="acme"), TenantFactory(slug="bolt")
    services.balance_credit(tenant=acme, amount=Decimal("10.00"), reason="wire 1", actor=SYSTEM)
    services.balance_credit(tenant=bolt, amount=Decimal("3.00"), reason="wire 2", actor=SYSTEM)
    services.balance_hold(tenant_id=acme.pk, amount=Decimal("0.25"), currency="EUR", messages=5)
    Balance.unscoped.filter(tenant=acme).update(credit_limit=Decimal(5), daily_spend_cap=Decimal(20),
                                                spent_day=timezone.now().date(), spent_today=Decimal("1.50"))
    key, _ = make_api_key(acme, mode="live", name="checkout")
    ApiKey.unscoped.filter(pk=key.pk).update(daily_spend_cap=Decimal(2))
    ApiKeySpend.unscoped.create(tenant=acme, api_key=key, day=timezone.now().date(), amount=Decimal("0.40"))
    return {"acme": acme, "bolt": bolt, "key": key}


def test_it_lists_each_balance_with_available_held_credit_and_caps(client, staff, balances):
    page = client.get(reverse("admin:billing_balance_changelist"))
    assert page.status_code == 200
    row = next(r for r in page.context["cl"].result_list if r.tenant_id == balances["acme"].pk)
    admin = page.context["cl"].model_admin
    assert (admin.available(row), row.reserved, row.credit_limit, admin.available_to_hold(row), row.daily_spend_cap,
            admin.spent_today_shown(row)) == (Decimal("9.75"), Decimal("0.25"), Decimal(5), Decimal("14.75"),
                                              Decimal(20), Decimal("1.50"))
    html = page.content.decode()
    assert "9.75" in html and "14.75" in html
    assert f"?tenant__id__exact={balances['acme'].pk}" in html


def test_it_shows_the_keys_caps_and_todays_spend_on_a_balance(client, staff, balances):
    balance = Balance.unscoped.get(tenant=balances["acme"])
    html = client.get(reverse("admin:billing_balance_change", args=[balance.pk])).content.decode()
    assert "checkout" in html and "0.40" in html and "2.000000 EUR" in html
    assert "Ledger of" in html and "14.75" in html


def test_it_counts_an_earlier_days_spend_as_nothing_today(client, staff, balances):
    Balance.unscoped.filter(tenant=balances["acme"]).update(spent_day=timezone.now().date().replace(year=2020))
    page = client.get(reverse("admin:billing_balance_changelist"))
    row = next(r for r in page.context["cl"].result_list if r.tenant_id == balances["acme"].pk)
    assert page.context["cl"].model_admin.spent_today_shown(row) == Decimal(0)


def test_it_links_a_balance_to_its_tenants_ledger_only(client, staff, balances):
    url = reverse("admin:billing_ledgerentry_changelist")
    page = client.get(url, {"tenant__id__exact": balances["acme"].pk})
    assert page.status_code == 200
    entries = list(page.context["cl"].result_list)
    assert sorted(e.kind for e in entries) == ["hold", "topup"]
    assert {e.tenant_id for e in entries} == {balances["acme"].pk}
    everyone = client.get(url)
    assert {e.tenant_id for e in everyone.context["cl"].result_list} == {balances["acme"].pk, balances["bolt"].pk}


def test_it_refuses_to_add_change_or_delete_a_ledger_entry(client, staff, balances):
    entry = LedgerEntry.unscoped.filter(tenant=balances["acme"], kind="topup").get()
    change = reverse("admin:billing_ledgerentry_change", args=[entry.pk])
    assert client.get(change).status_code == 200  # viewable, read-only
    assert client.post(change, {"kind": "topup", "balance_delta": "999", "reason": "x"}).status_code == 403
    assert client.post(reverse("admin:billing_ledgerentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:billing_ledgerentry_add")).status_code == 403
    # the bulk delete action is not offered either
    listing = client.post(reverse("admin:billing_ledgerentry_changelist"),
                          {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert listing.status_code in (200, 302)
    entry.refresh_from_db()
    assert (entry.balance_delta, entry.reason) == (Decimal("10.00"), "wire 1")
    assert LedgerEntry.unscoped.filter(pk=entry.pk).exists()
