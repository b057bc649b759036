"""Number pools: named sets of the tenant's numbers to send from, and the choice of a pool number per recipient.

Invariants (docs/pools.md):
- a member is a number the pool's tenant holds (assigned or leased) that can send SMS: checked, with
  the number rows locked, when it is added; and when a holding ends, numbers/services.py calls
  `pool_members_drop` in the same transaction, so the number leaves the tenant's pools;
- selection reads only members the tenant still holds, so even a stale member is never picked.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from numbers import selectors
from numbers.errors import InvalidPoolName, NumberNotHeld, NumberNotSmsCapable, PoolEmpty, PoolNameTaken
from numbers.models import HELD, NumberPool, NumberPoolMember, PhoneNumber, PoolStickySender
from typing import TYPE_CHECKING

import phonenumbers
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.services.audit import SYSTEM, Actor, audit_record
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

POOL_PREFIX = "pool:"
POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,50}")
SETTINGS = ("name", "description", "sticky_sender", "geo_match")


def pool_name_from_sender(sender: str) -> str | None:
    """`NAME` for a sender written `pool:NAME`, else None."""
    sender = (sender or "").strip()
    return sender[len(POOL_PREFIX):] if sender[:len(POOL_PREFIX)].lower() == POOL_PREFIX else None


def _name_check(name: str) -> str:
    if not isinstance(name, str) or not POOL_NAME.fullmatch(name):
        raise InvalidPoolName(field="name")
    return name


def _numbers_resolve(*, tenant: Tenant, refs: Iterable[str], field: str) -> list[PhoneNumber]:
    """The held numbers named by E.164 or number id, locked until the caller's transaction ends, so a
    release waits for the new membership to commit and then drops it (see pool_members_drop)."""
    refs = list(dict.fromkeys(str(ref).strip() for ref in refs))
    found = list(PhoneNumber.objects.select_for_update().filter(Q(number__in=refs) | Q(public_id__in=refs),
                                                                holder=tenant, status__in=HELD).order_by("pk"))
    known = {n.number for n in found} | {n.public_id for n in found}
    for ref in refs:
        if ref not in known:
            # The same answer for another tenant's number as for a missing one.
            raise NumberNotHeld(f"{ref!r} is not a number you hold.", field=field)
    for number in found:
        if "sms" not in (number.capabilities or []):
            raise NumberNotSmsCapable(f"{number.number} cannot send SMS.", field=field)
    return found


def _members_add(*, pool: NumberPool, numbers: list[PhoneNumber]) -> None:
    NumberPoolMember.objects.bulk_create([NumberPoolMember(tenant_id=pool.tenant_id, pool=pool, number=n)
                                         for n in numbers], ignore_conflicts=True)


def _members_remove(*, pool: NumberPool, number_ids: Iterable[int]) -> None:
    number_ids = list(number_ids)
    NumberPoolMember.objects.filter(pool=pool, number_id__in=number_ids).delete()
    PoolStickySender.objects.filter(tenant_id=pool.tenant_id, pool=pool, number_id__in=number_ids).delete()


def _member_numbers(pool: NumberPool) -> list[str]:
    return sorted(PhoneNumber.objects.filter(pool_memberships__pool=pool).values_list("number", flat=True))


# --- Create, change, delete -----------------------------------------------------------------------


@tenant_scoped
def pool_create(
    *, tenant: Tenant, name: str, description: str = "", sticky_sender: bool = True, geo_match: bool = True,
    numbers: Iterable[str] = (), actor: Actor = SYSTEM,
) -> NumberPool:
    """A new pool with the given numbers (E.164 or number ids, all held and SMS-capable). Audited.

    409 `pool_name_taken` (the unique constraint decides), 400 `invalid_pool_name`, 422
    `number_not_held` / `number_not_sms_capable`; nothing is written on any error."""
    _name_check(name)
    try:
        with transaction.atomic():
            members = _numbers_resolve(tenant=tenant, refs=numbers, field="numbers")
            pool = NumberPool.objects.create(tenant=tenant, name=name, description=description,
                                             sticky_sender=sticky_sender, geo_match=geo_match)
            _members_add(pool=pool, numbers=members)
            audit_record(action="number_pool.created", actor=actor, tenant=tenant, target=pool,
                         changes={"name": name, "sticky_sender": sticky_sender, "geo_match": geo_match,
                                  "numbers": sorted(n.number for n in members)})
    except IntegrityError:
        raise PoolNameTaken(field="name") from None
    return pool


@tenant_scoped
def pool_update(
    *, tenant: Tenant, pool: NumberPool, actor: Actor = SYSTEM, numbers: Iterable[str] | None = None,
    add_numbers: Iterable[str] = (), remove_numbers: Iterable[str] = (), **changes,
) -> NumberPool:
    """Changes name, description, sticky_sender and/or geo_match; `numbers` replaces the members,
    `add_numbers` / `remove_numbers` change them (removal takes any member, held or not). Audited
    with before/after values; errors as pool_create, nothing written on any of them."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise TypeError(f"cannot change {sorted(unknown)}")
    if "name" in changes:
        _name_check(changes["name"])
    try:
        with transaction.atomic():
            row = NumberPool.objects.select_for_update().get(pk=pool.pk, tenant=tenant)
            diff = {k: [getattr(row, k), v] for k, v in changes.items() if getattr(row, k) != v}
            for field, value in changes.items():
                setattr(row, field, value)
            row.save()
            before = _member_numbers(row)
            _members_change(tenant=tenant, pool=row, numbers=numbers, add=add_numbers, remove=remove_numbers)
            after = _member_numbers(row)
            if before != after:
                diff["numbers"] = [before, after]
            if diff:
                audit_record(action="number_pool.changed", actor=actor, tenant=tenant, target=row, changes=diff)
    except IntegrityError:
        raise PoolNameTaken(field="name") from None
    return row


def _members_change(*, tenant: Tenant, pool: NumberPool, numbers: Iterable[str] | None, add: Iterable[str],
                    remove: Iterable[str]) -> None:
    if numbers is not None:
        wanted = _numbers_resolve(tenant=tenant, refs=numbers, field="numbers")
        current = set(NumberPoolMember.objects.filter(pool=pool).values_list("number_id", flat=True))
        _members_remove(pool=pool, number_ids=current - {n.pk for n in wanted})
        _members_add(pool=pool, numbers=wanted)
    if add:
        _members_add(pool=pool, numbers=_numbers_resolve(tenant=tenant, refs=add, field="add_numbers"))
    refs = [str(ref).strip() for ref in remove]
    if refs:
        gone = NumberPoolMember.objects.filter(pool=pool).filter(Q(number__number__in=refs) |
                                                                 Q(number__public_id__in=refs))
        _members_remove(pool=pool, number_ids=gone.values_list("number_id", flat=True))


@tenant_scoped
def pool_delete(*, tenant: Tenant, pool: NumberPool, actor: Actor = SYSTEM) -> None:
    """Deletes the pool, its members and sticky senders; messages sent from it keep their number. Audited."""
    with transaction.atomic():
        deleted, _ = NumberPool.objects.filter(pk=pool.pk, tenant=tenant).delete()
        if deleted:
            audit_record(action="number_pool.deleted", actor=actor, tenant=tenant, target=pool,
                         changes={"name": pool.name})


def pool_members_drop(*, number_ids: Iterable[int], tenant_ids: Iterable[int] | None = None) -> None:
    """Takes numbers out of the pools (and sticky senders) of the tenants that held them, when their
    holdings end; call in the transaction that ends them, after the number rows were updated.

    Set-based (one DELETE per table for a whole sweep batch). A number has at most one holder, and
    a member is always a number its pool's tenant holds, so `number IN ... AND tenant IN ...` reaches
    exactly the rows of each (tenant, number) pair. `tenant_ids=None` (a retired number): every pool."""
    number_ids = list(number_ids)
    # unscoped: holdings end in sweeps for many tenants at once; a retired number leaves all
    members = NumberPoolMember.unscoped.filter(number_id__in=number_ids)
    sticky = PoolStickySender.unscoped.filter(number_id__in=number_ids)
    if tenant_ids is not None:
        tenant_ids = list(tenant_ids)
        members = members.filter(tenant_id__in=tenant_ids)
        sticky = sticky.filter(tenant_id__in=tenant_ids)
    members.delete()
    sticky.delete()


# --- Selection ------------------------------------------------------------------------------------


def _geo_candidates(members: list[PhoneNumber], to: str) -> list[PhoneNumber]:
    """The members of the recipient's country; else of its calling code (a Guernsey or Isle of Man
    mobile gets a GB number, a Canadian one a US number: local rates, a familiar prefix); else all."""
    try:
        parsed = phonenumbers.parse(to, None)
    except phonenumbers.NumberParseException:
        return members
    region = phonenumbers.region_code_for_number(parsed)
    same_country = [m for m in members if m.country == region]
    if same_country:
        return same_country
    sharing_code = set(phonenumbers.region_codes_for_country_code(parsed.country_code))
    return [m for m in members if m.country in sharing_code] or members


def _rr_next(pool: NumberPool) -> int:
    """The next round-robin position: an atomic increment, so concurrent senders each get their own.

    The UPDATE takes the pool row's lock until the caller's transaction ends (PostgreSQL) or
    runs under SQLite's single writer; either way the read-back sees this caller's value."""
    NumberPool.objects.filter(pk=pool.pk).update(rr_cursor=F("rr_cursor") + 1)
    return NumberPool.objects.values_list("rr_cursor", flat=True).get(pk=pool.pk) - 1


def _sticky_remember(*, tenant: Tenant, pool: NumberPool, to: str, number: PhoneNumber) -> None:
    # An upsert: two first sends to one recipient at once cannot both insert (pool, recipient).
    PoolStickySender.objects.bulk_create(
        [PoolStickySender(tenant=tenant, pool=pool, recipient=to, number=number, last_used_at=timezone.now())],
        update_conflicts=True, unique_fields=["pool", "recipient"], update_fields=["number", "last_used_at"],
    )


@tenant_scoped
def pool_pick(*, tenant: Tenant, pool_name: str, to: str, dry_run: bool = False) -> tuple[NumberPool, PhoneNumber]:
    """The pool named `pool_name` and its number to send to `to` (E.164) from.

    Order: the recipient's sticky number when `sticky_sender` and it is still a usable member;
    else the candidates (with `geo_match`, the members of the recipient's country when there are
    any; else all usable members), taken round robin. With `sticky_sender` the choice is remembered.
    Call inside the accept transaction (it writes the cursor and the sticky row); `dry_run` (quotes)
    writes nothing and shows what the next send would get. 404 `pool_not_found` and 409 `pool_empty`,
    both on field `from`."""
    pool = selectors.pool_get_by_name(tenant=tenant, name=pool_name, field="from")
    members = list(selectors.pool_members_usable(tenant=tenant, pool=pool))
    if not members:
        raise PoolEmpty(f"The number pool {pool.name!r} has no number you hold that can send SMS.", field="from")
    if pool.sticky_sender:
        sticky_id = (PoolStickySender.objects.filter(tenant=tenant, pool=pool, recipient=to)
                     .values_list("number_id", flat=True).first())
        number = next((m for m in members if m.pk == sticky_id), None)
        if number is not None:
            if not dry_run:
                _sticky_remember(tenant=tenant, pool=pool, to=to, number=number)
            return pool, number
    candidates = members
    if pool.geo_match:
        candidates = _geo_candidates(members, to)
    position = pool.rr_cursor if dry_run else _rr_next(pool)
    number = candidates[position % len(candidates)]
    if pool.sticky_sender and not dry_run:
        _sticky_remember(tenant=tenant, pool=pool, to=to, number=number)
    return pool, number
