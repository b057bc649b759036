"""Price lists as CSV: prices_import (command and service), idempotent, every bad line named; export; seed_demo."""
from __future__ import annotations

from decimal import Decimal
from io import StringIO
from numbers.inventory import DEMO_STOCK

import pytest
from django.core.management import CommandError, call_command

from billing.demo import DEMO_PRICES
from billing.models import Price
from billing.prices import prices_csv, prices_import

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
