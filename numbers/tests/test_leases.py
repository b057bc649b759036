"""Leases and assignments: acquire, extend, release, the expiry sweep, quarantine, usage (MONEY-6, CEL-7)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from numbers import services
from numbers.errors import (
    InvalidCallbackUrl,
    InvalidTtl,
    LeaseEnded,
    NoNumberAvailable,
    NumberHeld,
    NumberNotAvailable,
    NumberNotFound,
)
from numbers.models import NumberAssignment, NumberEvent, NumberLease, NumberStatus, NumberUsage, PhoneNumber
from numbers.tasks import numbers_release_expired_leases_task
from numbers.tests.factories import stock

import pytest
import time_machine
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = 24 * 3600


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def other():
    return TenantFactory()


def _released_events(lease: NumberLease) -> int:
    return NumberEvent.unscoped.filter(number=lease.number, kind="released", detail__contains=lease.public_id).count()


# --- Acquire --------------------------------------------------------------------------------------


def test_it_leases_an_available_number_of_the_country_and_type(tenant):
    # given numbers in two countries
    stock(2, country="GB")
    us = stock(1, country="US")[0]
    # when the tenant leases a US mobile number for 15 minutes
    with time_machine.travel(T0, tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="us", ttl_seconds=900,
                                              callback_url="https://example.com/hook")
    # then the lease holds the US number until T0 + 900 s, and the number says so
    assert lease.public_id.startswith("lse_") and lease.number == us
    assert lease.started_at == T0 and lease.expires_at == T0 + timedelta(seconds=900) and lease.released_at is None
    us.refresh_from_db()
    assert us.status == NumberStatus.LEASED and us.holder == tenant
    event = NumberEvent.unscoped.filter(number=us).order_by("id").last()
    assert (event.kind, event.from_status, event.to_status, event.tenant) == ("leased", "available", "leased", tenant)


@pytest.mark.parametrize("ttl", [0, 59, 30 * DAY + 1, "900"])
def test_it_refuses_a_ttl_outside_one_minute_to_thirty_days(tenant, ttl):
    stock(1)
    with pytest.raises(InvalidTtl) as error:
        services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=ttl)
    assert error.value.code == "invalid_ttl" and error.value.field == "ttl_seconds"
    assert not NumberLease.unscoped.exists()


def test_it_answers_no_number_available_and_writes_nothing(tenant, other):
    # given two US mobile numbers, one assigned, one quarantined after a lease, and a GB one
    first, second = stock(2)
    stock(1, country="GB")
    services.number_assign(tenant=other, number=first)
    services.number_lease_release(tenant=other, lease=services.number_lease_acquire(
        tenant=other, country="US", ttl_seconds=60))
    leases, events = NumberLease.unscoped.count(), NumberEvent.unscoped.count()
    # when the tenant asks for a US mobile number, or a US toll-free one
    for kind in ["mobile", "toll_free"]:
        with pytest.raises(NoNumberAvailable) as error:
            services.number_lease_acquire(tenant=tenant, country="US", type=kind, ttl_seconds=60)
        # then 409 no_number_available, and nothing half-made
        assert error.value.status == 409 and error.value.code == "no_number_available"
    assert NumberLease.unscoped.count() == leases and NumberEvent.unscoped.count() == events
    assert not PhoneNumber.objects.filter(holder=tenant).exists()
    second.refresh_from_db()
    assert second.status == NumberStatus.QUARANTINED


def test_the_database_allows_one_active_lease_per_number(tenant, other):
    lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60) if stock(1) else None
    with pytest.raises(IntegrityError), transaction.atomic():
        NumberLease.unscoped.create(tenant=other, number=lease.number, started_at=timezone.now(),
                                    expires_at=timezone.now() + timedelta(minutes=5))


def test_the_database_keeps_status_and_holder_consistent(tenant):
    number = stock(1)[0]
    with pytest.raises(IntegrityError), transaction.atomic():
        PhoneNumber.objects.filter(pk=number.pk).update(holder=tenant)  # available with a holder
    with pytest.raises(IntegrityError), transaction.atomic():
        PhoneNumber.objects.filter(pk=number.pk).update(status=NumberStatus.LEASED)  # leased by nobody


# --- Extend and release ---------------------------------------------------------------------------


def test_it_extends_a_running_lease_from_its_current_end(tenant):
    stock(1)
    with time_machine.travel(T0, tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    with time_machine.travel(T0 + timedelta(seconds=300), tick=False):
        services.number_lease_extend(tenant=tenant, lease=lease, ttl_seconds=900)
    lease.refresh_from_db()
    assert lease.expires_at == T0 + timedelta(seconds=1500)
    assert NumberEvent.unscoped.filter(number=lease.number, kind="extended").count() == 1


def test_it_refuses_to_extend_an_ended_or_foreign_lease_or_past_thirty_days(tenant, other):
    stock(1)
    with time_machine.travel(T0, tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
        with pytest.raises(NumberNotFound):
            services.number_lease_extend(tenant=other, lease=lease, ttl_seconds=600)
        with pytest.raises(InvalidTtl):
            services.number_lease_extend(tenant=tenant, lease=lease, ttl_seconds=30 * DAY)
    with time_machine.travel(T0 + timedelta(seconds=600), tick=False), pytest.raises(LeaseEnded) as error:
        services.number_lease_extend(tenant=tenant, lease=lease, ttl_seconds=600)
    assert error.value.code == "lease_ended"
    lease.refresh_from_db()
    assert lease.expires_at == T0 + timedelta(seconds=600)


def test_an_early_release_quarantines_the_number_and_records_usage_once(tenant, other, settings):
    settings.NUMBER_QUARANTINE_SECONDS = 3600
    stock(1)
    with time_machine.travel(T0, tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=DAY)
    with time_machine.travel(T0 + timedelta(seconds=120), tick=False):
        with pytest.raises(NumberNotFound):
            services.number_lease_release(tenant=other, lease=lease)
        assert services.number_lease_release(tenant=tenant, lease=lease) is True
        assert services.number_lease_release(tenant=tenant, lease=lease) is False  # idempotent
    assert lease.released_at == T0 + timedelta(seconds=120) and lease.release_reason == "released"
    number = PhoneNumber.objects.get(pk=lease.number_id)
    assert number.status == NumberStatus.QUARANTINED and number.holder is None
    assert number.quarantined_until == T0 + timedelta(seconds=120 + 3600)
    assert _released_events(lease) == 1
    usage = NumberUsage.unscoped.get()
    assert (usage.tenant, usage.kind, usage.day, usage.seconds, usage.holdings) == (tenant, "lease", T0.date(), 120, 1)


def test_usage_is_split_by_utc_day(tenant):
    stock(1)
    with time_machine.travel(datetime(2026, 3, 1, 18, 0, tzinfo=UTC), tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=DAY)
    services.leases_release_expired(now=datetime(2026, 3, 2, 18, 0, 30, tzinfo=UTC))
    rows = {u.day.isoformat(): (u.seconds, u.holdings, u.number_days) for u in NumberUsage.unscoped.all()}
    assert rows == {"2026-03-01": (6 * 3600, 1, pytest.approx(0.25)), "2026-03-02": (18 * 3600, 0, pytest.approx(0.75))}
    assert lease.number_id == NumberUsage.unscoped.first().number_id


# --- The sweep ------------------------------------------------------------------------------------


def test_the_sweep_releases_each_expired_lease_exactly_once_when_run_twice(tenant):
    # given three leases that ended and one that still runs
    stock(4)
    with time_machine.travel(T0, tick=False):
        ended = [services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60) for _ in range(3)]
        running = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    # when the job runs twice (the task, then the service again)
    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        first = numbers_release_expired_leases_task.apply().get()
        second = services.leases_release_expired()
    # then each ended lease is released once, quarantined, and the running one is untouched
    assert first == {"released": 3, "expiring_notified": 0, "returned": 0}
    assert second == {"released": 0, "expiring_notified": 0, "returned": 0}
    for lease in ended:
        lease.refresh_from_db()
        assert lease.release_reason == "expired" and lease.released_at == T0 + timedelta(seconds=61)
        assert _released_events(lease) == 1 and lease.number.status == NumberStatus.QUARANTINED
    running.refresh_from_db()
    assert running.released_at is None and running.number.status == NumberStatus.LEASED
    assert NumberUsage.unscoped.filter(kind="lease").count() == 3
    assert sum(NumberUsage.unscoped.values_list("seconds", flat=True)) == 3 * 60  # billed to the end, not the sweep


def test_a_lease_extended_after_the_sweep_read_it_is_not_released(tenant, monkeypatch):
    # given a lease that the sweep (on a node whose clock runs ahead) sees as ended
    stock(1)
    with time_machine.travel(T0, tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60)
    read = services._locked_ids

    def read_then_extend(queryset):
        ids = read(queryset)
        if queryset.model is NumberLease and ids:
            # the tenant extends between the sweep's read and its write
            with time_machine.travel(T0 + timedelta(seconds=59), tick=False):
                services.number_lease_extend(tenant=tenant, lease=lease, ttl_seconds=600)
        return ids

    monkeypatch.setattr(services, "_locked_ids", read_then_extend)
    # when the sweep runs
    counts = services.leases_release_expired(now=T0 + timedelta(seconds=61))
    # then the lease stays, with its new end
    assert counts["released"] == 0
    lease.refresh_from_db()
    assert lease.released_at is None and lease.expires_at == T0 + timedelta(seconds=660)
    assert lease.number.status == NumberStatus.LEASED and _released_events(lease) == 0


def test_a_number_returns_to_the_pool_after_its_cool_down(tenant, other, settings):
    settings.NUMBER_QUARANTINE_SECONDS = DAY
    stock(1)
    with time_machine.travel(T0, tick=False):
        lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60)
    end = T0 + timedelta(seconds=60)
    assert services.leases_release_expired(now=end) == {"released": 1, "expiring_notified": 0, "returned": 0}
    # during the cool-down nobody can lease it
    assert services.leases_release_expired(now=end + timedelta(seconds=DAY - 1))["returned"] == 0
    with time_machine.travel(end + timedelta(hours=23), tick=False), pytest.raises(NoNumberAvailable):
        services.number_lease_acquire(tenant=other, country="US", ttl_seconds=60)
    # after it, the same job returns the number, once
    assert services.leases_release_expired(now=end + timedelta(seconds=DAY)) == {
        "released": 0, "expiring_notified": 0, "returned": 1}
    assert services.leases_release_expired(now=end + timedelta(seconds=DAY + 60))["returned"] == 0
    number = PhoneNumber.objects.get(pk=lease.number_id)
    assert number.status == NumberStatus.AVAILABLE and number.quarantined_until is None
    kinds = list(NumberEvent.unscoped.filter(number=number).order_by("id").values_list("kind", "to_status"))
    assert kinds == [("imported", "available"), ("leased", "leased"), ("released", "quarantined"),
                     ("returned", "available")]
    with time_machine.travel(end + timedelta(seconds=DAY + 1), tick=False):
        assert services.number_lease_acquire(tenant=other, country="US", ttl_seconds=60).number_id == number.pk


def test_the_beat_schedule_runs_the_job_every_minute():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="numbers.tasks.numbers_release_expired_leases_task")
    assert task.enabled and (task.interval.every, task.interval.period) == (1, "minutes")


# --- Assignments and account-manager actions ------------------------------------------------------


def test_it_assigns_a_given_or_matching_number_and_releases_it(tenant, other):
    first, second = stock(2)
    assignment = services.number_assign(tenant=tenant, number=first)
    assert assignment.public_id.startswith("asg_") and assignment.number == first
    with pytest.raises(NumberNotAvailable):
        services.number_assign(tenant=other, number=first)
    assert services.number_assign(tenant=other, country="US", type="mobile").number == second
    with pytest.raises(NoNumberAvailable):
        services.number_assign(tenant=other, country="US")
    with pytest.raises(NumberNotFound):
        services.number_release_assignment(tenant=other, assignment=assignment)
    assert services.number_release_assignment(tenant=tenant, assignment=assignment) is True
    assert services.number_release_assignment(tenant=tenant, assignment=assignment) is False
    first.refresh_from_db()
    assert first.status == NumberStatus.QUARANTINED and first.holder is None
    assert NumberAssignment.unscoped.get(pk=assignment.pk).ended_at is not None
    assert NumberUsage.unscoped.get(tenant=tenant).kind == "assignment"


def test_account_managers_force_release_and_retire(tenant):
    leased, assigned, spare = stock(3)
    lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=600)
    services.number_assign(tenant=tenant, number=assigned)
    with pytest.raises(NumberHeld):
        services.number_retire(number=leased)
    assert services.number_force_release(number=leased) and services.number_force_release(number=assigned)
    assert services.number_force_release(number=spare) is False
    lease.refresh_from_db()
    assert lease.release_reason == "force_released"
    assert services.number_retire(number=leased) and services.number_retire(number=spare)
    assert set(PhoneNumber.objects.values_list("status", flat=True)) == {"retired", "quarantined"}


# --- PostgreSQL: real concurrency -----------------------------------------------------------------


def _in_thread(function):
    """Runs `function` on this thread's own connection, closed at the end."""
    try:
        return function()
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_money_6_two_hundred_concurrent_leases_on_fifty_numbers():
    # given 50 available numbers and 200 simultaneous requests
    tenants = [TenantFactory() for _ in range(4)]
    stock(50)
    barrier = threading.Barrier(40)

    def acquire(i: int):
        def call():
            if i < 40:
                barrier.wait(timeout=30)
            try:
                return services.number_lease_acquire(tenant=tenants[i % 4], country="US", ttl_seconds=600).number_id
            except NoNumberAvailable as error:
                return error.code
        return _in_thread(call)

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(acquire, range(200)))
    # then exactly 50 leases on 50 distinct numbers; the other 150 got no_number_available
    number_ids = [r for r in results if isinstance(r, int)]
    assert len(number_ids) == 50 and len(set(number_ids)) == 50
    assert results.count("no_number_available") == 150
    assert NumberLease.unscoped.filter(released_at=None).count() == 50
    assert PhoneNumber.objects.filter(status=NumberStatus.LEASED).count() == 50
    assert NumberEvent.unscoped.filter(kind="leased").count() == 50


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_cel_7_two_sweeps_at_once_release_each_lease_once():
    tenant = TenantFactory()
    stock(120)
    with time_machine.travel(T0, tick=False):
        leases = [services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60) for _ in range(120)]
    services.SWEEP_BATCH, old_batch = 25, services.SWEEP_BATCH
    barrier = threading.Barrier(2)

    def sweep():
        barrier.wait(timeout=30)
        return services.leases_release_expired(now=T0 + timedelta(seconds=61))

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = list(pool.map(lambda _: _in_thread(sweep), range(2)))
    finally:
        services.SWEEP_BATCH = old_batch
    assert sum(c["released"] for c in counts) == 120
    assert NumberEvent.unscoped.filter(kind="released").count() == 120
    assert all(_released_events(lease) == 1 for lease in leases)
    assert PhoneNumber.objects.filter(status=NumberStatus.QUARANTINED).count() == 120
    assert NumberUsage.unscoped.filter(kind="lease").count() == 120


def test_usage_adds_up_two_leases_of_one_number_on_one_day(tenant, settings):
    # given no cool-down, so the same number is leased twice the same day
    settings.NUMBER_QUARANTINE_SECONDS = 0
    stock(1)
    with time_machine.travel(T0, tick=False):
        services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60)
    assert services.leases_release_expired(now=T0 + timedelta(seconds=60)) == {
        "released": 1, "expiring_notified": 0, "returned": 1}
    with time_machine.travel(T0 + timedelta(seconds=120), tick=False):
        services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=90)
    services.leases_release_expired(now=T0 + timedelta(seconds=300))
    # then one usage row: 150 seconds, 2 leases
    usage = NumberUsage.unscoped.get()
    assert (usage.seconds, usage.holdings, usage.day) == (150, 2, T0.date())


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "http://10.0.0.1/hook", "https://user:pw@example.com/",
                                 "http://localhost/hook"])
def test_it_refuses_a_callback_url_that_is_not_public_http(tenant, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    stock(1)
    with pytest.raises(InvalidCallbackUrl) as error:
        services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60, callback_url=url)
    assert error.value.code == "invalid_callback_url" and error.value.field == "callback_url"
    assert not NumberLease.unscoped.exists()
