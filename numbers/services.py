"""Use cases of the numbers app: inventory, assignments, leases, the expiry sweep and usage.

The invariants live in the database: a number moves between statuses only by a conditional
UPDATE from the status it is expected to have, and the partial unique constraints on
NumberAssignment and NumberLease allow one active holding per number. Every change of status or
holder writes one NumberEvent in the same transaction.
"""
from __future__ import annotations

import operator
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import reduce
from numbers import events as webhooks
from numbers.errors import (
    InvalidCallbackUrl,
    InvalidExpiringNotice,
    InvalidTtl,
    LeaseEnded,
    NoNumberAvailable,
    NumberHeld,
    NumberNotAvailable,
    NumberNotFound,
)
from numbers.models import (
    HELD,
    NumberAssignment,
    NumberEvent,
    NumberLease,
    NumberStatus,
    NumberType,
    NumberUsage,
    PhoneNumber,
)
from numbers.pools import pool_members_drop
from numbers.usage import usage_record
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Func, Q, QuerySet
from django.utils import timezone

from accounts.services.audit import SYSTEM, Actor
from smsportal import outbound
from smsportal.countdowns import countdown_limit
from smsportal.errors import Conflict
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

TTL_MIN = 60
TTL_MAX = 30 * 24 * 3600
SWEEP_BATCH = 500
# One run handles at most this many batches of each kind; the rest waits for the next minute.
SWEEP_MAX_BATCHES = 40
# The daily usage job is not pressed for time like the minute sweep: up to a million open holdings
# of each kind per run (any rest is recorded, late but once, by the next run or the release).
USAGE_MAX_BATCHES = 2000
# How many candidates the allocator tries when another writer took the one it picked (SQLite).
CLAIM_ATTEMPTS = 5
NOTICE_MAX = 24 * 3600
# A `number.lease_expiring` due within this long also gets a task with a countdown (precision to the
# second); later ones are left to the minute sweep. At most half the broker's visibility timeout
# (checked at start: smsportal/countdowns.py).
NOTICE_COUNTDOWN_MAX = countdown_limit("numbers.services.NOTICE_COUNTDOWN_MAX", 600)

Kind = NumberEvent.Kind
Reason = NumberLease.ReleaseReason


# --- Status moves -------------------------------------------------------------------------------


def _number_move(
    *, number_id: int, frm: str, to: str, kind: str, tenant: Tenant | None, actor: Actor, detail: str = "",
    extra_filters: dict | None = None, **fields,
) -> bool:
    """Conditional UPDATE from status `frm`; writes the event and returns True only when it moved."""
    changed = PhoneNumber.objects.filter(pk=number_id, status=frm, **(extra_filters or {})).update(
        status=to, updated_at=timezone.now(), **fields
    )
    if changed:
        # unscoped: the shared inventory's history: returns have no tenant, sweeps write for many
        NumberEvent.unscoped.create(number_id=number_id, tenant=tenant, kind=kind, from_status=frm, to_status=to,
                                    detail=detail[:300], actor=actor.label)
    return bool(changed)


def _claim(*, candidates: QuerySet, to: str, tenant: Tenant, kind: str, actor: Actor, detail: str,
           error: type[Conflict]) -> PhoneNumber:
    """Claims one of `candidates` (available numbers) for `tenant`; call inside a transaction.

    On PostgreSQL, `skip_locked` lets concurrent callers each lock a different row instead of
    queueing on the same one; the conditional UPDATE is what guarantees a number is taken once
    (SQLite ignores the row lock and serializes writers instead)."""
    tried: list[int] = []
    for _ in range(CLAIM_ATTEMPTS):
        number = (candidates.exclude(pk__in=tried).select_for_update(skip_locked=True)
                  .order_by("updated_at", "id").first())
        if number is None:
            break
        fields = {"holder": tenant, "quarantined_until": None}
        if _number_move(number_id=number.pk, frm=NumberStatus.AVAILABLE, to=to, kind=kind, tenant=tenant,
                        actor=actor, detail=detail, **fields):
            number.status, number.holder = to, tenant
            return number
        tried.append(number.pk)
    raise error()


def _available(*, country: str | None, type: str | None, capability: str | None,
               contains: str | None = None) -> QuerySet:
    # A shared sender stays the platform's (PhoneNumber.shared_sender): never offered or handed out.
    numbers = PhoneNumber.objects.filter(status=NumberStatus.AVAILABLE, shared_sender=False)
    if contains:
        numbers = numbers.filter(number__contains=contains)
    if country:
        numbers = numbers.filter(country=country.upper())
    if type:
        numbers = numbers.filter(type=type)
    if capability:
        # JSON containment is not portable to SQLite; the quoted element matches the same rows.
        numbers = numbers.filter(capabilities__icontains=f'"{capability}"')
    return numbers


def _own(tenant: Tenant, holding: NumberLease | NumberAssignment) -> None:
    # Another tenant's lease answers like a missing one.
    if holding.tenant_id != tenant.pk:
        raise NumberNotFound()


def _quarantine(*, number_id: int, frm: str, tenant: Tenant, now: datetime, actor: Actor, detail: str) -> bool:
    until = now + timedelta(seconds=settings.NUMBER_QUARANTINE_SECONDS)
    return _number_move(number_id=number_id, frm=frm, to=NumberStatus.QUARANTINED, kind=Kind.RELEASED,
                        tenant=tenant, actor=actor, detail=detail, holder=None, quarantined_until=until)


def numbers_available(*, country: str | None = None, type: str | None = None, capability: str | None = None,
                      contains: str | None = None) -> QuerySet:
    """The available inventory matching the filters (what the allocator may hand out)."""
    return _available(country=country, type=type, capability=capability, contains=contains)


# --- Assignments ----------------------------------------------------------------------------------


@tenant_scoped
def number_assign(
    *, tenant: Tenant, number: PhoneNumber | None = None, country: str | None = None, type: str | None = None,
    capability: str | None = "sms", contains: str | None = None, actor: Actor = SYSTEM,
) -> NumberAssignment:
    """Rents `number`, or any available number matching the filters, until released.

    409 `number_not_available` for a given number that is not available, `no_number_available`
    when nothing matches; in both cases nothing is written."""
    with transaction.atomic():
        if number is not None:
            candidates = PhoneNumber.objects.filter(pk=number.pk, status=NumberStatus.AVAILABLE, shared_sender=False)
            error: type[Conflict] = NumberNotAvailable
        else:
            candidates = _available(country=country, type=type, capability=capability, contains=contains)
            error = NoNumberAvailable
        assignment = NumberAssignment(tenant=tenant, started_at=timezone.now())
        claimed = _claim(candidates=candidates, to=NumberStatus.ASSIGNED, tenant=tenant, kind=Kind.ASSIGNED,
                         actor=actor, detail=f"assignment {assignment.public_id}", error=error)
        assignment.number = claimed
        assignment.save()
    return assignment


@tenant_scoped
def number_release_assignment(*, tenant: Tenant, assignment: NumberAssignment, actor: Actor = SYSTEM,
                              reason: str = Reason.RELEASED) -> bool:
    """Ends a rental; the number goes to quarantine and `number.released` to the tenant's endpoints.
    Idempotent: False when it had already ended. Usage is recorded from where the daily job left
    it (`usage_recorded_until`, re-read under the row lock the UPDATE took) to the end."""
    _own(tenant, assignment)
    now = timezone.now()
    with transaction.atomic():
        if not NumberAssignment.objects.filter(pk=assignment.pk, ended_at=None).update(ended_at=now):
            return False
        assignment.ended_at = now
        # Re-read under the lock: a daily job that committed while this UPDATE waited moved it.
        assignment.refresh_from_db(fields=["usage_recorded_until"])
        webhooks.assignment_released_emit(assignment=assignment, reason=reason, now=now)
        _quarantine(number_id=assignment.number_id, frm=NumberStatus.ASSIGNED, tenant=tenant, now=now, actor=actor,
                    detail=f"assignment {assignment.public_id} released")
        pool_members_drop(tenant_ids=[tenant.pk], number_ids=[assignment.number_id])
        usage_record(spans=[(assignment, now)], kind=NumberUsage.Kind.ASSIGNMENT)
    return True


# --- Leases ---------------------------------------------------------------------------------------


def _check_ttl(ttl_seconds: int) -> None:
    if not isinstance(ttl_seconds, int) or not TTL_MIN <= ttl_seconds <= TTL_MAX:
        raise InvalidTtl(field="ttl_seconds")


def _check_notice(seconds: int) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= NOTICE_MAX:
        raise InvalidExpiringNotice(field="expiring_notice_seconds")


def _callback_url_check(url: str) -> str:
    """The checks that need no DNS (scheme, credentials, local names, IP literals, ports); the
    connect-time guard in smsportal/outbound.py is the one that counts."""
    if url:
        try:
            outbound.check_target(outbound.parse_url(url), allow_private=settings.WEBHOOK_ALLOW_PRIVATE_TARGETS)
        except outbound.BlockedDestination as error:
            raise InvalidCallbackUrl(error.message, field="callback_url") from None
    return url


@tenant_scoped
def number_lease_acquire(
    *, tenant: Tenant, country: str, ttl_seconds: int, type: str = NumberType.MOBILE, capability: str = "sms",
    callback_url: str = "", expiring_notice_seconds: int | None = None, actor: Actor = SYSTEM,
) -> NumberLease:
    """Leases an available number of `country` and `type` for `ttl_seconds` (60 s .. 30 days).

    `number.lease_expiring` goes out `expiring_notice_seconds` (0 .. 1 day, 0 = never; default
    NUMBER_LEASE_EXPIRING_NOTICE_SECONDS) before the end, to `callback_url` and subscribed endpoints.

    Concurrent callers get distinct numbers (row locks with skip_locked, a conditional UPDATE and
    the one-active-lease constraint); when none is left: 409 `no_number_available`, nothing written."""
    _check_ttl(ttl_seconds)
    if expiring_notice_seconds is None:
        expiring_notice_seconds = settings.NUMBER_LEASE_EXPIRING_NOTICE_SECONDS
    _check_notice(expiring_notice_seconds)
    _callback_url_check(callback_url)
    now = timezone.now()
    with transaction.atomic():
        lease = NumberLease(tenant=tenant, started_at=now, expires_at=now + timedelta(seconds=ttl_seconds),
                            callback_url=callback_url, expiring_notice_seconds=expiring_notice_seconds)
        lease.number = _claim(candidates=_available(country=country, type=type, capability=capability),
                              to=NumberStatus.LEASED, tenant=tenant, kind=Kind.LEASED, actor=actor,
                              detail=f"lease {lease.public_id} until {lease.expires_at.isoformat()}",
                              error=NoNumberAvailable)
        lease.save()
        _notice_schedule(lease=lease, now=now)
    return lease


@tenant_scoped
def number_lease_extend(*, tenant: Tenant, lease: NumberLease, ttl_seconds: int, actor: Actor = SYSTEM) -> NumberLease:
    """Moves the lease's end `ttl_seconds` later; only while it runs, and at most 30 days from now.

    Compare-and-set on `expires_at`: two concurrent extensions both count, and an extension racing
    the sweep either commits first (the sweep's conditional UPDATE then skips the lease) or finds
    the lease released and answers 409 `lease_ended`. A new end further away than the notice re-arms
    `number.lease_expiring` (one notice per end)."""
    _check_ttl(ttl_seconds)
    _own(tenant, lease)
    for _ in range(CLAIM_ATTEMPTS):
        now = timezone.now()
        current = NumberLease.objects.filter(pk=lease.pk).values("expires_at", "released_at",
                                                                 "expiring_notice_seconds").get()
        if current["released_at"] is not None or current["expires_at"] <= now:
            raise LeaseEnded()
        new_end = current["expires_at"] + timedelta(seconds=ttl_seconds)
        if new_end - now > timedelta(seconds=TTL_MAX):
            raise InvalidTtl("A lease may run at most 30 days from now.", field="ttl_seconds")
        fields: dict = {"expires_at": new_end}
        if new_end - now > timedelta(seconds=current["expiring_notice_seconds"]):
            fields["expiring_notified_at"] = None
        with transaction.atomic():
            if NumberLease.objects.filter(pk=lease.pk, released_at=None, expires_at=current["expires_at"]).update(
                **fields
            ):
                NumberEvent.objects.create(number_id=lease.number_id, tenant=tenant, kind=Kind.EXTENDED,
                                           from_status=NumberStatus.LEASED, to_status=NumberStatus.LEASED,
                                           detail=f"lease {lease.public_id} until {new_end.isoformat()}",
                                           actor=actor.label)
                lease.expires_at = new_end
                lease.expiring_notified_at = fields.get("expiring_notified_at", lease.expiring_notified_at)
                _notice_schedule(lease=lease, now=now)
                return lease
    raise Conflict("The lease changed concurrently; try again.", code="lease_busy")


@tenant_scoped
def number_lease_release(*, tenant: Tenant, lease: NumberLease, actor: Actor = SYSTEM,
                         reason: str = Reason.RELEASED) -> bool:
    """Ends a lease early; the number goes to quarantine. Idempotent: False when it had already ended."""
    _own(tenant, lease)
    released = _lease_end(lease_id=lease.pk, now=timezone.now(), reason=reason, actor=actor)
    lease.refresh_from_db()
    return released


def _lease_end(*, lease_id: int, now: datetime, reason: str, actor: Actor, expired_only: bool = False) -> bool:
    """Releases one lease exactly once: the conditional UPDATE on `released_at IS NULL` (and, for
    the sweep, `expires_at <= now`) lets only one caller through; a lease extended after the
    sweep read it no longer matches and stays. The lease is re-read after the UPDATE, under its row
    lock, so usage starts where the daily job left it (`usage_recorded_until`)."""
    filters: dict = {"pk": lease_id, "released_at": None}
    if expired_only:
        filters["expires_at__lte"] = now
    with transaction.atomic(savepoint=False):
        if not NumberLease.objects.filter(**filters).update(released_at=now, release_reason=reason):
            return False
        lease = NumberLease.objects.select_related("tenant", "number").get(pk=lease_id)
        webhooks.lease_events_emit(leases=[lease], event_type="number.released", now=now)
        _quarantine(number_id=lease.number_id, frm=NumberStatus.LEASED, tenant=lease.tenant, now=now, actor=actor,
                    detail=f"lease {lease.public_id} {reason}")
        pool_members_drop(tenant_ids=[lease.tenant_id], number_ids=[lease.number_id])
        usage_record(spans=[(lease, min(now, lease.expires_at))], kind=NumberUsage.Kind.LEASE)
    return True


# --- The sweep ------------------------------------------------------------------------------------


def leases_release_expired(*, now: datetime | None = None) -> dict[str, int]:
    """Releases every lease past its end, then returns quarantined numbers past their cool-down.

    Runs from beat every minute in bounded batches. Two runs at once do no harm: each batch
    locks its rows with skip_locked (PostgreSQL), and every change is a conditional UPDATE, so
    each lease is released, and each number returned, exactly once."""
    now = now or timezone.now()
    counts = {"released": 0, "expiring_notified": 0, "returned": 0}
    for _ in range(SWEEP_MAX_BATCHES):
        with transaction.atomic():
            # unscoped: the lease sweep, over every tenant
            ids = _locked_ids(NumberLease.unscoped.filter(released_at=None, expires_at__lte=now).order_by("expires_at"))
            counts["released"] += _leases_expire(ids=ids, now=now)
        if len(ids) < SWEEP_BATCH:
            break
    for _ in range(SWEEP_MAX_BATCHES):
        with transaction.atomic():
            ids = _locked_ids(_notice_due(NumberLease.unscoped.all(), now=now).order_by("expires_at"))
            counts["expiring_notified"] += _leases_notify_expiring(ids=ids, now=now)
        if len(ids) < SWEEP_BATCH:
            break
    for _ in range(SWEEP_MAX_BATCHES):
        with transaction.atomic():
            ids = _locked_ids(PhoneNumber.objects.filter(status=NumberStatus.QUARANTINED, quarantined_until__lte=now))
            counts["returned"] += sum(_number_return(number_id=pk, now=now) for pk in ids)
        if len(ids) < SWEEP_BATCH:
            break
    return counts


class SweepConflict(RuntimeError):
    """A locked batch changed under the sweep; the batch is rolled back and the next run retries."""


def _leases_expire(*, ids: list[int], now: datetime) -> int:
    """Releases the locked leases `ids` that are still active and past their end, set-based.

    Call inside the transaction that locked them: on PostgreSQL the row locks keep other writers
    (an extension, a forced release) waiting until commit, after which their own conditional
    UPDATE no longer matches; SQLite's IMMEDIATE transactions serialize writers. The re-read drops
    a lease extended after the ids were read, and reads `usage_recorded_until` under the same locks
    (the daily job skips or waits for them). Each UPDATE must change exactly the rows read;
    otherwise SweepConflict rolls the whole batch back (nothing half-made)."""
    # unscoped: the lease sweep's set-based batch, over every tenant
    leases = list(NumberLease.unscoped.filter(pk__in=ids, released_at=None, expires_at__lte=now))
    if not leases:
        return 0
    until = now + timedelta(seconds=settings.NUMBER_QUARANTINE_SECONDS)
    released = NumberLease.unscoped.filter(pk__in=[lease.pk for lease in leases], released_at=None).update(
        released_at=now, release_reason=Reason.EXPIRED)
    quarantined = PhoneNumber.objects.filter(pk__in=[lease.number_id for lease in leases],
                                             status=NumberStatus.LEASED).update(
        status=NumberStatus.QUARANTINED, holder=None, quarantined_until=until, updated_at=now)
    if released != len(leases) or quarantined != len(leases):
        raise SweepConflict(f"{len(leases)} leases read, {released} released, {quarantined} numbers quarantined")
    pool_members_drop(tenant_ids={lease.tenant_id for lease in leases}, number_ids=[lease.number_id for lease in leases])
    for lease in leases:
        lease.released_at, lease.release_reason = now, Reason.EXPIRED
    webhooks.lease_events_emit(leases=leases, event_type="number.released", now=now)
    NumberEvent.unscoped.bulk_create(
        NumberEvent(number_id=lease.number_id, tenant_id=lease.tenant_id, kind=Kind.RELEASED,
                    from_status=NumberStatus.LEASED, to_status=NumberStatus.QUARANTINED,
                    detail=f"lease {lease.public_id} {Reason.EXPIRED}", actor=SYSTEM.label)
        for lease in leases
    )
    usage_record(spans=[(lease, min(now, lease.expires_at)) for lease in leases], kind=NumberUsage.Kind.LEASE)
    return len(leases)


# --- The expiring notice ---------------------------------------------------------------------------


class _Seconds(Func):
    """An integer column as a duration: an interval on PostgreSQL, microseconds on SQLite."""

    output_field = DurationField()
    template = "make_interval(secs => %(expressions)s)"

    def as_sqlite(self, compiler, connection, **extra):
        return self.as_sql(compiler, connection, template="(%(expressions)s * 1000000)", **extra)


def _notice_due(leases: QuerySet, *, now: datetime) -> QuerySet:
    """Active leases whose `number.lease_expiring` is due at `now` and not sent for their current end.
    The `expires_at` range lets the partial index on active leases' ends narrow the scan."""
    notice_at = ExpressionWrapper(F("expires_at") - _Seconds(F("expiring_notice_seconds")),
                                  output_field=DateTimeField())
    return (leases.filter(released_at=None, expiring_notified_at=None, expiring_notice_seconds__gt=0,
                          expires_at__gt=now, expires_at__lte=now + timedelta(seconds=NOTICE_MAX))
            .alias(notice_at=notice_at).filter(notice_at__lte=now))


def _leases_notify_expiring(*, ids: list[int], now: datetime) -> int:
    """`number.lease_expiring` for the locked leases `ids` still due, set-based, like _leases_expire:
    the conditional UPDATE of `expiring_notified_at` must change exactly the rows re-read, or the batch
    rolls back (SweepConflict), so a notice is recorded once however many sweeps and tasks run."""
    # unscoped: the sweep's expiring notices, over every tenant
    leases = list(_notice_due(NumberLease.unscoped.filter(pk__in=ids), now=now))
    if not leases:
        return 0
    notified = _notice_due(NumberLease.unscoped.filter(pk__in=[lease.pk for lease in leases]), now=now).update(
        expiring_notified_at=now)
    if notified != len(leases):
        raise SweepConflict(f"{len(leases)} leases read, {notified} notified")
    webhooks.lease_events_emit(leases=leases, event_type="number.lease_expiring", now=now)
    return len(leases)


@tenant_scoped
def number_lease_notify_expiring(*, tenant: Tenant, lease_id: int, now: datetime | None = None) -> bool:
    """Sends `number.lease_expiring` for one lease if it is due and not sent for its current end
    (numbers_lease_notify_expiring_task; the sweep does the same for every lease). True when this
    call sent it: the conditional UPDATE on `expiring_notified_at IS NULL` lets one caller through."""
    now = now or timezone.now()
    with transaction.atomic():
        if not _notice_due(NumberLease.objects.filter(pk=lease_id), now=now).update(expiring_notified_at=now):
            return False
        lease = NumberLease.objects.get(pk=lease_id)
        webhooks.lease_events_emit(leases=[lease], event_type="number.lease_expiring", now=now)
    return True


def _notice_schedule(*, lease: NumberLease, now: datetime) -> None:
    """After commit, a task for the lease's notice when it falls due soon (to the second); the minute
    sweep is the guarantee for the rest, and a task that finds the notice sent or moved does nothing."""
    if not lease.expiring_notice_seconds or lease.expiring_notified_at is not None:
        return
    delay = (lease.expires_at - timedelta(seconds=lease.expiring_notice_seconds) - now).total_seconds()
    if delay > NOTICE_COUNTDOWN_MAX:
        return
    from numbers.tasks import number_lease_notify_expiring_task

    lease_id, tenant_id, countdown = lease.pk, lease.tenant_id, max(0.0, delay)
    transaction.on_commit(lambda: number_lease_notify_expiring_task.apply_async(
        (lease_id,), kwargs={"tenant_id": tenant_id}, countdown=countdown), robust=True)


def _locked_ids(queryset: QuerySet) -> list[int]:
    """Up to one batch of ids, locked for this transaction and skipping rows another run holds."""
    return list(queryset.select_for_update(skip_locked=True).values_list("pk", flat=True)[:SWEEP_BATCH])


def _number_return(*, number_id: int, now: datetime) -> bool:
    return _number_move(number_id=number_id, frm=NumberStatus.QUARANTINED, to=NumberStatus.AVAILABLE,
                        kind=Kind.RETURNED, tenant=None, actor=SYSTEM, detail="cool-down over",
                        extra_filters={"quarantined_until__lte": now}, quarantined_until=None)


# --- Usage for billing ----------------------------------------------------------------------------


def numbers_usage_record_open(*, now: datetime | None = None) -> dict[str, int]:
    """Records the usage of every holding still open up to the last UTC midnight (`cut`), so a
    period can be billed while its numbers are still held; daily from beat. Returns how many
    holdings of each kind it recorded.

    Exactly once, like the sweep: each batch locks its holdings with skip_locked, records from
    `usage_recorded_until` (or the start) to `cut`, and moves `usage_recorded_until` to `cut` with
    one conditional UPDATE that must change every row read (else SweepConflict rolls the batch
    back). A second run for the same cut finds nothing left; a release afterwards records from `cut`.
    Leases that ended before `cut` are left to the sweep, which records them to their end."""
    now = now or timezone.now()
    cut = datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)
    counts: dict[str, int] = {}
    for model, kind in ((NumberAssignment, NumberUsage.Kind.ASSIGNMENT), (NumberLease, NumberUsage.Kind.LEASE)):
        counts[kind] = 0
        for _ in range(USAGE_MAX_BATCHES):
            with transaction.atomic():
                ids = _locked_ids(_usage_pending(model, cut=cut).order_by("pk"))
                counts[kind] += _usage_record_open(model=model, kind=kind, ids=ids, cut=cut)
            if len(ids) < SWEEP_BATCH:
                break
    return counts


def _usage_pending(model: type[NumberAssignment] | type[NumberLease], *, cut: datetime) -> QuerySet:
    """Open holdings with usage before `cut` not recorded yet."""
    still_open = Q(ended_at=None) if model is NumberAssignment else Q(released_at=None, expires_at__gt=cut)
    # unscoped: the daily usage job, over every tenant's holdings
    return model.unscoped.filter(still_open).filter(
        Q(usage_recorded_until__lt=cut) | Q(usage_recorded_until=None, started_at__lt=cut))


def _usage_record_open(*, model: type[NumberAssignment] | type[NumberLease], kind: str, ids: list[int],
                       cut: datetime) -> int:
    """Records the locked holdings `ids` up to `cut`, set-based; call inside the transaction that
    locked them. The UPDATE matches only rows still open whose `usage_recorded_until` is still the
    value read (one condition per value: few, as they are cuts), so a row another writer moved or
    ended meanwhile makes the batch roll back instead of counting twice."""
    holdings = list(_usage_pending(model, cut=cut).filter(pk__in=ids))
    if not holdings:
        return 0
    read: dict[datetime | None, list[int]] = defaultdict(list)
    for holding in holdings:
        read[holding.usage_recorded_until].append(holding.pk)
    unchanged = reduce(operator.or_, (Q(pk__in=pks, usage_recorded_until=value) for value, pks in read.items()))
    moved = _usage_pending(model, cut=cut).filter(unchanged).update(usage_recorded_until=cut)
    if moved != len(holdings):
        raise SweepConflict(f"{len(holdings)} {kind}s read, {moved} moved to {cut.isoformat()}")
    usage_record(spans=[(holding, cut) for holding in holdings], kind=kind)
    return len(holdings)


# --- Inventory (account managers) -----------------------------------------------------------------


def phone_number_upsert(
    *, number: str, country: str, type: str, capabilities: list[str], carrier: str, monthly_cost: Decimal,
    monthly_price: Decimal, actor: Actor = SYSTEM,
) -> tuple[PhoneNumber, bool]:
    """Adds a number to the inventory, or updates its description (never its status or holder).

    Idempotent by `number`; returns (number, created)."""
    fields = {"country": country.upper(), "type": type, "capabilities": capabilities, "carrier": carrier,
              "monthly_cost": monthly_cost, "monthly_price": monthly_price}
    with transaction.atomic():
        phone_number, created = PhoneNumber.objects.update_or_create(number=number, defaults=fields)
        if created:
            # unscoped: inventory import: a number's history before any tenant holds it
            NumberEvent.unscoped.create(number=phone_number, kind=Kind.IMPORTED, to_status=phone_number.status,
                                        detail=f"{type} {country.upper()} from {carrier}", actor=actor.label)
    return phone_number, created


def number_shared_sender_set(*, number: PhoneNumber, shared_sender: bool) -> bool:
    """Marks `number` as a platform shared sender, or no longer one; returns whether it changed.

    Only a number no tenant holds can become one (409 `number_held`): the conditional UPDATE decides,
    so a lease taken at the same moment either wins (and this is refused) or never sees the number."""
    changed = (PhoneNumber.objects.filter(pk=number.pk).exclude(status__in=HELD).exclude(shared_sender=shared_sender)
               .update(shared_sender=shared_sender, updated_at=timezone.now()))
    number.refresh_from_db()
    if not changed and number.shared_sender != shared_sender:
        raise NumberHeld("A tenant holds this number; release it before making it a shared sender.")
    return bool(changed)


def number_retire(*, number: PhoneNumber, actor: Actor = SYSTEM) -> bool:
    """Takes a number out of service for good; refused (409 `number_held`) while a tenant holds it."""
    with transaction.atomic():
        for frm in (NumberStatus.AVAILABLE, NumberStatus.QUARANTINED):
            if _number_move(number_id=number.pk, frm=frm, to=NumberStatus.RETIRED, kind=Kind.RETIRED, tenant=None,
                            actor=actor, quarantined_until=None):
                pool_members_drop(number_ids=[number.pk])  # none left normally: its holding ended before
                return True
    number.refresh_from_db()
    if number.status in (NumberStatus.ASSIGNED, NumberStatus.LEASED):
        raise NumberHeld()
    return False


def number_force_release(*, number: PhoneNumber, actor: Actor = SYSTEM) -> bool:
    """An account manager ends whatever holding the number has (lease or assignment)."""
    # unscoped: an account manager releases a number: whichever tenant holds it
    lease = NumberLease.unscoped.filter(number=number, released_at=None).select_related("tenant").first()
    if lease is not None:
        return number_lease_release(tenant=lease.tenant, lease=lease, actor=actor, reason=Reason.FORCE_RELEASED)
    assignment = NumberAssignment.unscoped.filter(number=number, ended_at=None).select_related("tenant").first()
    if assignment is not None:
        return number_release_assignment(tenant=assignment.tenant, assignment=assignment, actor=actor,
                                         reason=Reason.FORCE_RELEASED)
    return False
