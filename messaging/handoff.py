"""The interface between accept and dispatch: `dispatch_handoff(message_ids=..., queue=...)`.

Accept calls it for the queued messages it stored; how dispatch picks them up is dispatch's
business behind it (today one Celery task per accept: message_dispatch_task for one message,
messages_dispatch_task carrying all the ids of a batch). The hand-off is
durable without the broker: a message is a committed `queued` row, and a task that is never
published (broker down) leaves `enqueued_at` empty, so the sweeper hands the message over within
MESSAGE_DISPATCH_PICKUP_SECONDS plus one sweep (docs/send-pipeline.md).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from messaging.models import Message
from messaging.tasks import message_dispatch_task, messages_dispatch_task

logger = logging.getLogger("smsportal.pipeline")


def dispatch_handoff(*, message_ids: Sequence[int], queue: str, stamped: bool = False) -> None:
    """Hand these queued messages to dispatch after the current transaction commits (at once outside one).

    `stamped`: the rows were stored with `enqueued_at` already set (a batch, messaging/accept/store.py),
    so a publish that succeeds writes nothing and one that fails clears the stamp.
    Never raises: the answer to a committed accept does not depend on the broker."""
    ids = list(message_ids)
    if ids:
        transaction.on_commit(lambda: _publish(ids, queue, stamped=stamped), robust=True)


def _publish(message_ids: list[int], queue: str, *, stamped: bool = False) -> None:
    try:
        if len(message_ids) == 1:
            message_dispatch_task.apply_async((message_ids[0],), queue=queue)
        else:
            messages_dispatch_task.apply_async((message_ids,), queue=queue)
    except Exception as exc:  # kombu's OperationalError, or whatever else the broker client raises
        logger.warning("dispatch of %d messages not published (%s: %s); the sweeper hands them over",
                       len(message_ids), exc.__class__.__name__, exc)
        if stamped:  # unscoped: after commit, by the ids just stored; the sweeper's hand-over needs the stamp empty
            Message.unscoped.filter(pk__in=message_ids, sequence=1).update(enqueued_at=None)
        return
    if stamped:
        return
    # Only while still at their first step (as message_dispatch_publish): a later step has its own hand-over.
    # unscoped: after commit, where the request's tenant context is gone; by the ids just stored
    Message.unscoped.filter(pk__in=message_ids, sequence=1).update(enqueued_at=timezone.now())
