"""Celery entry points of the send pipeline: thin wrappers around messaging.pipeline."""
from __future__ import annotations

from celery import shared_task

from messaging import pipeline


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def message_dispatch_task(message_id: int) -> None:
    """One attempt; the pipeline hands a retry over itself (a countdown, or the sweeper when due)."""
    pipeline.message_dispatch(message_id=message_id)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def messages_dispatch_task(message_ids: list[int]) -> None:
    """The messages of one accept (messaging/handoff.py), each dispatched as its own task would do it."""
    for message_id in message_ids:
        message_dispatch_task(message_id)


@shared_task(acks_late=True, ignore_result=True)
def simulator_receipt_task(carrier_message_id: str, status: str, reference: str) -> None:
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=carrier_message_id, status=status,
                           reference=reference)


@shared_task(ignore_result=True)
def messages_sweep_task() -> dict[str, int]:
    return pipeline.messages_sweep()
