"""Celery entry points of the numbers app: thin wrappers around numbers.services."""
from __future__ import annotations

from numbers import services

from celery import shared_task


@shared_task(ignore_result=True)
def numbers_release_expired_leases_task() -> dict[str, int]:
    """Every minute from beat; safe when two runs overlap (see services.leases_release_expired)."""
    return services.leases_release_expired()
