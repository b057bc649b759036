"""Usage for billing while holdings run: the daily job records open holdings up to midnight, once."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from numbers import services
from numbers.models import NumberAssignment, NumberLease, NumberUsage
from numbers.tasks import numbers_usage_record_open_task
from numbers.tests.factories import stock

import pytest
import time_machine
from django.db import connection
from django.db.models import Sum

from accounts.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
HOUR, DAY = 3600, 24 * 3600
STARTED = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)  # a Sunday afternoon
JOB = datetime(2026, 3, 4, 0, 5, tzinfo=UTC)  # the daily run three days later
CUT = datetime(2026, 3, 4, tzinfo=UTC)


@pytest.fixture
def tenant():
    return TenantFactory()


def _rows(**filters) -> dict[str, tuple[int, int]]:
    return {u.day.isoformat(): (u.seconds, u.holdings) for u in NumberUsage.unscoped.filter(**filters).order_by("day")}


def _totals(**filters) -> tuple[int, int]:
    totals = NumberUsage.unscoped.filter(**filters).aggregate(seconds=Sum("seconds"), holdings=Sum("holdings"))
    return totals["seconds"] or 0, totals["holdings"] or 0


def _assign(tenant, at: datetime, count: int = 1) -> list[NumberAssignment]:
    with time_machine.travel(at, tick=False):
        return [services.number_assign(tenant=tenant, country="US") for _ in range(count)]


def _lease(tenant, at: datetime, ttl_seconds: int) -> NumberLease:
    with time_machine.travel(at, tick=False):
        return services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=ttl_seconds)


# --- The daily job --------------------------------------------------------------------------------


def test_it_records_an_open_assignment_up_to_midnight_once(tenant):
    # given an assignment running for three days (since Sunday 14:00)
    stock(1)
    (assignment,) = _assign(tenant, STARTED)
    # when the daily job runs, as the task, and then once more for the same midnight
    with time_machine.travel(JOB, tick=False):
        first = numbers_usage_record_open_task.apply().get()
    second = services.numbers_usage_record_open(now=JOB + timedelta(hours=5))
    # then the partial first day (with the one holding) and two full days, and nothing more the second time
    assert first == {"assignment": 1, "lease": 0} and second == {"assignment": 0, "lease": 0}
    assert _rows(tenant=tenant, kind="assignment") == {
        "2026-03-01": (10 * HOUR, 1), "2026-03-02": (DAY, 0), "2026-03-03": (DAY, 0)}
    assignment.refresh_from_db()
    assert assignment.usage_recorded_until == CUT and assignment.ended_at is None


def test_a_release_after_the_job_adds_only_the_rest(tenant):
    # given the job has recorded the assignment up to Wednesday midnight, and the caller's copy is stale
    stock(1)
    (assignment,) = _assign(tenant, STARTED)
    services.numbers_usage_record_open(now=JOB)
    assert assignment.usage_recorded_until is None
    # when the tenant releases it on Wednesday at 09:30
    released_at = CUT + timedelta(hours=9, minutes=30)
    with time_machine.travel(released_at, tick=False):
        assert services.number_release_assignment(tenant=tenant, assignment=assignment) is True
    # then only Wednesday is added: every second held is counted once, the holding once
    assert _rows(tenant=tenant)["2026-03-04"] == (9 * HOUR + 30 * 60, 0)
    assert _totals(tenant=tenant) == ((released_at - STARTED).total_seconds(), 1)
    # and a later run finds nothing to record
    assert services.numbers_usage_record_open(now=JOB + timedelta(days=1)) == {"assignment": 0, "lease": 0}
    assert _totals(tenant=tenant) == ((released_at - STARTED).total_seconds(), 1)


def test_daily_runs_and_a_forced_release_add_up_to_the_time_held(tenant):
    # given an assignment recorded by the daily runs, Wednesday's missed
    stock(1)
    (assignment,) = _assign(tenant, STARTED)
    for day in (2, 3, 5):
        services.numbers_usage_record_open(now=datetime(2026, 3, day, 0, 5, tzinfo=UTC))
    # when an account manager force-releases the number on Thursday evening
    released_at = datetime(2026, 3, 5, 18, 0, tzinfo=UTC)
    with time_machine.travel(released_at, tick=False):
        assert services.number_force_release(number=assignment.number) is True
    # then one row per day, the holding counted on Sunday only, and the total is the time held
    assert _rows(tenant=tenant) == {"2026-03-01": (10 * HOUR, 1), "2026-03-02": (DAY, 0), "2026-03-03": (DAY, 0),
                                    "2026-03-04": (DAY, 0), "2026-03-05": (18 * HOUR, 0)}
    assert _totals(tenant=tenant) == ((released_at - STARTED).total_seconds(), 1)


def test_a_holding_started_today_is_left_to_tomorrows_run_or_its_release(tenant):
    # given an assignment started after midnight
    stock(1)
    (assignment,) = _assign(tenant, CUT + timedelta(minutes=1))
    # when the job runs, and then the tenant releases it
    assert services.numbers_usage_record_open(now=JOB) == {"assignment": 0, "lease": 0}
    assert not NumberUsage.unscoped.exists()
    with time_machine.travel(CUT + timedelta(minutes=61), tick=False):
        services.number_release_assignment(tenant=tenant, assignment=assignment)
    # then the release records all of it, with the holding
    assert _rows(tenant=tenant) == {"2026-03-04": (HOUR, 1)}


def test_the_job_adds_to_the_row_of_an_earlier_holding_of_the_number_that_day(tenant, settings):
    # given a number assigned for a minute on Tuesday morning, then assigned again an hour later
    settings.NUMBER_QUARANTINE_SECONDS = 0
    stock(1)
    tuesday = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    (first,) = _assign(tenant, tuesday)
    with time_machine.travel(tuesday + timedelta(seconds=60), tick=False):
        services.number_release_assignment(tenant=tenant, assignment=first)
    services.leases_release_expired(now=tuesday + timedelta(seconds=60))  # back to the pool
    _assign(tenant, tuesday + timedelta(hours=1))
    # when the job runs at midnight
    services.numbers_usage_record_open(now=JOB)
    # then Tuesday's row holds both: the minute and the 14 hours, and two holdings
    assert _rows(tenant=tenant) == {"2026-03-03": (60 + 14 * HOUR, 2)}


# --- Leases ---------------------------------------------------------------------------------------


def test_a_lease_spanning_midnight_is_recorded_by_the_job_then_by_the_sweep(tenant):
    # given a two-hour lease from Tuesday 23:00
    stock(1)
    lease = _lease(tenant, CUT - timedelta(hours=1), 2 * HOUR)
    # when the job runs at 00:05 and the sweep releases the lease after its end
    assert services.numbers_usage_record_open(now=JOB) == {"assignment": 0, "lease": 1}
    assert _rows(tenant=tenant) == {"2026-03-03": (HOUR, 1)}
    services.leases_release_expired(now=CUT + timedelta(hours=1, seconds=30))
    # then Wednesday gets the hour after midnight (to the end, not to the sweep), and no second holding
    assert _rows(tenant=tenant) == {"2026-03-03": (HOUR, 1), "2026-03-04": (HOUR, 0)}
    lease.refresh_from_db()
    assert lease.release_reason == "expired" and lease.usage_recorded_until == CUT


def test_a_lease_released_early_after_the_job_adds_only_the_rest(tenant):
    stock(1)
    lease = _lease(tenant, CUT - timedelta(hours=1), 2 * HOUR)
    services.numbers_usage_record_open(now=JOB)
    with time_machine.travel(CUT + timedelta(minutes=30), tick=False):
        assert services.number_lease_release(tenant=tenant, lease=lease) is True
    assert _rows(tenant=tenant) == {"2026-03-03": (HOUR, 1), "2026-03-04": (30 * 60, 0)}


def test_a_lease_that_ended_before_midnight_is_left_to_the_sweep(tenant):
    # given a lease that ended at 23:59 and that the sweep has not released yet
    stock(1)
    lease = _lease(tenant, CUT - timedelta(hours=1), 59 * 60)
    # when the job runs, then the sweep
    assert services.numbers_usage_record_open(now=JOB) == {"assignment": 0, "lease": 0}
    services.leases_release_expired(now=JOB + timedelta(seconds=30))
    # then the sweep records it whole, once
    assert _rows(tenant=tenant) == {"2026-03-03": (59 * 60, 1)}
    lease.refresh_from_db()
    assert lease.usage_recorded_until is None


# --- Schedule -------------------------------------------------------------------------------------


def test_the_job_is_scheduled_daily_at_five_past_midnight_utc():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="numbers.tasks.numbers_usage_record_open_task")
    crontab = task.crontab
    assert task.enabled and task.interval is None
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year, crontab.day_of_week) == (
        "5", "0", "*", "*", "*")
    assert str(crontab.timezone) == "UTC"


# --- PostgreSQL: real concurrency -----------------------------------------------------------------


def _in_thread(function):
    """Runs `function` on this thread's own connection, closed at the end."""
    try:
        return function()
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_record_each_second_once(monkeypatch):
    # given 90 assignments and 30 leases open since Sunday 14:00, and small batches
    tenant = TenantFactory()
    stock(120)
    _assign(tenant, STARTED, count=90)
    for _ in range(30):
        _lease(tenant, STARTED, 5 * DAY)
    monkeypatch.setattr(services, "SWEEP_BATCH", 10)
    barrier = threading.Barrier(2)

    def run():
        barrier.wait(timeout=30)
        return services.numbers_usage_record_open(now=JOB)

    # when two runs start at once
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda _: _in_thread(run), range(2)))
    # then between them every holding was recorded once: each second once, each holding once
    assert sum(c["assignment"] for c in counts) == 90 and sum(c["lease"] for c in counts) == 30
    held = int((CUT - STARTED).total_seconds())
    assert _totals(kind="assignment") == (90 * held, 90) and _totals(kind="lease") == (30 * held, 30)
    assert NumberUsage.unscoped.count() == 120 * 3
    assert not NumberAssignment.unscoped.exclude(usage_recorded_until=CUT).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_releases_racing_two_runs_neither_double_count_nor_lose_seconds(monkeypatch):
    # given 60 assignments and 20 leases open since Sunday 14:00, and small batches
    tenant = TenantFactory()
    stock(80)
    assignments = _assign(tenant, STARTED, count=60)
    leases = [_lease(tenant, STARTED, 5 * DAY) for _ in range(20)]
    monkeypatch.setattr(services, "SWEEP_BATCH", 5)
    released_at = JOB + timedelta(minutes=1)
    barrier = threading.Barrier(3)

    def run():
        barrier.wait(timeout=30)
        return services.numbers_usage_record_open(now=JOB)

    def release():
        # stale copies, read before any run: the release must re-read usage_recorded_until under its lock
        barrier.wait(timeout=30)
        for assignment, lease in zip(assignments[::3], leases, strict=False):
            services.number_release_assignment(tenant=tenant, assignment=assignment)
            services.number_lease_release(tenant=tenant, lease=lease)
        for assignment in assignments[1::3]:
            services.number_force_release(number=assignment.number)

    # when two runs and the releases all start at once (the clock frozen a minute after the run's time)
    with time_machine.travel(released_at, tick=False), ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(_in_thread, run), pool.submit(_in_thread, run), pool.submit(_in_thread, release)]
        [future.result() for future in futures]
    # then each holding, released or not, has its time counted once and its holding once
    for holding in [*assignments, *leases]:
        holding.refresh_from_db()
        kind = "lease" if isinstance(holding, NumberLease) else "assignment"
        ended = holding.released_at if kind == "lease" else holding.ended_at
        end = ended or CUT
        seconds, holdings = _totals(number=holding.number, kind=kind)
        assert (seconds, holdings) == (int((end - STARTED).total_seconds()), 1), (holding, ended)
    assert NumberAssignment.unscoped.filter(ended_at=None).count() == 20
