"""Fan-out rows: many events of one type recorded as one outbox row, expanded into deliveries by the worker.

An accepted batch of 1,000 messages used to write 1,000 WebhookDelivery rows and publish 1,000
tasks inside the request (`message.queued` for each, to its callback_url). Now the request writes
one EventFanout row carrying the batch's ids, in its own transaction, and publishes one task after
commit. The worker's `event_fanout_expand` asks the emitting app's expander for the events and
records their deliveries through `events_emit`, exactly as a direct emit would (same targets, same
payloads, signed when delivered). Nothing is lost if the broker is down at accept: the row is
committed with the messages, and `event_fanouts_expand_due` (beat) expands what no task did.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from smsportal.bulk import rows_update
from smsportal.events import registry, selectors
from smsportal.events.models import EventFanout

logger = logging.getLogger("smsportal.webhooks")

QUEUE = "webhooks"
# A fan-out row is left this long to its own task before the beat job expands it.
PICKUP = timedelta(seconds=10)
DUE_BATCH = 50
# For an emitter that writes the row in its own SQL statement (messaging/accept/store.py).
FANOUT_TABLE = EventFanout._meta.db_table


def event_fanout_record(*, tenant_id: int, event_type: str, items: Sequence, callback_urls: Iterable[str] = (),
                        publish: bool = True) -> EventFanout | None:
    """Record one fan-out row for `items` (the emitter's references, e.g. message ids) if anyone listens:
    an item has a callback_url, or an enabled endpoint of the tenant subscribes to `event_type` (one
    query). Inside the caller's transaction; its task is published after commit, or with `publish`
    off nothing is: the dispatcher expands it (event_fanouts_expand_pending), the beat job if it is down."""
    if not items or not event_fanout_wanted(tenant_id=tenant_id, event_type=event_type, callback_urls=callback_urls):
        return None
    # unscoped: the outbox of the caller's tenant, written with its explicit tenant id
    fanout = EventFanout.unscoped.create(tenant_id=tenant_id, event_type=event_type, items=list(items))
    if publish:
        transaction.on_commit(lambda: _publish(fanout.pk), robust=True)
    return fanout


def event_fanout_wanted(*, tenant_id: int, event_type: str, callback_urls: Iterable[str] = ()) -> bool:
    """Whether a fan-out row of `event_type` has anyone to deliver to: a callback_url, or an enabled
    endpoint of the tenant subscribed (from the endpoints cache: WEBHOOK_ENDPOINTS_CACHE_SECONDS). For a caller that
    writes the row in its own statement (messaging/accept/store.py's single-send CTE)."""
    if event_type not in registry.event_types():
        raise ValueError(f"unregistered event type {event_type!r}: register it in the emitting app's ready()")
    registry.fanout_expander(event_type)  # fail now, not in the worker, if the app registered no expander
    if any(callback_urls):
        return True
    return selectors.event_subscribers_cached(tenant_id=tenant_id, event_type=event_type).listening(tenant_id=tenant_id)


def _publish(fanout_id: int) -> None:
    from smsportal.events.tasks import event_fanout_expand_task

    try:
        event_fanout_expand_task.apply_async((fanout_id,), queue=QUEUE)
    except Exception as exc:  # the broker's error, whatever the client raises: the beat job expands it
        logger.warning("fan-out %s not published (%s: %s); the beat job expands it", fanout_id,
                       exc.__class__.__name__, exc)


def event_fanout_expand(*, fanout_id: int) -> int | None:
    """Expand one fan-out row into its deliveries (events_emit: one query for the endpoints, one bulk
    INSERT, their tasks after commit) and mark it expanded; returns the number of deliveries.

    Once only: the row is locked (SKIP LOCKED, so a concurrent run passes it by) and must still be
    unexpanded; the deliveries and the mark commit together. None when there was nothing to do."""
    from smsportal.events.services import events_emit

    with transaction.atomic():
        # unscoped: the worker, by the id of a row any tenant's accept wrote
        fanout = (EventFanout.unscoped.select_for_update(skip_locked=True)
                  .filter(pk=fanout_id, expanded_at__isnull=True).first())
        if fanout is None:
            return None
        events = registry.fanout_expander(fanout.event_type)(tenant_id=fanout.tenant_id, items=fanout.items)
        deliveries = events_emit(event_type=fanout.event_type, events=events) if events else []
        # unscoped: the same row, by its id
        EventFanout.unscoped.filter(pk=fanout.pk).update(expanded_at=timezone.now(), deliveries=len(deliveries))
    return len(deliveries)


def event_fanouts_expand_due(*, now=None) -> int:
    """Beat: expand the fan-out rows older than PICKUP that no task expanded (lost, or the broker was
    down at accept), at most DUE_BATCH a run; safe beside a running task or a second beat."""
    now = now or timezone.now()
    # unscoped: the beat job, over every tenant's outbox
    due = list(EventFanout.unscoped.filter(expanded_at__isnull=True, created_at__lte=now - PICKUP)
               .order_by("created_at").values_list("pk", flat=True)[:DUE_BATCH])
    return sum(1 for fanout_id in due if event_fanout_expand(fanout_id=fanout_id) is not None)


def event_fanouts_expand_pending(*, limit: int = DUE_BATCH) -> int:
    """The dispatcher (messaging/dispatcher.py): expand up to `limit` unexpanded fan-out rows of any age
    in one transaction, with one events_emit per event type; returns the number of rows expanded.

    Several dispatchers, the beat job and expand tasks may run at once: every row is locked with
    SKIP LOCKED and must still be unexpanded, so each row is expanded once."""
    from smsportal.events.services import events_emit

    with transaction.atomic():
        # unscoped: the dispatcher, over every tenant's outbox
        fanouts = list(EventFanout.unscoped.select_for_update(skip_locked=True).filter(expanded_at__isnull=True)
                       .order_by("created_at")[:limit])
        by_type: dict[str, list[tuple[EventFanout, list]]] = {}
        for fanout in fanouts:
            events = registry.fanout_expander(fanout.event_type)(tenant_id=fanout.tenant_id, items=fanout.items)
            by_type.setdefault(fanout.event_type, []).append((fanout, events))
        now = timezone.now()
        for event_type, expanded in by_type.items():
            events = [event for _, row_events in expanded for event in row_events]
            deliveries = events_emit(event_type=event_type, events=events) if events else []
            _expanded_mark(expanded=expanded, deliveries=deliveries, now=now)
    return len(fanouts)


def _expanded_mark(*, expanded: list[tuple[EventFanout, list]], deliveries: list, now) -> None:
    """Set expanded_at, and each row's own count of deliveries (by its events' tenant and subject)."""
    per_subject: dict[tuple[int, str], int] = {}
    for delivery in deliveries:
        key = (delivery.tenant_id, delivery.subject)
        per_subject[key] = per_subject.get(key, 0) + 1
    counts = {fanout.pk: {"deliveries": sum(per_subject.get((event.tenant_id, event.subject), 0) for event in events)}
              for fanout, events in expanded}
    rows_update(model=EventFanout, values=counts, common={"expanded_at": now})  # one statement for the claim
