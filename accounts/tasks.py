"""Celery entry points of accounts."""
from celery import shared_task

from smsportal.api.idempotency import idempotency_records_purge


@shared_task
def idempotency_records_purge_task() -> int:
    """Beat, hourly (migration 0005): drop idempotency records past IDEMPOTENCY_TTL_HOURS. Safe to overlap."""
    return idempotency_records_purge()
