"""Middleware plumbing shared by the project, and the Content-Security-Policy.

Every middleware of ours works in both stacks: under WSGI as before, and under ASGI (gunicorn with
uvicorn workers, see Procfile.dev) without a thread of its own. Django wraps a sync-only middleware
in a thread that stays blocked until the response is ready, so one sync middleware would make an
async view (the lease long-poll, numbers/api/longpoll.py) hold a thread for its whole wait.
"""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.messages.middleware import MessageMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class DualMiddleware:
    """Base of a middleware with a sync path (`handle`) and an async path (`ahandle`).

    Django builds the chain once per handler: `get_response` is a coroutine function under ASGI, and
    then `__call__` returns `ahandle`'s coroutine."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.ahandle(request)
        return self.handle(request)

    def handle(self, request):
        raise NotImplementedError

    async def ahandle(self, request):
        raise NotImplementedError


class ContentSecurityPolicyMiddleware(DualMiddleware):
    """No inline script, no framing, for the portal and admin."""

    def handle(self, request):
        return self._policy_set(request, self.get_response(request))

    async def ahandle(self, request):
        return self._policy_set(request, await self.get_response(request))

    @staticmethod
    def _policy_set(request, response):
        # Swagger UI and Django admin ship inline styles; they keep a looser style-src.
        if request.path.startswith(("/v1/docs", "/admin/")):
            response.setdefault("Content-Security-Policy", POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'"))
        else:
            response.setdefault("Content-Security-Policy", POLICY)
        return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise (sync only in 6.12) with an async path: static files are served from a thread,
    and every other request goes straight on without one."""

    async_capable = True

    def __init__(self, get_response):
        super().__init__(get_response)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request):
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)


class PortalMessageMiddleware(MessageMiddleware):
    """Django's messages (the portal's and admin's notices), left out under /v1: the API never shows one,
    and building their cookie and session storage was a part of every send's cost."""

    def process_request(self, request):
        if not request.path_info.startswith("/v1/"):
            super().process_request(request)

    def process_response(self, request, response):
        return super().process_response(request, response) if hasattr(request, "_messages") else response
