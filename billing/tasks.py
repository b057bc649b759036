"""Celery entry points of billing: thin wrappers around its services."""
from __future__ import annotations

from celery import shared_task

from billing import invoices


@shared_task(ignore_result=True)
def invoices_generate_task() -> dict[str, int]:
    """From beat at 02:00 UTC on the 1st: every tenant's invoice for the month before. Safe to run twice or
    overlapping (one invoice per tenant and period: a unique constraint); returns the counts per outcome."""
    counts: dict[str, int] = {}
    for generated in invoices.invoices_generate(period=invoices.period_previous()):
        counts[generated.outcome] = counts.get(generated.outcome, 0) + 1
    return counts
