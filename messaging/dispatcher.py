"""The dispatcher: hands committed queued messages to dispatch in batches, so accept makes no broker call.

With MESSAGE_HANDOFF = "dispatcher" an accept only commits its rows: queued, `enqueued_at` empty
(the partial index `message_awaiting_handover` holds exactly those), and its `message.queued`
fan-out row unexpanded. `manage.py dispatcher` loops over `dispatcher_run_once`:

- claim up to CLAIM_BATCH awaiting messages with FOR UPDATE SKIP LOCKED and stamp `enqueued_at` in
  the same short transaction, so two dispatchers (or the sweeper's hand-over) never hand one message
  over twice: a row locked by one is skipped by the other, and a stamped row leaves the index;
- after commit publish ONE messages_dispatch_task per queue and DISPATCH_BATCH ids of the claim
  (messaging/dispatch.py); a publish that fails clears the stamps of what was not published, and the
  next claim (or the sweeper) takes them again;
- expand the pending fan-out rows in one transaction (smsportal/events/fanout.py).

Durable without the broker or without this process: the rows are committed before the answer, and
the sweeper hands over what no one did after MESSAGE_DISPATCH_PICKUP_SECONDS (docs/send-pipeline.md).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from messaging.dispatch import dispatch_batches
from messaging.models import Message, Status
from messaging.tasks import messages_dispatch_task
from smsportal.events import fanout

logger = logging.getLogger("smsportal.pipeline")

# Messages per claim: a few publishes of DISPATCH_BATCH ids; small enough that the lock is short.
CLAIM_BATCH = 1000


def messages_hand_over(*, limit: int = CLAIM_BATCH) -> int:
    """Claim up to `limit` queued messages no task is known for, and publish their dispatch tasks;
    returns how many were handed over (published)."""
    now = timezone.now()
    with transaction.atomic():
        # unscoped: the dispatcher, over every tenant's queued messages (the partial index's rows)
        claimed = list(Message.unscoped.select_for_update(skip_locked=True)
                       .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                               status=Status.QUEUED, enqueued_at__isnull=True)
                       .order_by("status_changed_at").values_list("pk", "message_type")[:limit])
        if not claimed:
            return 0
        # unscoped: the rows just locked, by their ids
        Message.unscoped.filter(pk__in=[pk for pk, _ in claimed]).update(enqueued_at=now)
    by_queue: dict[str, list[int]] = {}
    for pk, queue in claimed:
        by_queue.setdefault(queue, []).append(pk)
    return _publish(by_queue, stamp=now)


def _publish(by_queue: dict[str, list[int]], *, stamp) -> int:
    published: set[int] = set()
    try:
        for queue, ids in by_queue.items():
            for batch in dispatch_batches(ids):
                messages_dispatch_task.apply_async((batch,), queue=queue)
                published.update(batch)
    except Exception as exc:  # kombu's OperationalError, or whatever else the broker client raises
        unpublished = [pk for ids in by_queue.values() for pk in ids if pk not in published]
        logger.warning("dispatch of %d messages not published (%s: %s); the next claim takes them again",
                       len(unpublished), exc.__class__.__name__, exc)
        # Only our own stamp, on rows still at their first hand-over: a worker may hold them by now.
        # unscoped: the rows of this claim, by their ids
        Message.unscoped.filter(pk__in=unpublished, status=Status.QUEUED, enqueued_at=stamp).update(enqueued_at=None)
    return len(published)


def dispatcher_run_once() -> dict[str, int]:
    """One round: hand over a claim of messages, expand pending fan-out rows."""
    return {"handed_over": messages_hand_over(), "fanouts": fanout.event_fanouts_expand_pending()}


def dispatcher_run(*, stop: Callable[[], bool] = lambda: False, poll: float | None = None) -> None:
    """Loop until `stop()`: claim again at once while there was work, else wait `poll` seconds
    (DISPATCHER_POLL_SECONDS). An error (the database restarting) is logged and retried after a pause."""
    poll = settings.DISPATCHER_POLL_SECONDS if poll is None else poll
    while not stop():
        try:
            counts = dispatcher_run_once()
        except Exception:
            logger.exception("dispatcher round failed; retrying")
            _connections_close()
            time.sleep(1)
            continue
        if not any(counts.values()):
            time.sleep(poll)


def _connections_close() -> None:
    from django.db import connections

    connections.close_all()  # a broken connection is reopened on the next query
