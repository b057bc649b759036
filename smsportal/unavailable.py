"""The database unreachable: every entry point answers 503 `service_unavailable` with Retry-After
(the API in its error shape, the portal and admin with a plain page), never a 500 with a trace.

Three places see the error: the API's exception handler (views, authentication, throttles), the
API's JSON error middleware (views outside DRF), and `handler500` (the portal, and middleware of
any route: an exception there reaches only Django's error handler, the JSON middleware then writes
an API route's page as JSON, with its Retry-After).
"""
from __future__ import annotations

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template import loader
from django.views import defaults

from smsportal.errors import ServiceUnavailable

logger = logging.getLogger("smsportal.api")

# What psycopg raises (through Django's wrapper) for a refused, dropped or timed-out connection,
# a pool with no connection to lend, or a server shutting down. Also SQLite's "database is locked".
DATABASE_DOWN = (OperationalError, InterfaceError)


def database_unavailable(exc: BaseException | None) -> bool:
    """Whether `exc`, or an error it was raised from, is the database being unreachable."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, DATABASE_DOWN):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def unavailable_logged(exc: BaseException, where: str) -> ServiceUnavailable:
    logger.warning("database unavailable on %s: %s: %s", where, exc.__class__.__name__, exc)
    return ServiceUnavailable()


def unavailable_page() -> HttpResponse:
    """A plain page: rendered without the request, so nothing in it needs the database."""
    response = HttpResponse(loader.get_template("503.html").render(), status=503)
    response["Retry-After"] = str(ServiceUnavailable.retry_after)
    return response


def server_error(request):
    """handler500: the 503 page when the error being handled is the database being down, else Django's 500."""
    if database_unavailable(sys.exc_info()[1]):
        return unavailable_page()
    return defaults.server_error(request)
