"""Number pools: the services (create, change, delete, members) and the choice of a number per recipient."""
from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from numbers import pools, services
from numbers.errors import InvalidPoolName, NumberNotHeld, NumberNotSmsCapable, PoolEmpty, PoolNameTaken, PoolNotFound
from numbers.inventory import demo_numbers
from numbers.models import (
    NumberAssignment,
    NumberPool,
    NumberPoolMember,
    NumberType,
    PhoneNumber,
    PoolStickySender,
)
from numbers.tests.factories import stock

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuditEvent
from accounts.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def _rent(tenant, count: int, *, country: str = "US", start: int = 0) -> list:
    numbers = stock(count, country=country, start=start)
    for number in numbers:
        services.number_assign(tenant=tenant, number=number)
    return numbers


def _recipients(country: str, count: int, start: int = 600) -> list[str]:
    return list(demo_numbers(country, NumberType.MOBILE, count, start=start))


def _pool(tenant, numbers, **flags) -> NumberPool:
    return pools.pool_create(tenant=tenant, name=flags.pop("name", "main"), numbers=[n.number for n in numbers],
                             **flags)


def _pick(tenant, to: str, name: str = "main"):
    return pools.pool_pick(tenant=tenant, pool_name=name, to=to)[1]


# --- sticky sender ------------------------------------------------------------------------------


def test_it_keeps_a_recipient_on_the_same_number(world):
    # given a sticky pool of three US numbers
    tenant = world.a.tenant
    _pool(tenant, _rent(tenant, 3), geo_match=False)
    to = _recipients("US", 1)[0]
    # when the same recipient gets twenty sends, between sends to others
    picked = set()
    for other in _recipients("US", 20, start=700):
        picked.add(_pick(tenant, to).number)
        _pick(tenant, other)
    # then it always got the same number, remembered once
    assert len(picked) == 1
    assert PoolStickySender.unscoped.filter(tenant=tenant, recipient=to).count() == 1


def test_it_moves_a_recipient_when_its_number_leaves_the_pool(world):
    # given a recipient stuck to a pool number
    tenant = world.a.tenant
    numbers = _rent(tenant, 2)
    pool = _pool(tenant, numbers, geo_match=False)
    to = _recipients("US", 1)[0]
    first = _pick(tenant, to)
    # when that number is taken out of the pool
    pools.pool_update(tenant=tenant, pool=pool, remove_numbers=[first.number])
    # then the recipient gets the other number, and keeps it
    second = _pick(tenant, to)
    assert second != first and second in numbers
    assert {_pick(tenant, to) for _ in range(5)} == {second}
    assert PoolStickySender.unscoped.get(pool=pool, recipient=to).number == second


def test_without_sticky_sender_recipients_rotate(world):
    # given a pool without sticky sender; when one recipient gets four sends; then it rotates over both numbers
    tenant = world.a.tenant
    _pool(tenant, _rent(tenant, 2), sticky_sender=False, geo_match=False)
    to = _recipients("US", 1)[0]
    assert len({_pick(tenant, to) for _ in range(4)}) == 2
    assert not PoolStickySender.unscoped.filter(tenant=tenant).exists()


# --- geo-match ----------------------------------------------------------------------------------


def test_it_sends_from_a_number_of_the_recipients_country(world):
    # given a pool with two US numbers and one GB number
    tenant = world.a.tenant
    us = _rent(tenant, 2)
    gb = _rent(tenant, 1, country="GB", start=300)
    _pool(tenant, us + gb)
    # when GB recipients get messages; then every one goes out from the GB number
    assert {_pick(tenant, to) for to in _recipients("GB", 10)} == {gb[0]}
    # and US recipients get the US numbers only
    assert {_pick(tenant, to) for to in _recipients("US", 10)} == set(us)


def test_it_falls_back_to_every_member_without_a_country_match(world):
    # given a US+GB pool; when German recipients get messages; then both numbers are used
    tenant = world.a.tenant
    members = _rent(tenant, 1) + _rent(tenant, 1, country="GB", start=300)
    _pool(tenant, members)
    assert {_pick(tenant, to) for to in _recipients("DE", 6)} == set(members)


def test_a_recipient_of_a_shared_calling_code_gets_a_number_of_that_code(world):
    # given a US+GB pool; when recipients in Guernsey (+44 7911, region GG) and Canada (+1 416, CA) get
    # messages; then Guernsey goes out from the GB number and Canada from the US number
    tenant = world.a.tenant
    us = _rent(tenant, 1)
    gb = _rent(tenant, 1, country="GB", start=300)
    _pool(tenant, us + gb)
    assert {_pick(tenant, to) for to in ("+447911123456", "+447911123457", "+447911123458")} == {gb[0]}
    assert {_pick(tenant, to) for to in ("+14165550123", "+14165550124", "+14165550125")} == {us[0]}


def test_without_geo_match_the_country_is_ignored(world):
    tenant = world.a.tenant
    members = _rent(tenant, 1) + _rent(tenant, 1, country="GB", start=300)
    _pool(tenant, members, geo_match=False)
    assert {_pick(tenant, to) for to in _recipients("GB", 6)} == set(members)


# --- round robin --------------------------------------------------------------------------------


def test_new_recipients_are_spread_evenly(world):
    # given a pool of three numbers
    tenant = world.a.tenant
    members = _rent(tenant, 3)
    pool = _pool(tenant, members)
    # when thirty new recipients get a message
    counts = Counter(_pick(tenant, to) for to in _recipients("US", 30))
    # then each number sent ten, and the cursor moved thirty times
    assert counts == {number: 10 for number in members}
    pool.refresh_from_db()
    assert pool.rr_cursor == 30


def test_a_quote_preview_writes_nothing(world):
    tenant = world.a.tenant
    pool = _pool(tenant, _rent(tenant, 2))
    to = _recipients("US", 1)[0]
    picked = pools.pool_pick(tenant=tenant, pool_name="main", to=to, dry_run=True)
    pool.refresh_from_db()
    assert picked[0] == pool and pool.rr_cursor == 0 and not PoolStickySender.unscoped.exists()
    assert picked[1] == _pick(tenant, to)  # and it shows what the send then gets


# --- membership follows the holding -------------------------------------------------------------


def test_releasing_a_number_takes_it_out_of_the_pool(world):
    # given a pool with a rented and a leased number, a recipient stuck to the rented one
    tenant = world.a.tenant
    rented = _rent(tenant, 1)[0]
    stock(1, start=100)
    lease = services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=3600)
    pool = _pool(tenant, [rented, lease.number], geo_match=False)
    to = _recipients("US", 1)[0]
    assert _pick(tenant, to) == rented  # the first by number, on a fresh cursor
    # when the rented number is released
    assignment = NumberAssignment.unscoped.get(number=rented, ended_at=None)
    services.number_release_assignment(tenant=tenant, assignment=assignment)
    # then it is no member any more, its sticky rows are gone, and sends use the leased number
    assert list(pool.numbers.all()) == [lease.number]
    assert not PoolStickySender.unscoped.filter(number=rented).exists()
    assert _pick(tenant, to) == lease.number
    # and when the lease ends too, the pool is empty: 409 pool_empty
    services.number_lease_release(tenant=tenant, lease=lease)
    assert not NumberPoolMember.unscoped.filter(pool=pool).exists()
    with pytest.raises(PoolEmpty):
        _pick(tenant, to)


def test_the_expiry_sweep_takes_expired_leases_out_of_pools(world, time_machine):
    # given a pool of two leased numbers, one of another tenant's pool left alone
    tenant = world.a.tenant
    stock(3, start=100)
    leases = [services.number_lease_acquire(tenant=tenant, country="US", ttl_seconds=60) for _ in range(2)]
    pool = _pool(tenant, [lease.number for lease in leases])
    other = services.number_lease_acquire(tenant=world.b.tenant, country="US", ttl_seconds=3600)
    other_pool = _pool(world.b.tenant, [other.number])
    _pick(tenant, _recipients("US", 1)[0])
    # when the sweep runs after the leases ended
    services.leases_release_expired(now=timezone.now() + timedelta(minutes=5))
    # then A's pool is empty, with no sticky rows, and B's pool is unchanged
    assert not NumberPoolMember.unscoped.filter(pool=pool).exists()
    assert not PoolStickySender.unscoped.filter(pool=pool).exists()
    assert list(other_pool.numbers.all()) == [other.number]


# --- create, change, delete ---------------------------------------------------------------------


def test_it_creates_a_pool_with_audit(world):
    tenant = world.a.tenant
    numbers = _rent(tenant, 2)
    pool = pools.pool_create(tenant=tenant, name="alerts-2_x", numbers=[numbers[0].number, numbers[1].public_id])
    assert set(pool.numbers.all()) == set(numbers)
    event = AuditEvent.unscoped.get(tenant=tenant, action="number_pool.created")
    assert event.target_id == pool.public_id and event.changes["numbers"] == sorted(n.number for n in numbers)


@pytest.mark.parametrize("name", ["", "a b", "x" * 51, "pool:x", "ünï"])
def test_it_refuses_an_invalid_name(world, name):
    with pytest.raises(InvalidPoolName):
        pools.pool_create(tenant=world.a.tenant, name=name)
    assert not NumberPool.unscoped.filter(tenant=world.a.tenant).exclude(name="senders").exists()


def test_a_name_is_unique_per_tenant_only(world):
    # given A's pool "senders" (the world's); then A cannot make another, and B has its own already
    with pytest.raises(PoolNameTaken):
        pools.pool_create(tenant=world.a.tenant, name="senders")
    pools.pool_create(tenant=world.b.tenant, name="other")
    with pytest.raises(PoolNameTaken):
        pools.pool_update(tenant=world.b.tenant, pool=NumberPool.unscoped.get(tenant=world.b.tenant, name="other"),
                          name="senders")


def test_it_refuses_numbers_the_tenant_does_not_hold(world):
    # given a number B holds and one nobody holds
    theirs = world.b.extra["assignment"].number
    free = stock(1, start=50)[0]
    for ref in (theirs.number, theirs.public_id, free.number, "+10000000000"):
        with pytest.raises(NumberNotHeld):
            pools.pool_create(tenant=world.a.tenant, name="mine", numbers=[ref])
    assert not NumberPool.unscoped.filter(name="mine").exists()


def test_it_refuses_a_number_without_sms(world):
    number = _rent(world.a.tenant, 1)[0]
    PhoneNumber.objects.filter(pk=number.pk).update(capabilities=["voice"])
    with pytest.raises(NumberNotSmsCapable):
        pools.pool_create(tenant=world.a.tenant, name="voice", numbers=[number.number])


def test_it_replaces_adds_and_removes_members_with_audit(world):
    tenant = world.a.tenant
    numbers = _rent(tenant, 3)
    pool = _pool(tenant, numbers[:1])
    pools.pool_update(tenant=tenant, pool=pool, numbers=[n.number for n in numbers[1:]], description="new")
    assert set(pool.numbers.all()) == set(numbers[1:])
    pools.pool_update(tenant=tenant, pool=pool, add_numbers=[numbers[0].public_id], remove_numbers=[numbers[1].number])
    assert set(pool.numbers.all()) == {numbers[0], numbers[2]}
    changes = [e.changes for e in AuditEvent.unscoped.filter(tenant=tenant, action="number_pool.changed").order_by("pk")]
    assert changes[0]["description"] == ["", "new"] and len(changes) == 2


def test_it_deletes_a_pool_with_audit(world):
    tenant = world.a.tenant
    pool = world.a.extra["pool"]
    pools.pool_delete(tenant=tenant, pool=pool)
    assert not NumberPool.unscoped.filter(pk=pool.pk).exists()
    assert AuditEvent.unscoped.filter(tenant=tenant, action="number_pool.deleted", target_id=pool.public_id).exists()
    with pytest.raises(PoolNotFound):
        _pick(tenant, _recipients("US", 1)[0], name="senders")


def test_another_tenants_pool_name_is_not_found(world):
    # given B's pool "other"; when A sends from pool:other; then 404 pool_not_found on `from`
    pools.pool_create(tenant=world.b.tenant, name="other")
    with pytest.raises(PoolNotFound) as error:
        _pick(world.a.tenant, _recipients("US", 1)[0], name="other")
    assert error.value.field == "from"


def test_the_sender_prefix_is_read_in_any_case():
    assert pools.pool_name_from_sender("pool:main") == "main"
    assert pools.pool_name_from_sender("POOL:main") == "main"
    assert pools.pool_name_from_sender("+14155550123") is None
    assert pools.pool_name_from_sender("Acme") is None


def test_a_forced_release_and_a_retirement_take_the_number_out_too(world):
    # given A's pool "senders" with its rented number
    pool, number = world.a.extra["pool"], world.a.extra["assignment"].number
    _pick(world.a.tenant, _recipients("US", 1)[0], name="senders")
    # when an account manager force-releases the number; then it leaves the pool with its sticky rows
    assert services.number_force_release(number=number)
    assert not NumberPoolMember.unscoped.filter(pool=pool).exists()
    assert not PoolStickySender.unscoped.filter(pool=pool).exists()
    # and a stale member of a retired number (made by hand here) is dropped as well
    NumberPoolMember.unscoped.create(tenant=pool.tenant, pool=pool, number=number)
    assert services.number_retire(number=number)
    assert not NumberPoolMember.unscoped.filter(pool=pool).exists()


# --- PostgreSQL: real concurrency -----------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_to_new_recipients_each_take_their_own_turn():
    # given a pool of three numbers, and 30 new recipients sent to at once
    tenant = TenantFactory()
    members = _rent(tenant, 3)
    pool = _pool(tenant, members, geo_match=False)
    recipients = _recipients("US", 30)
    barrier = threading.Barrier(30)

    def send(to: str) -> int:
        try:
            barrier.wait(timeout=30)
            with transaction.atomic():
                return pools.pool_pick(tenant=tenant, pool_name="main", to=to)[1].pk
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=30) as executor:
        picked = list(executor.map(send, recipients))
    # then each send got its own cursor position: thirty turns, ten per number, one sticky row per recipient
    pool.refresh_from_db()
    assert pool.rr_cursor == 30
    assert Counter(picked) == {m.pk: 10 for m in members}
    assert PoolStickySender.unscoped.filter(pool=pool).count() == 30
