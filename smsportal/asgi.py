"""ASGI entry point: what the web server runs (gunicorn with uvicorn workers, Procfile.dev).

Two Django handlers behind one router:
- a request whose view is a coroutine function (the lease long-poll, numbers/api/longpoll.py) goes
  to Django's ASGI handler, so it can wait without a thread;
- every other request (all our views are sync) runs whole on one thread of a fixed pool, through
  Django's WSGI handler (a2wsgi's bridge), as under gunicorn's threaded workers. Django's ASGI
  handler would hop threads for each sync middleware and the view, which costs a third of the
  throughput of POST /v1/messages (bench/send.py figures in docs/leases.md).

SMSPORTAL_ASGI tells the settings, which then lend PostgreSQL connections from psycopg's pool.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.settings")
os.environ.setdefault("SMSPORTAL_ASGI", "true")

from a2wsgi import WSGIMiddleware  # noqa: E402
from asgiref.sync import iscoroutinefunction  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import Resolver404, resolve  # noqa: E402

async_handler = get_asgi_application()  # sets Django up

from smsportal.bodylimit import AsgiBodyLimit  # noqa: E402  (needs Django set up)

sync_handler = WSGIMiddleware(get_wsgi_application(), workers=int(os.environ.get("WEB_THREADS", "8")))


def wants_async(path: str) -> bool:
    try:
        return iscoroutinefunction(resolve(path).func)
    except Resolver404:
        return False


async def application(scope, receive, send):
    if scope["type"] == "http" and not wants_async(scope["path"]):
        await sync_handler(scope, receive, send)
    else:
        await async_handler(scope, receive, send)


# A body over the limit is refused here, before either handler reads it (smsportal/bodylimit.py).
application = AsgiBodyLimit(application)
