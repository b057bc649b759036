"""Inventory: import_numbers, seed_demo's stock, and the admin actions."""
from __future__ import annotations

import io
from decimal import Decimal
from numbers.models import NumberEvent, NumberStatus, PhoneNumber
from numbers.services import number_lease_acquire
from numbers.tests.factories import stock

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import User
from accounts.tests.factories import PASSWORD, TenantFactory, login_verified

pytestmark = pytest.mark.django_db

HEADER = "number,country,type,capabilities,carrier,monthly_cost,monthly_price\n"
GOOD = ("+14155550123,US,mobile,sms|voice,simulator,0.5000,1.2500\n"
        "020 7946 0958,GB,local,SMS,carrierx,0.4,0.9\n"
        "72345,US,short_code,sms|mms,simulator,500,1000\n")
BAD = ("+14155550124,GB,mobile,sms,simulator,1,2\n"       # line 5: a US number said to be GB
       "+1415555,US,mobile,sms,simulator,1,2\n"           # line 6: not valid
       "+14155550125,US,pager,sms,simulator,1,2\n"        # line 7: no such type
       "+14155550126,US,mobile,fax,simulator,1,2\n"       # line 8: no such capability
       "+14155550127,US,mobile,sms,simulator,1.23456,2\n"  # line 9: five decimals
       "+14155550128,US,mobile,sms,simulator,-1,2\n")     # line 10: negative


def _import(tmp_path, text: str) -> tuple[list[str], list[str]]:
    path = tmp_path / "numbers.csv"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    call_command("import_numbers", str(path), stdout=out, stderr=err)
    return out.getvalue().splitlines(), err.getvalue().splitlines()


def test_import_numbers_adds_good_rows_and_reports_bad_ones_by_line(tmp_path):
    # when a file with three good rows and six bad ones is imported
    out, err = _import(tmp_path, HEADER + GOOD + BAD)
    # then the good ones are in the inventory, normalized, and each bad line is named
    assert out == ["3 created, 0 updated, 6 errors"]
    assert [line.split(":")[:2] for line in err] == [
        ["line 5", " number"], ["line 6", " number"], ["line 7", " type"], ["line 8", " capabilities"],
        ["line 9", " monthly_cost"], ["line 10", " monthly_cost"]]
    london = PhoneNumber.objects.get(number="+442079460958")
    assert (london.country, london.type, london.capabilities, london.carrier) == ("GB", "local", ["sms"], "carrierx")
    assert london.monthly_cost == Decimal("0.4000") and london.status == NumberStatus.AVAILABLE
    assert PhoneNumber.objects.get(number="72345").type == "short_code"
    assert NumberEvent.unscoped.filter(kind="imported").count() == 3


def test_import_numbers_is_idempotent_and_updates_descriptions_not_holdings(tmp_path):
    _import(tmp_path, HEADER + GOOD)
    tenant = TenantFactory()
    lease = number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    # when the same numbers come again with a new price
    out, _ = _import(tmp_path, HEADER + GOOD.replace("1.2500", "1.5000"))
    # then nothing is duplicated, the price changed and the lease still holds its number
    assert out == ["0 created, 3 updated, 0 errors"]
    assert PhoneNumber.objects.count() == 3
    number = PhoneNumber.objects.get(number="+14155550123")
    assert number.monthly_price == Decimal("1.5000")
    assert number.pk == lease.number_id and number.status == NumberStatus.LEASED and number.holder == tenant
    assert NumberEvent.unscoped.filter(kind="imported").count() == 3


def test_import_numbers_fails_cleanly_on_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_numbers", str(tmp_path / "missing.csv"))


def test_seed_demo_stocks_the_simulator_idempotently():
    call_command("seed_demo", stdout=io.StringIO())
    counts = {c: PhoneNumber.objects.filter(country=c, type="mobile", carrier="simulator").count()
              for c in ["US", "GB", "DE", "FR", "CN", "IN", "BR"]}
    assert all(count >= 50 for count in counts.values()), counts
    assert PhoneNumber.objects.filter(type="local").count() >= 4
    assert PhoneNumber.objects.filter(type="toll_free").count() >= 2
    assert PhoneNumber.objects.filter(type="short_code").exists()
    total = PhoneNumber.objects.count()
    assert PhoneNumber.objects.values("number").distinct().count() == total
    # run again: the same numbers, none added
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert PhoneNumber.objects.count() == total and "0 added" in out.getvalue()


# --- Admin ----------------------------------------------------------------------------------------


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser(email="manager@smsportal.example.com", password=PASSWORD)
    login_verified(client, user)  # admin wants a 2FA-verified staff session
    return user


def test_admin_lists_the_inventory_and_shows_history(client, staff):
    number = stock(2)[0]
    number_lease_acquire(tenant=TenantFactory(), country="US", ttl_seconds=600)
    assert client.get(reverse("admin:numbers_phonenumber_changelist"), {"status": "leased"}).status_code == 200
    assert client.get(reverse("admin:numbers_phonenumber_change", args=[number.pk])).status_code == 200
    assert client.get(reverse("admin:numbers_numberlease_changelist")).status_code == 200
    assert client.get(reverse("admin:numbers_numberevent_changelist")).status_code == 200


def test_admin_actions_go_through_the_services(client, staff):
    leased, spare = stock(2)
    number_lease_acquire(tenant=TenantFactory(), country="US", ttl_seconds=600)
    url = reverse("admin:numbers_phonenumber_changelist")
    # retiring a held number is refused; force-release then retire works
    client.post(url, {"action": "retire", "_selected_action": [leased.pk, spare.pk]})
    assert dict(PhoneNumber.objects.values_list("pk", "status")) == {leased.pk: "leased", spare.pk: "retired"}
    client.post(url, {"action": "force_release", "_selected_action": [leased.pk]})
    leased.refresh_from_db()
    assert leased.status == "quarantined" and leased.holder is None
    actor = NumberEvent.unscoped.filter(number=leased, kind="released").get().actor
    assert actor == staff.email


def test_import_numbers_refuses_a_file_without_the_columns(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("number,country\n+14155550123,US\n")
    with pytest.raises(CommandError, match="lacks the column"):
        call_command("import_numbers", str(path))
    assert not PhoneNumber.objects.exists()
