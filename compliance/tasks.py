"""Celery entry points of compliance: thin wrappers around its services."""
from __future__ import annotations

from celery import shared_task

from compliance import retention


@shared_task(ignore_result=True)
def retention_redact_task() -> dict[str, int]:
    """Hourly from beat (migration 0006): message and inbound bodies past each tenant's retention redacted;
    safe when two runs overlap (batches skip the rows another run holds)."""
    return retention.retention_redact()
