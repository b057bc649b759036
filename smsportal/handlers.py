"""The web process's two Django handlers: /v1 on the API's own middleware chain, the rest on MIDDLEWARE.

The API authenticates every request by its key (accounts/authentication.py) and never reads a session,
a cookie, a CSRF token, a signed-in user, a second factor, a portal notice or the portal's tenant. Those
layers (settings.MIDDLEWARE minus settings.API_MIDDLEWARE) still cost every send their calls, a twentieth
of its CPU (docs/performance.md). So /v1 is served by a Django handler whose chain is API_MIDDLEWARE:
the client address and trusted proxies, the security headers and HTTPS redirect, JSON errors, the host
check and Content-Length (CommonMiddleware), and the CSP of the docs page. URLs, views, signals and
settings are the same for both handlers.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

API_PREFIX = "/v1/"


@contextlib.contextmanager
def _middleware_setting(middleware: list[str]) -> Iterator[None]:
    """settings.MIDDLEWARE is `middleware` while a handler builds its chain: Django reads no other setting
    for it. Only at start-up, before any request is served."""
    shipped = settings.MIDDLEWARE
    settings.MIDDLEWARE = middleware
    try:
        yield
    finally:
        settings.MIDDLEWARE = shipped


class ApiWSGIHandler(WSGIHandler):
    """Django's WSGI handler, with settings.API_MIDDLEWARE for its chain."""

    def load_middleware(self, is_async=False):
        with _middleware_setting(settings.API_MIDDLEWARE):
            super().load_middleware(is_async)


def is_api_path(path_info: str) -> bool:
    return path_info.startswith(API_PREFIX)


class ApiRouter:
    """A WSGI application: a path under /v1/ goes to `api`, every other one to `site`."""

    def __init__(self, *, api, site) -> None:
        self.api, self.site = api, site

    def __call__(self, environ, start_response):
        handler = self.api if is_api_path(environ.get("PATH_INFO", "")) else self.site
        return handler(environ, start_response)
