"""GET /v1/numbers/leases/{lease_id}/messages?wait=N: the long-poll, as an async view.

The request runs the DRF view once (`LeaseMessagesView`: authentication, IP allowlist, scope,
throttles, the lease lookup and the query validation, all as for any /v1 view). When the lease has
no message yet, is still running and the client asked to wait, that view leaves the wait to this
one: the database connection is closed, and the wait is `asyncio.sleep` between checks, each of
which borrows a thread and a connection for one EXISTS query and gives both back. Under ASGI
(Procfile.dev's `longpoll` process, where the proxy routes this path) a waiting client therefore holds neither a connection nor a worker thread; every
middleware of ours is async-capable (smsportal/middleware.py) so none pins a thread around it.
Under WSGI (the test client, or a WSGI deployment) Django runs the same coroutine while the request's
thread waits for it, so there the checks run on that thread, with the request's own connection.
"""
from __future__ import annotations

import asyncio
from numbers import selectors
from numbers.api.serializers import InboundMessageSerializer
from numbers.api.views import LeaseMessagesView

from asgiref.sync import SyncToAsync, sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.db import connection
from django.views.decorators.csrf import csrf_exempt

# How often a waiting request checks for a message: the latency it adds, against one EXISTS per check.
POLL_INTERVAL = 0.25


def _closing(function):
    """Run `function` and give its thread's database connection back (to the pool, under ASGI on PostgreSQL)."""
    def run(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        finally:
            if not connection.in_atomic_block:
                connection.close()
    return run


def _messages_data(*, tenant_id: int, lease_id: int) -> list[dict]:
    return InboundMessageSerializer(selectors.lease_messages(tenant_id=tenant_id, lease_id=lease_id), many=True).data


def _request_thread_release() -> None:
    """Under ASGI, let the request's idle thread end while it waits.

    Django's ASGI handler gives each request one thread for its sync parts (asgiref's per-context
    executor), kept until the request ends. Dropping that executor here ends the thread now; asgiref
    makes a fresh one if the request runs sync code again (rendering the answer, request_finished).
    Relies on asgiref's `context_to_thread_executor`; if that ever changes, this does nothing and the
    thread merely idles (numbers/tests/test_longpoll_asgi.py counts threads to catch it)."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if context is None or executors is None:
        return
    executor = executors.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)


def lease_messages_view():
    """The URL's view: an async function carrying the DRF class for the schema and the route checks."""
    first_pass = _closing(LeaseMessagesView.as_view())

    async def view(request, lease_id):
        loop = asyncio.get_running_loop()
        started = loop.time()
        request.lease_wait_async = True
        response = await sync_to_async(first_pass)(request, lease_id=lease_id)
        waiting = getattr(request, "lease_wait", None)  # (tenant pk, lease pk, seconds), set by LeaseMessagesView
        if waiting is None:
            return response
        tenant_pk, lease_pk, wait = waiting
        # Under ASGI any free thread of the loop's executor will do; under WSGI, the request's thread.
        sensitive = not isinstance(request, ASGIRequest)
        if not sensitive:
            _request_thread_release()
        has_messages = sync_to_async(_closing(selectors.lease_has_messages), thread_sensitive=sensitive)
        messages_data = sync_to_async(_closing(_messages_data), thread_sensitive=sensitive)
        deadline = started + wait
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(POLL_INTERVAL, remaining))
            if await has_messages(tenant_id=tenant_pk, lease_id=lease_pk):
                break
        response.data = await messages_data(tenant_id=tenant_pk, lease_id=lease_pk)
        return response

    view.cls = LeaseMessagesView
    view.initkwargs = {}
    view.view_class = LeaseMessagesView
    return csrf_exempt(view)
