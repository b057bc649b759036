"""Price lists as CSV: prices_import (command and service), idempotent, every bad line named; export; seed_demo."""
from __future__ import annotations

from decimal import Decimal
from io import StringIO
from numbers.inventory import DEMO_STOCK

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.tests.factories import login_verified
from billing.demo import DEMO_PRICES
from billing.models import NumberPrice, Price
from billing.prices import number_prices_csv, number_prices_import, prices_csv, prices_import

pytestmark = pytest.mark.django_db

HEADER = "prefix,country,operator,message_type,price,currency,effective_from,min_monthly_volume\n"
GOOD = HEADER + ",GB,,,0.0350,EUR,2025-01-01,\n1415,,,otp,0.0079,EUR,2025-01-01,\n,US,,,0.0069,EUR,2025-01-01,100000\n"


def _file(tmp_path, text: str):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    return path


def test_it_imports_the_default_list_and_a_second_run_changes_nothing(db, tmp_path):
    out = StringIO()
    call_command("prices_import", str(_file(tmp_path, GOOD)), stdout=out)
    assert "3 prices added" in out.getvalue()
    rows = {(p.prefix, p.country, p.message_type, p.price, p.min_monthly_volume) for p in Price.unscoped.all()}
    assert rows == {("", "GB", "", Decimal("0.035"), 0), ("1415", "", "otp", Decimal("0.0079"), 0),
                    ("", "US", "", Decimal("0.0069"), 100_000)}
    assert all(p.tenant_id is None for p in Price.unscoped.all())
    # when it runs again: nothing added or changed
    out = StringIO()
    call_command("prices_import", str(_file(tmp_path, GOOD)), stdout=out)
    assert "0 prices added, 0 changed, 3 already there" in out.getvalue()
    assert Price.unscoped.count() == 3


def test_a_changed_price_of_the_same_key_is_updated_not_added(db):
    prices_import(tenant=None, text=GOOD)
    result = prices_import(tenant=None, text=HEADER + ",GB,,,0.0330,EUR,2025-01-01,\n")
    assert (result.created, result.updated) == (0, 1)
    assert Price.unscoped.get(country="GB").price == Decimal("0.0330")


def test_with_tenant_it_fills_that_tenants_list(world, tmp_path):
    call_command("prices_import", str(_file(tmp_path, GOOD)), "--tenant", world.a.tenant.slug, stdout=StringIO())
    assert set(Price.unscoped.values_list("tenant_id", flat=True)) == {world.a.tenant.pk}
    with pytest.raises(CommandError, match="no tenant"):
        call_command("prices_import", str(_file(tmp_path, GOOD)), "--tenant", "nobody", stdout=StringIO())


def test_every_bad_line_is_named_and_nothing_is_written(db, tmp_path):
    bad = HEADER + (",GB,,,0.0350,EUR,2025-01-01,\n"
                    ",,,,0.01,EUR,,\n"            # line 3: no destination
                    "44x,,,,0.01,EUR,,\n"         # line 4: prefix
                    ",GB,,sms,0.01,EUR,,\n"       # line 5: type
                    ",GB,,,cheap,EUR,,\n"         # line 6: price
                    ",GB,,,0.0000001,EUR,,\n"     # line 7: too many places
                    ",GB,,,0.01,EURO,,\n"         # line 8: currency
                    ",GB,,,0.01,EUR,yesterday,\n"  # line 9: date
                    ",GB,,,0.01,EUR,,lots\n"      # line 10: volume
                    ",GB,,,0.0360,EUR,2025-01-01,\n")  # line 11: line 2 again
    err = StringIO()
    with pytest.raises(CommandError, match="9 bad lines: nothing imported"):
        call_command("prices_import", str(_file(tmp_path, bad)), stdout=StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert [line.split(":")[1] for line in lines] == [str(n) for n in range(3, 12)]
    assert "prefix or a country" in lines[0] and "message_type 'sms'" in lines[2] and "line 2" in lines[8]
    assert Price.unscoped.count() == 0


def test_a_wrong_header_is_refused(db):
    result = prices_import(tenant=None, text="country,price\nGB,0.01\n")
    assert result.errors == [(1, f"the header must be {HEADER.strip()}")]


def test_the_export_imports_back_unchanged(db):
    prices_import(tenant=None, text=GOOD)
    again = prices_import(tenant=None, text=prices_csv(Price.unscoped.all()))
    assert (again.created, again.updated, again.unchanged, again.errors) == (0, 0, 3, [])


def test_seed_demo_loads_a_default_price_for_every_country_of_its_number_stock_and_more(db):
    call_command("seed_demo", stdout=StringIO())
    countries = set(Price.unscoped.filter(tenant=None, prefix="").values_list("country", flat=True))
    stock = {row[0] for row in DEMO_STOCK}
    assert stock <= countries and len(countries - stock) >= 3 and countries == set(DEMO_PRICES)
    count = Price.unscoped.count()
    call_command("seed_demo", stdout=StringIO())
    assert Price.unscoped.count() == count


# --- number prices (--numbers) ------------------------------------------------------------------------------

NUMBER_HEADER = "number_type,country,monthly_rental,lease_per_hour,currency,effective_from\n"
NUMBERS = NUMBER_HEADER + "mobile,GB,2.50,0.10,EUR,2025-01-01\nlocal,us,1.10,0.05,eur,2025-01-01\n"


def test_numbers_imports_number_prices_and_a_second_run_changes_nothing(db, tmp_path):
    out = StringIO()
    call_command("prices_import", str(_file(tmp_path, NUMBERS)), "--numbers", stdout=out)
    assert "the default number prices: 2 prices added" in out.getvalue()
    rows = {(p.tenant_id, p.number_type, p.country, p.monthly_rental, p.lease_per_hour, p.currency)
            for p in NumberPrice.unscoped.all()}
    assert rows == {(None, "mobile", "GB", Decimal("2.50"), Decimal("0.10"), "EUR"),
                    (None, "local", "US", Decimal("1.10"), Decimal("0.05"), "EUR")}
    assert Price.unscoped.count() == 0  # message prices untouched
    out = StringIO()
    call_command("prices_import", str(_file(tmp_path, NUMBERS)), "--numbers", stdout=out)
    assert "0 prices added, 0 changed, 2 already there" in out.getvalue()
    # a changed price of the same key is updated, not added
    result = number_prices_import(tenant=None, text=NUMBER_HEADER + "mobile,GB,2.75,0.10,EUR,2025-01-01\n")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 0)
    assert NumberPrice.unscoped.get(country="GB").monthly_rental == Decimal("2.75")


def test_numbers_with_tenant_fills_its_own_list_and_is_audited(world, tmp_path):
    from accounts.models import AuditEvent

    call_command("prices_import", str(_file(tmp_path, NUMBERS)), "--numbers", "--tenant", world.a.tenant.slug,
                 stdout=StringIO())
    assert set(NumberPrice.unscoped.values_list("tenant_id", flat=True)) == {world.a.tenant.pk}
    assert AuditEvent.unscoped.filter(action="number_prices.import", tenant=world.a.tenant).exists()


def test_numbers_names_every_bad_line_and_writes_nothing(db, tmp_path):
    bad = NUMBER_HEADER + ("mobile,GB,2.50,0.10,EUR,2025-01-01\n"
                           "pager,GB,2.50,0.10,EUR,\n"         # line 3: type
                           "mobile,GBR,2.50,0.10,EUR,\n"       # line 4: country
                           "mobile,GB,-1,0.10,EUR,\n"          # line 5: rental
                           "mobile,GB,1,cheap,EUR,\n"          # line 6: lease
                           "mobile,GB,1,0.1,EURO,\n"           # line 7: currency
                           "mobile,GB,1,0.1,EUR,soon\n"        # line 8: date
                           "mobile,GB,3.00,0.20,EUR,2025-01-01\n")  # line 9: line 2 again
    err = StringIO()
    with pytest.raises(CommandError, match="7 bad lines: nothing imported"):
        call_command("prices_import", str(_file(tmp_path, bad)), "--numbers", stdout=StringIO(), stderr=err)
    lines = err.getvalue().splitlines()
    assert [line.split(":")[1] for line in lines] == [str(n) for n in range(3, 10)]
    assert "number_type 'pager'" in lines[0] and "monthly_rental" in lines[2] and "line 2" in lines[6]
    assert NumberPrice.unscoped.count() == 0
    # a message price file given to --numbers is refused by its header
    assert number_prices_import(tenant=None, text=GOOD).errors == [(1, f"the header must be {NUMBER_HEADER.strip()}")]


def test_number_prices_export_imports_back_unchanged(db):
    number_prices_import(tenant=None, text=NUMBERS)
    again = number_prices_import(tenant=None, text=number_prices_csv(NumberPrice.unscoped.all()))
    assert (again.created, again.updated, again.unchanged, again.errors) == (0, 0, 2, [])


@pytest.fixture
def staff_client(db):
    from accounts.models import User

    staff = User.objects.create_superuser(email="manager@smsportal.example.com", password="x-Pass-2026!")
    return login_verified(Client(), staff)


def test_admin_imports_edits_and_exports_number_prices(staff_client):
    page = staff_client.get("/admin/billing/numberprice/")
    assert "Import number prices (CSV)" in page.content.decode()
    upload = SimpleUploadedFile("numbers.csv", NUMBERS.encode())
    response = staff_client.post("/admin/billing/numberprice/import/", {"tenant": "", "prices": upload})
    assert response.status_code == 302 and NumberPrice.unscoped.count() == 2
    bad = SimpleUploadedFile("bad.csv", (NUMBER_HEADER + "pager,GB,1,1,EUR,\n").encode())
    page = staff_client.post("/admin/billing/numberprice/import/", {"tenant": "", "prices": bad})
    assert "line 2: number_type" in page.content.decode() and NumberPrice.unscoped.count() == 2
    gb = NumberPrice.unscoped.get(country="GB")
    response = staff_client.post(f"/admin/billing/numberprice/{gb.pk}/change/", {
        "tenant": "", "number_type": "mobile", "country": "GB", "monthly_rental": "3.10", "lease_per_hour": "0.12",
        "currency": "EUR", "effective_from": "2025-01-01"})
    assert response.status_code == 302
    assert NumberPrice.unscoped.get(pk=gb.pk).monthly_rental == Decimal("3.10")
    export = staff_client.post("/admin/billing/numberprice/", {
        "action": "number_prices_export", "_selected_action": list(NumberPrice.unscoped.values_list("pk", flat=True))})
    assert export["Content-Type"] == "text/csv"
    assert export.content.decode().splitlines() == [NUMBER_HEADER.strip(), "mobile,GB,3.100000,0.120000,EUR,2025-01-01",
                                                    "local,US,1.100000,0.050000,EUR,2025-01-01"]
