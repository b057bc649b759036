"""Reads of the numbers app for the API and the portal, always within one tenant."""
from __future__ import annotations

from datetime import UTC, date, datetime
from numbers.errors import NumberNotFound, PoolNotFound
from numbers.models import (
    HELD,
    InboundMessage,
    NumberAssignment,
    NumberLease,
    NumberPool,
    NumberStatus,
    NumberType,
    NumberUsage,
    PhoneNumber,
)
from typing import TYPE_CHECKING

from django.db.models import Case, CharField, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant



@tenant_scoped
def numbers_held(*, tenant: Tenant) -> QuerySet:
    """The numbers `tenant` holds, each annotated with its active holding: `holding_kind`
    (assignment or lease), `holding_id`, `holding_started_at` and `holding_expires_at` (leases)."""
    lease = NumberLease.objects.filter(tenant=tenant, number=OuterRef("pk"), released_at=None)
    assignment = NumberAssignment.objects.filter(tenant=tenant, number=OuterRef("pk"), ended_at=None)
    return (
        PhoneNumber.objects.filter(holder=tenant, status__in=HELD)
        .annotate(
            holding_kind=Case(When(status=NumberStatus.LEASED, then=Value("lease")), default=Value("assignment"),
                              output_field=CharField()),
            holding_id=Coalesce(Subquery(lease.values("public_id")[:1]), Subquery(assignment.values("public_id")[:1])),
            holding_started_at=Coalesce(Subquery(lease.values("started_at")[:1]),
                                        Subquery(assignment.values("started_at")[:1])),
            holding_expires_at=Subquery(lease.values("expires_at")[:1]),
        )
    )


@tenant_scoped
def holding_get(*, tenant: Tenant, number_public_id: str) -> NumberAssignment | NumberLease:
    """The tenant's active holding (assignment or lease) of a number; 404 when it holds none."""
    assignment = (NumberAssignment.objects.select_related("number")
                  .filter(tenant=tenant, number__public_id=number_public_id, ended_at=None).first())
    if assignment is not None:
        return assignment
    lease = (NumberLease.objects.select_related("number")
             .filter(tenant=tenant, number__public_id=number_public_id, released_at=None).first())
    if lease is not None:
        return lease
    raise NumberNotFound()


@tenant_scoped
def lease_get(*, tenant: Tenant, public_id: str) -> NumberLease:
    """One of the tenant's leases (active or ended); another tenant's answers like a missing one."""
    lease = NumberLease.objects.select_related("number").filter(tenant=tenant, public_id=public_id).first()
    if lease is None:
        raise NumberNotFound()
    return lease


def number_held_get(*, tenant: Tenant, number: str) -> PhoneNumber:
    """A number (E.164) the tenant holds now; 404 for any other, another tenant's included."""
    found = PhoneNumber.objects.filter(number=number, holder=tenant, status__in=HELD).first()
    if found is None:
        raise NumberNotFound(field="to")
    return found


@tenant_scoped
def inbound_messages(
    *, tenant: Tenant, to: str | None = None, lease: str | None = None, has_code: bool | None = None,
    received_after: datetime | None = None, received_before: datetime | None = None, **filters,
) -> QuerySet:
    """The tenant's inbound messages with the API filters (`from` comes in `filters`)."""
    qs = InboundMessage.objects.select_related("lease").filter(tenant=tenant)
    sender = filters.get("from")
    if to:
        qs = qs.filter(to=to)
    if sender:
        qs = qs.filter(sender=sender)
    if lease:
        qs = qs.filter(lease__public_id=lease)
    if has_code is not None:
        qs = qs.exclude(code="") if has_code else qs.filter(code="")
    if received_after:
        qs = qs.filter(received_at__gt=received_after)
    if received_before:
        qs = qs.filter(received_at__lt=received_before)
    return qs


@tenant_scoped
def inbound_message_get(*, tenant: Tenant, public_id: str) -> InboundMessage:
    message = InboundMessage.objects.select_related("lease").filter(tenant=tenant, public_id=public_id).first()
    if message is None:
        raise NumberNotFound()
    return message


def lease_messages(*, tenant_id: int, lease_id: int) -> list[InboundMessage]:
    """A lease's inbound messages, oldest first (the long-poll's answer, numbers/api/longpoll.py)."""
    return list(InboundMessage.objects.select_related("lease").filter(tenant_id=tenant_id, lease_id=lease_id)
                .order_by("received_at", "id"))


def lease_has_messages(*, tenant_id: int, lease_id: int) -> bool:
    return InboundMessage.objects.filter(tenant_id=tenant_id, lease_id=lease_id).exists()


# --- Number pools ---------------------------------------------------------------------------------


def _sms_capable(numbers: QuerySet) -> QuerySet:
    # JSON containment is not portable to SQLite; the quoted element matches the same rows.
    return numbers.filter(capabilities__icontains='"sms"')


def numbers_poolable(*, tenant: Tenant) -> QuerySet:
    """The numbers the tenant may put in a pool: held now (assigned or leased) and able to send SMS."""
    return _sms_capable(PhoneNumber.objects.filter(holder=tenant, status__in=HELD)).order_by("number")


@tenant_scoped
def pool_list(*, tenant: Tenant) -> QuerySet:
    """The tenant's pools, each with `numbers` prefetched: only the members it still holds, by number."""
    return NumberPool.objects.filter(tenant=tenant).prefetch_related(
        Prefetch("numbers", queryset=PhoneNumber.objects.filter(holder=tenant, status__in=HELD).order_by("number"))
    )


@tenant_scoped
def pool_get(*, tenant: Tenant, public_id: str) -> NumberPool:
    """One of the tenant's pools by id; another tenant's answers like a missing one."""
    pool = pool_list(tenant=tenant).filter(public_id=public_id).first()
    if pool is None:
        raise PoolNotFound()
    return pool


@tenant_scoped
def pool_get_by_name(*, tenant: Tenant, name: str, field: str | None = None) -> NumberPool:
    pool = NumberPool.objects.filter(tenant=tenant, name=name).first()
    if pool is None:
        raise PoolNotFound(f"No number pool named {name!r}.", field=field)
    return pool


@tenant_scoped
def pool_members_usable(*, tenant: Tenant, pool: NumberPool) -> QuerySet:
    """The pool's numbers that can send for it now: still held by the tenant and SMS-capable, by number."""
    return numbers_poolable(tenant=tenant).filter(pool_memberships__pool=pool)


def sender_number_usable(*, tenant: Tenant, number: str) -> bool:
    """Whether `tenant` may send from `number` (E.164, or a short code's digits): it holds it now (rented
    or leased), or it is an available platform shared sender and the tenant may use shared senders.

    Any other number, another tenant's included, is refused the same way (messaging's sender check)."""
    usable = Q(holder=tenant, status__in=HELD)
    if tenant.shared_senders_allowed:
        usable |= Q(shared_sender=True, status=NumberStatus.AVAILABLE)
    return PhoneNumber.objects.filter(usable, number=number).exists()


# --- For billing (number rental and leases) --------------------------------------------------------


def number_type_choices() -> list[tuple[str, str]]:
    """The number types (PhoneNumber.type), for billing's number prices: billing may not import numbers.models."""
    return list(NumberType.choices)


def usage_rows_before(*, cut: datetime, since: date | None = None, day: date | None = None) -> QuerySet:
    """Every tenant's NumberUsage rows of the UTC days before `cut` (a midnight), from `since` or only `day`,
    annotated with the number's `number_type` and `number_country` and `charge_kind` (rental for an
    assignment, lease for a lease): what billing charges. Unscoped by design: the daily charge job."""
    # unscoped: the daily charge job reads every tenant's usage
    rows = NumberUsage.unscoped.filter(day__lt=cut.date())
    if since is not None:
        rows = rows.filter(day__gte=since)
    if day is not None:
        rows = rows.filter(day=day)
    return rows.annotate(
        number_type=F("number__type"), number_country=F("number__country"),
        charge_kind=Case(When(kind=NumberUsage.Kind.ASSIGNMENT, then=Value("rental")), default=Value("lease"),
                         output_field=CharField()),
    )


def usage_pending_from(*, cut: datetime) -> dict[tuple[int, int, str], date]:
    """Holdings whose usage before `cut` is not recorded yet: (tenant, number, usage kind) -> the first UTC day
    still open to writes. The daily usage job has not reached them (`usage_recorded_until` before `cut`), or a
    lease ended before `cut` still waits for the sweep, which records it to its end. Rows of those days may
    still grow, so billing leaves them for a later run; every other day before `cut` is final (each writer
    moves `usage_recorded_until` in the transaction that writes the rows)."""
    pending: dict[tuple[int, int, str], date] = {}
    holdings = (
        # unscoped: the daily charge job, over every tenant's open holdings
        (NumberAssignment.unscoped.filter(ended_at=None), NumberUsage.Kind.ASSIGNMENT),
        (NumberLease.unscoped.filter(released_at=None), NumberUsage.Kind.LEASE),
    )
    for queryset, kind in holdings:
        rows = queryset.filter(Q(usage_recorded_until__lt=cut) | Q(usage_recorded_until=None, started_at__lt=cut))
        for tenant_id, number_id, recorded, started in rows.values_list("tenant_id", "number_id",
                                                                        "usage_recorded_until", "started_at"):
            first = (recorded or started).astimezone(UTC).date()
            key = (tenant_id, number_id, kind)
            pending[key] = min(first, pending.get(key, first))
    return pending


# --- For sender substitution (messaging/accept/policies/senders.py) --------------------------------------


def shared_senders_by_country() -> dict[str, list[str]]:
    """The platform's shared sender numbers that can send now (available, SMS-capable), E.164 by country, by
    number: where a destination takes no alphanumeric sender they replace one (docs/compliance.md)."""
    by_country: dict[str, list[str]] = {}
    shared = _sms_capable(PhoneNumber.objects.filter(shared_sender=True, status=NumberStatus.AVAILABLE))
    for country, number in shared.order_by("number").values_list("country", "number"):
        by_country.setdefault(country, []).append(number)
    return by_country


@tenant_scoped
def pool_numbers_by_country(*, tenant: Tenant, name: str) -> dict[str, list[str]]:
    """The usable numbers of the tenant's pool `name` (held now, SMS-capable), E.164 by country; {} when the
    tenant has no pool of that name."""
    pool = NumberPool.objects.filter(name=name).first()
    if pool is None:
        return {}
    by_country: dict[str, list[str]] = {}
    for country, number in pool_members_usable(tenant=tenant, pool=pool).values_list("country", "number"):
        by_country.setdefault(country, []).append(number)
    return by_country
