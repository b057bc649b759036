"""ASGI entry point of the long-poll process (gunicorn with uvicorn workers, Procfile.dev `longpoll`).

The main web process is smsportal.wsgi (Procfile.dev `web`); the proxy routes the lease long-poll here.

Two Django handlers behind one router:
- a request whose view is a coroutine function (the lease long-poll, numbers/api/longpoll.py) goes
  to Django's ASGI handler, so it can wait without a thread;
- every other request (all our views are sync) runs whole on one thread of a fixed pool, through
  Django's WSGI handler (a2wsgi's bridge), as under gunicorn's threaded workers. Django's ASGI
  handler would hop threads for each sync middleware and the view, which costs a third of the
  throughput of POST /v1/messages (bench/send.py figures in docs/leases.md).

SMSPORTAL_ASGI tells the settings, which then lend PostgreSQL connections from psycopg's pool.

Run it with the worker class smsportal.asgi_worker.UvicornWorker and smsportal/gunicorn_conf.py (Procfile.dev `longpoll`,
the README's production command): neither gunicorn nor uvicorn then believes a forwarded header;
Django decides, from TRUSTED_PROXIES.
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
from smsportal.handlers import ApiRouter, ApiWSGIHandler  # noqa: E402

# /v1 on the API's own middleware chain, as in smsportal.wsgi (smsportal/handlers.py).
sync_handler = WSGIMiddleware(ApiRouter(api=ApiWSGIHandler(), site=get_wsgi_application()),
                              workers=int(os.environ.get("WEB_THREADS", "8")))


def wants_async(path: str) -> bool:
    try:
        return iscoroutinefunction(resolve(path).func)
    except Resolver404:
        return False


def without_underscore_headers(scope):
    """The scope without request headers whose name holds a "_".

    Both handlers map "_" and "-" in a header name alike and join the values, so a client behind our
    proxy could add its own hop to the proxy's X-Forwarded-For by sending X_Forwarded_For. gunicorn
    drops such headers under WSGI (header_map "drop", smsportal/gunicorn_conf.py); uvicorn keeps them."""
    headers = scope["headers"]
    if not any(b"_" in name for name, _ in headers):
        return scope
    return {**scope, "headers": [(name, value) for name, value in headers if b"_" not in name]}


async def application(scope, receive, send):
    if scope["type"] == "http":
        scope = without_underscore_headers(scope)
    if scope["type"] == "http" and not wants_async(scope["path"]):
        await sync_handler(scope, receive, send)
    else:
        await async_handler(scope, receive, send)


# A body over the limit is refused here, before either handler reads it (smsportal/bodylimit.py).
application = AsgiBodyLimit(application)
