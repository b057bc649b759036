"""Celery entry points of webhooks, on the `webhooks` queue: thin wrappers around the delivery services."""
from __future__ import annotations

from celery import shared_task

from smsportal.events import fanout, services
from smsportal.events.delivery import QUEUE


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def webhook_deliver_task(delivery_id: int) -> None:
    """One attempt; a short wait until the next one rides on a countdown (longer ones: the beat job)."""
    delay = services.webhook_delivery_attempt(delivery_id=delivery_id)
    if delay is not None:
        webhook_deliver_task.apply_async((delivery_id,), queue=QUEUE, countdown=delay)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def webhooks_deliver_task(delivery_ids: list[int]) -> None:
    """One attempt of each, made concurrently (smsportal/events/delivery.py webhook_deliveries_attempt)."""
    for delivery_id, delay in services.webhook_deliveries_attempt(delivery_ids=delivery_ids).items():
        webhook_deliver_task.apply_async((delivery_id,), queue=QUEUE, countdown=delay)


@shared_task(ignore_result=True)
def webhooks_retry_due_task() -> int:
    return services.webhooks_retry_due()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def event_fanout_expand_task(fanout_id: int) -> None:
    """A fan-out row (an accepted batch's message.queued) into its deliveries; a duplicate does nothing."""
    fanout.event_fanout_expand(fanout_id=fanout_id)


@shared_task(ignore_result=True)
def event_fanouts_expand_due_task() -> int:
    return fanout.event_fanouts_expand_due()
