"""Reads of the numbers app for the API and the portal, always within one tenant."""
from __future__ import annotations

from numbers.errors import NumberNotFound
from numbers.models import HELD, NumberAssignment, NumberLease, NumberStatus, PhoneNumber

from django.db.models import Case, CharField, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from accounts.models import Tenant


def numbers_held(*, tenant: Tenant) -> QuerySet:
    """The numbers `tenant` holds, each annotated with its active holding: `holding_kind`
    (assignment or lease), `holding_id`, `holding_started_at` and `holding_expires_at` (leases)."""
    lease = NumberLease.unscoped.filter(tenant=tenant, number=OuterRef("pk"), released_at=None)
    assignment = NumberAssignment.unscoped.filter(tenant=tenant, number=OuterRef("pk"), ended_at=None)
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


def holding_get(*, tenant: Tenant, number_public_id: str) -> NumberAssignment | NumberLease:
    """The tenant's active holding (assignment or lease) of a number; 404 when it holds none."""
    assignment = (NumberAssignment.unscoped.select_related("number")
                  .filter(tenant=tenant, number__public_id=number_public_id, ended_at=None).first())
    if assignment is not None:
        return assignment
    lease = (NumberLease.unscoped.select_related("number")
             .filter(tenant=tenant, number__public_id=number_public_id, released_at=None).first())
    if lease is not None:
        return lease
    raise NumberNotFound()


def lease_get(*, tenant: Tenant, public_id: str) -> NumberLease:
    """One of the tenant's leases (active or ended); another tenant's answers like a missing one."""
    lease = NumberLease.unscoped.select_related("number").filter(tenant=tenant, public_id=public_id).first()
    if lease is None:
        raise NumberNotFound()
    return lease
