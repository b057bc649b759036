"""Celery entry points of the numbers app: thin wrappers around numbers.services."""
from __future__ import annotations

from numbers import services

from celery import shared_task

from smsportal.tasks import TenantTask
from smsportal.tenancy import current_tenant


@shared_task(ignore_result=True)
def numbers_release_expired_leases_task() -> dict[str, int]:
    """Every minute from beat; safe when two runs overlap (see services.leases_release_expired)."""
    return services.leases_release_expired()


@shared_task(base=TenantTask, ignore_result=True)
def number_lease_notify_expiring_task(lease_id: int, *, tenant_id: int) -> bool:
    """At a lease's notice time (countdown set at acquire/extend), under the lease's tenant; a duplicate,
    or a task for an end that has moved, does nothing (see services.number_lease_notify_expiring)."""
    return services.number_lease_notify_expiring(tenant=current_tenant(), lease_id=lease_id)


@shared_task(ignore_result=True)
def numbers_usage_record_open_task() -> dict[str, int]:
    """Daily from beat (00:05 UTC): usage of the holdings still open, up to midnight; safe to run
    twice or overlapping (see services.numbers_usage_record_open)."""
    return services.numbers_usage_record_open()
