"""Number prices and charging: rating a number (the tenant's list first), rental per day held and leases per
second at the hourly price from the usage rows, each complete day once (twice run, concurrent runs and
releases), owed charges, the command and the beat job; the prices on the numbers pages and API."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from numbers import services as numbers
from numbers.models import NumberAssignment, NumberType
from numbers.tests.factories import stock

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django_celery_beat.models import PeriodicTask

from accounts.services.audit import SYSTEM
from accounts.tests.factories import TenantFactory, login_verified
from billing import services
from billing.charges import charge_amount, number_charges_run
from billing.models import Balance, LedgerEntry, NumberCharge, NumberChargeStatus, NumberPrice
from billing.selectors import balances_unbalanced, number_price_get
from billing.tasks import number_charges_run_task

pytestmark = pytest.mark.django_db
HOUR = 3600
STARTED = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)  # March: 31 days, so a rental of 3.10 is 0.10 a day
USAGE_JOB = datetime(2026, 3, 4, 0, 5, tzinfo=UTC)
CHARGE_JOB = datetime(2026, 3, 4, 0, 30, tzinfo=UTC)
DAY1, DAY2, DAY3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


@pytest.fixture
def prices(settings):
    """The default list: US mobile 3.10 a month (0.10 a day in March), 0.36 an hour (0.0001 a second)."""
    settings.BILLING_ENABLED = True
    return NumberPrice.unscoped.create(number_type=NumberType.MOBILE, country="US", monthly_rental=Decimal("3.10"),
                                       lease_per_hour=Decimal("0.36"), currency="EUR", effective_from=date(2025, 1, 1))


@pytest.fixture
def tenant(prices):
    tenant = TenantFactory()
    _credit(tenant, "10.00")
    return tenant


def _credit(tenant, amount: str) -> None:
    services.balance_credit(tenant=tenant, amount=Decimal(amount), reason="test top-up", actor=SYSTEM)


def _assign(tenant, at: datetime, count: int = 1) -> list[NumberAssignment]:
    with time_machine.travel(at, tick=False):
        return [numbers.number_assign(tenant=tenant, country="US") for _ in range(count)]


def _lease(tenant, at: datetime, ttl_seconds: int):
    with time_machine.travel(at, tick=False):
        return numbers.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=ttl_seconds)


def _charges(**filters) -> dict[tuple[str, str], Decimal]:
    return {(c.kind, c.day.isoformat()): c.amount for c in NumberCharge.unscoped.filter(**filters).order_by("day")}


def _balance(tenant) -> Balance:
    return Balance.unscoped.get(tenant=tenant)


# --- Rating ---------------------------------------------------------------------------------------


def test_it_rates_a_number_by_the_tenants_own_price_first_then_the_default_in_force_that_day(prices):
    # given the default US mobile price, a newer default from March 3rd, A's own price, and a USD row
    a, b = TenantFactory(), TenantFactory()
    NumberPrice.unscoped.create(number_type="mobile", country="US", monthly_rental=Decimal("6.20"),
                                lease_per_hour=Decimal("0.72"), currency="EUR", effective_from=DAY3)
    own = NumberPrice.unscoped.create(tenant=a, number_type="mobile", country="US", monthly_rental=Decimal("1.55"),
                                      lease_per_hour=Decimal("0.18"), currency="EUR", effective_from=date(2025, 1, 1))
    NumberPrice.unscoped.create(number_type="mobile", country="US", monthly_rental=Decimal("1"),
                                lease_per_hour=Decimal("1"), currency="USD", effective_from=DAY1)
    # then B gets the default in force each day, A its own every day, and nobody a price for GB or local
    rate = number_price_get
    assert rate(tenant_id=b.pk, number_type="mobile", country="US", day=DAY2).monthly_rental == Decimal("3.10")
    assert rate(tenant_id=b.pk, number_type="mobile", country="US", day=DAY3).monthly_rental == Decimal("6.20")
    assert rate(tenant_id=a.pk, number_type="mobile", country="US", day=DAY3) == own
    assert rate(tenant_id=a.pk, number_type="mobile", country="GB", day=DAY3) is None
    assert rate(tenant_id=a.pk, number_type="local", country="US", day=DAY3) is None
    # and a tenant in USD gets only the USD row
    Balance.unscoped.create(tenant=b, currency="USD")
    assert rate(tenant_id=b.pk, number_type="mobile", country="US", day=DAY3).monthly_rental == Decimal("1")


def test_it_computes_a_days_rental_from_its_months_days_and_a_lease_by_the_second(prices):
    assert charge_amount(kind="rental", price=prices, day=DAY1, seconds=5) == Decimal("0.100000")
    assert charge_amount(kind="rental", price=prices, day=date(2026, 2, 10), seconds=86400) == Decimal("0.110714")
    assert charge_amount(kind="lease", price=prices, day=DAY1, seconds=7200) == Decimal("0.720000")
    assert charge_amount(kind="lease", price=prices, day=DAY1, seconds=1) == Decimal("0.000100")
    assert charge_amount(kind="lease", price=prices, day=DAY1, seconds=0) == Decimal("0")


def test_seed_demo_loads_a_number_price_for_every_country_and_type_of_its_stock(db):
    from numbers.inventory import demo_stock
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())  # idempotent
    stocked = {(fields["type"], fields["country"]) for fields in demo_stock()}
    priced = set(NumberPrice.unscoped.filter(tenant=None).values_list("number_type", "country"))
    assert stocked <= priced and NumberPrice.unscoped.count() == len(priced)
    assert NumberPrice.unscoped.get(number_type="short_code", country="US").monthly_rental == Decimal("1000")


# --- Charging -------------------------------------------------------------------------------------


def test_it_charges_each_day_held_and_each_lease_second_once_debiting_the_balance(tenant):
    # given a number rented since March 1st 14:00 and a 2-hour lease on March 2nd, recorded by the usage jobs
    stock(2)
    _assign(tenant, STARTED)
    _lease(tenant, datetime(2026, 3, 2, 10, tzinfo=UTC), 2 * HOUR)
    numbers.leases_release_expired(now=datetime(2026, 3, 2, 12, 1, tzinfo=UTC))
    numbers.numbers_usage_record_open(now=USAGE_JOB)
    # when the charge job runs, and again
    first = number_charges_run(now=CHARGE_JOB)
    second = number_charges_run(now=CHARGE_JOB + timedelta(hours=3))
    # then three days of rental (0.10 each, whatever the seconds) and 7,200 lease seconds (0.72), once
    assert (first["charged"], second["charged"], second["skipped"]) == (4, 0, 0)
    assert _charges(tenant=tenant) == {("rental", "2026-03-01"): Decimal("0.1"), ("rental", "2026-03-02"):
                                       Decimal("0.1"), ("lease", "2026-03-02"): Decimal("0.72"),
                                       ("rental", "2026-03-03"): Decimal("0.1")}
    entries = LedgerEntry.unscoped.filter(tenant=tenant, kind__in=["rental", "lease"])
    assert sorted(e.balance_delta for e in entries) == [Decimal("-0.72")] + [Decimal("-0.1")] * 3
    assert all(c.ledger_entry_id and c.status == "charged" for c in NumberCharge.unscoped.all())
    assert _balance(tenant).balance == Decimal("8.98")
    assert balances_unbalanced() == []


def test_a_day_still_open_to_a_writer_waits_and_a_release_after_the_usage_job_is_charged_once(tenant):
    # given a rental whose usage was recorded up to March 3rd's midnight, charged then
    stock(1)
    (assignment,) = _assign(tenant, STARTED)
    numbers.numbers_usage_record_open(now=datetime(2026, 3, 3, 0, 5, tzinfo=UTC))
    assert number_charges_run(now=datetime(2026, 3, 3, 0, 30, tzinfo=UTC))["charged"] == 2
    # when it is released on March 4th before that night's usage job: its release records March 3rd and 4th
    with time_machine.travel(datetime(2026, 3, 4, 0, 2, tzinfo=UTC), tick=False):
        numbers.number_release_assignment(tenant=tenant, assignment=assignment)
    number_charges_run(now=CHARGE_JOB)
    number_charges_run(now=datetime(2026, 3, 5, 0, 30, tzinfo=UTC))
    # then every day is charged once: March 4th too (two minutes held is a day)
    assert list(_charges(tenant=tenant)) == [("rental", f"2026-03-0{day}") for day in (1, 2, 3, 4)]
    assert _balance(tenant).balance == Decimal("9.60")
    assert balances_unbalanced() == []


def test_a_lease_waiting_for_the_sweep_leaves_its_day_for_a_later_run(tenant, settings):
    # given one number, leased 10:00-11:00 on March 3rd (swept), then again 22:00-23:00, not swept yet
    settings.NUMBER_QUARANTINE_SECONDS = 0
    stock(1)
    _lease(tenant, datetime(2026, 3, 3, 10, tzinfo=UTC), HOUR)
    numbers.leases_release_expired(now=datetime(2026, 3, 3, 11, 1, tzinfo=UTC))
    numbers.leases_release_expired(now=datetime(2026, 3, 3, 11, 2, tzinfo=UTC))  # the number is back
    _lease(tenant, datetime(2026, 3, 3, 22, tzinfo=UTC), HOUR)
    # when the charge job runs before the sweep records the second lease
    early = number_charges_run(now=CHARGE_JOB)
    # then the day's row (one hour so far) waits; after the sweep the day is charged once, for both hours
    assert (early["pending"], early["charged"], NumberCharge.unscoped.count()) == (1, 0, 0)
    numbers.leases_release_expired(now=CHARGE_JOB + timedelta(minutes=1))
    assert number_charges_run(now=CHARGE_JOB + timedelta(minutes=2))["charged"] == 1
    assert _charges(tenant=tenant) == {("lease", "2026-03-03"): Decimal("0.72")}


def test_a_number_without_a_price_is_left_uncharged_until_it_has_one(tenant, prices):
    stock(1, country="GB")
    with time_machine.travel(STARTED, tick=False):
        numbers.number_assign(tenant=tenant, country="GB")
    numbers.numbers_usage_record_open(now=USAGE_JOB)
    assert number_charges_run(now=CHARGE_JOB)["unpriced"] == 3
    assert not NumberCharge.unscoped.exists()
    # when a GB price in force since before those days is added, the next run charges them
    NumberPrice.unscoped.create(number_type="mobile", country="GB", monthly_rental=Decimal("6.20"),
                                lease_per_hour=Decimal("0.1"), currency="EUR", effective_from=date(2026, 1, 1))
    assert number_charges_run(now=CHARGE_JOB + timedelta(days=1))["charged"] == 3
    assert _balance(tenant).balance == Decimal("9.40")


def test_a_rental_the_balance_cannot_cover_is_left_owed_then_collected_after_a_top_up(prices):
    # given a prepaid tenant with 0.15 and three days of rental (0.10 each)
    tenant = TenantFactory()
    _credit(tenant, "0.15")
    stock(1)
    _assign(tenant, STARTED)
    numbers.numbers_usage_record_open(now=USAGE_JOB)
    # when charged: the first is paid, the others are owed (the balance never passes its credit limit)
    counts = number_charges_run(now=CHARGE_JOB)
    assert (counts["charged"], counts["owed"]) == (1, 2)
    assert sorted(NumberCharge.unscoped.values_list("status", flat=True)) == ["charged", "owed", "owed"]
    assert NumberCharge.unscoped.filter(status="owed", ledger_entry__isnull=False).count() == 0
    assert _balance(tenant).balance == Decimal("0.05")
    # and with a credit limit of 0.10 (postpaid) one more goes through, down to -0.05
    Balance.unscoped.filter(tenant=tenant).update(credit_limit=Decimal("0.10"))
    assert number_charges_run(now=CHARGE_JOB + timedelta(hours=1))["collected"] == 1
    assert _balance(tenant).balance == Decimal("-0.05")
    # when topped up, the next run collects the rest, once
    _credit(tenant, "1.00")
    assert number_charges_run(now=CHARGE_JOB + timedelta(hours=2))["collected"] == 1
    assert number_charges_run(now=CHARGE_JOB + timedelta(hours=3))["collected"] == 0
    assert not NumberCharge.unscoped.filter(status=NumberChargeStatus.OWED).exists()
    assert _balance(tenant).balance == Decimal("0.85")
    assert LedgerEntry.unscoped.filter(tenant=tenant, kind="rental").count() == 3
    assert balances_unbalanced() == []


def test_the_command_charges_one_day_or_refuses_a_day_not_complete(tenant):
    stock(1)
    _assign(tenant, STARTED)
    numbers.numbers_usage_record_open(now=USAGE_JOB)
    out = StringIO()
    with time_machine.travel(CHARGE_JOB, tick=False):
        call_command("numbers_charge", "--day", "2026-03-02", stdout=out)
        assert list(_charges()) == [("rental", "2026-03-02")]
        assert "charged 1" in out.getvalue()
        for bad in ("2026-03-04", "yesterday", "2026-02-30"):
            with pytest.raises(CommandError, match="--day"):
                call_command("numbers_charge", "--day", bad)
        call_command("numbers_charge", stdout=out)  # the rest, as the beat job does
    assert list(_charges()) == [("rental", "2026-03-01"), ("rental", "2026-03-02"), ("rental", "2026-03-03")]


def test_the_task_is_scheduled_daily_after_the_usage_job_and_does_nothing_with_billing_off(tenant, settings):
    task = PeriodicTask.objects.get(task="billing.tasks.number_charges_run_task")
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("30", "0", "UTC")
    assert task.enabled
    stock(1)
    _assign(tenant, STARTED)
    numbers.numbers_usage_record_open(now=USAGE_JOB)
    settings.BILLING_ENABLED = False
    with time_machine.travel(CHARGE_JOB, tick=False):
        assert number_charges_run_task.apply().get() == {}
        assert not NumberCharge.unscoped.exists()
        settings.BILLING_ENABLED = True
        assert number_charges_run_task.apply().get()["charged"] == 3


def _in_thread(function):
    try:
        return function()
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_and_releases_at_once_charge_each_day_once(prices):
    # given 30 numbers rented since March 1st 14:00, their usage recorded up to March 4th's midnight
    tenant = TenantFactory()
    _credit(tenant, "100.00")
    stock(30)
    assignments = _assign(tenant, STARTED, count=30)
    numbers.numbers_usage_record_open(now=USAGE_JOB)
    barrier = threading.Barrier(3)

    def run():
        barrier.wait(timeout=30)
        return number_charges_run(now=CHARGE_JOB)

    def release():
        barrier.wait(timeout=30)
        for assignment in assignments[:10]:
            numbers.number_release_assignment(tenant=tenant, assignment=assignment)

    # when two charge runs and ten releases (adding March 4th's seconds) start at once
    with time_machine.travel(CHARGE_JOB, tick=False), ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_in_thread, run), pool.submit(_in_thread, run), pool.submit(_in_thread, release)]
        results = [future.result() for future in futures]
    # then between them each number-day was charged once, and the ledger is the balance
    assert sum(r["charged"] for r in results[:2]) == 90
    assert NumberCharge.unscoped.count() == 90 == LedgerEntry.unscoped.filter(kind="rental").count()
    assert _balance(tenant).balance == Decimal("91.00")
    assert balances_unbalanced() == []
    # and the next night's run charges March 4th once for every number: the released ones, and the held ones
    # once the usage job has recorded them (pending before)
    assert number_charges_run(now=CHARGE_JOB + timedelta(days=1))["pending"] == 0
    assert NumberCharge.unscoped.filter(day=date(2026, 3, 4)).count() == 10
    numbers.numbers_usage_record_open(now=USAGE_JOB + timedelta(days=1))
    number_charges_run(now=CHARGE_JOB + timedelta(days=1))
    assert NumberCharge.unscoped.filter(day=date(2026, 3, 4)).count() == 30
    assert balances_unbalanced() == []


# --- Prices on the numbers pages and API ----------------------------------------------------------


@pytest.fixture
def priced(world, prices):
    """The default US mobile price, and A's own (1.55 a month, 0.18 an hour)."""
    NumberPrice.unscoped.create(tenant=world.a.tenant, number_type="mobile", country="US",
                                monthly_rental=Decimal("1.55"), lease_per_hour=Decimal("0.18"), currency="EUR",
                                effective_from=date(2025, 1, 1))
    return world


def test_the_numbers_api_shows_each_tenants_own_number_price(priced, api):
    stock(3)
    price = {"monthly_rental": "1.5500", "lease_per_hour": "0.1800", "currency": "EUR"}
    available = api.get("/v1/numbers/available?country=US&type=mobile", **priced.a.auth).json()["results"]
    assert available and all(n["price"] == price for n in available)
    other = api.get("/v1/numbers/available?country=US&type=mobile", **priced.b.auth).json()["results"]
    assert other[0]["price"] == {"monthly_rental": "3.1000", "lease_per_hour": "0.3600", "currency": "EUR"}
    rented = api.post("/v1/numbers", {"country": "US", "type": "mobile"}, format="json", **priced.a.auth)
    assert rented.status_code == 201 and rented.json()["price"] == price
    lease = api.post("/v1/numbers/leases", {"country": "US", "ttl_seconds": 600}, format="json", **priced.a.auth)
    assert lease.status_code == 201 and lease.json()["price"] == price
    assert api.get(f"/v1/numbers/leases/{lease.json()['id']}", **priced.a.auth).json()["price"] == price
    held = api.get("/v1/numbers", **priced.a.auth).json()["results"]
    us = [n for n in held if n["country"] == "US" and n["type"] == "mobile"]
    assert len(us) >= 2 and all(n["price"] == price for n in us)


def test_the_numbers_pages_show_the_rental_and_lease_prices(priced, client):
    stock(2)
    login_verified(client, priced.a.owner)
    search = client.get("/portal/numbers/search/", {"country": "US"}).content.decode()
    assert "1.5500 EUR" in search and "0.1800 EUR" in search
    assert "Lease prices" in search
    lease = numbers.number_lease_acquire(tenant=priced.a.tenant, country="US", ttl_seconds=600)
    assert "0.1800 EUR an hour" in client.get(f"/portal/numbers/leases/{lease.public_id}/").content.decode()
    listing = client.get("/portal/numbers/").content.decode()
    assert "0.1800 EUR/hour" in listing
