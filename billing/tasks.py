"""Celery entry points of billing: thin wrappers around its services."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings

from billing import charges, invoices


@shared_task(ignore_result=True)
def number_charges_run_task() -> dict[str, int]:
    """Daily from beat (00:30 UTC, after numbers' usage job): charge number rental and leases of the complete
    days not charged yet; safe to run twice or overlapping (see charges.number_charges_run). Nothing while
    BILLING_ENABLED is off, as nothing is rated then either."""
    if not settings.BILLING_ENABLED:
        return {}
    return charges.number_charges_run()


@shared_task(ignore_result=True)
def invoices_generate_task() -> dict[str, int]:
    """From beat at 02:00 UTC on the 1st: every tenant's invoice for the month before. Safe to run twice or
    overlapping (one invoice per tenant and period: a unique constraint); returns the counts per outcome."""
    counts: dict[str, int] = {}
    for generated in invoices.invoices_generate(period=invoices.period_previous()):
        counts[generated.outcome] = counts.get(generated.outcome, 0) + 1
    return counts
