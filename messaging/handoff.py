"""The interface between accept and dispatch: `dispatch_handoff(message_ids=..., queue=...)`.

Accept calls it for the queued messages it stored; how dispatch picks them up is dispatch's
business behind it (message_dispatch_task for one message; for more, messages_dispatch_task
carrying up to DISPATCH_BATCH ids each, dispatched as a batch by messaging/dispatch.py). The hand-off is
durable without the broker: a message is a committed `queued` row, and a task that is never
published (broker down) leaves `enqueued_at` empty, so the sweeper hands the message over within
MESSAGE_DISPATCH_PICKUP_SECONDS plus one sweep (docs/send-pipeline.md).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging.dispatch import dispatch_batches
from messaging.models import Message
from messaging.tasks import message_dispatch_task, messages_dispatch_task

logger = logging.getLogger("smsportal.pipeline")


def dispatch_handoff(*, message_ids: Sequence[int], queue: str, stamped: bool = False) -> None:
    """Hand these queued messages to dispatch after the current transaction commits (at once outside one).

    `stamped`: the rows were stored with `enqueued_at` already set (a batch, messaging/accept/store.py),
    so a publish that succeeds writes nothing and one that fails clears the stamp.
    Never raises: the answer to a committed accept does not depend on the broker. With the dispatcher
    (handoff_by_dispatcher) it does nothing: the committed rows are the hand-over."""
    ids = list(message_ids)
    if ids and not handoff_by_dispatcher():
        transaction.on_commit(lambda: _publish(ids, queue, stamped=stamped), robust=True)


def handoff_by_dispatcher() -> bool:
    """Whether queued rows are left for the dispatcher process (MESSAGE_HANDOFF = "dispatcher",
    messaging/dispatcher.py): stored with `enqueued_at` empty, no publish, no stamp afterwards."""
    return settings.MESSAGE_HANDOFF == "dispatcher"


def _publish(message_ids: list[int], queue: str, *, stamped: bool = False) -> None:
    try:
        if len(message_ids) == 1:
            message_dispatch_task.apply_async((message_ids[0],), queue=queue)
        else:
            for batch in dispatch_batches(message_ids):
                messages_dispatch_task.apply_async((batch,), queue=queue)
    except Exception as exc:  # kombu's OperationalError, or whatever else the broker client raises
        logger.warning("dispatch of %d messages not published (%s: %s); the sweeper hands them over",
                       len(message_ids), exc.__class__.__name__, exc)
        if stamped:
            _stamp(message_ids, clear=True)  # the sweeper's hand-over needs the stamp empty
        return
    if not stamped:
        _stamp(message_ids)


def _stamp(message_ids: list[int], *, clear: bool = False) -> None:
    """Record that their tasks are in the broker now, or with `clear` that they are not (a failed
    publish of rows stored stamped). Only while still at their first step (as
    message_dispatch_publish): a later step has its own hand-over. Rows a worker holds are skipped:
    it has them already (a claimed message is no longer the sweeper's business), and an UPDATE of
    many rows locks them in heap order, which against a claim's id order could deadlock."""
    with transaction.atomic():
        # unscoped: after commit, where the request's tenant context is gone; by the ids just stored
        free = Message.unscoped.filter(pk__in=message_ids, sequence=1).select_for_update(skip_locked=True)
        Message.unscoped.filter(pk__in=free.values("pk")).update(enqueued_at=None if clear else timezone.now())
