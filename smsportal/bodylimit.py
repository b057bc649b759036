"""The request body limit, enforced at the edge of both entry points before any byte of the body is parsed.

`API_MAX_BODY_BYTES` (2 MiB) for /v1, `PORTAL_MAX_BODY_BYTES` (8 MiB) for everything else (the admin's
number import takes a 5 MB file). A larger body gets 413 `request_too_large` at once:

- with a Content-Length, from the header alone: nothing of the body is read;
- chunked (no Content-Length), after reading at most the limit plus one byte. A smaller chunked body
  is handed on with a Content-Length, as Django only reads a body whose length it is told.

Under ASGI the 413 says `Connection: close`, so that uvicorn closes the connection instead of reading
(and throwing away) the rest of the body to keep it open. A WSGI application may not send that header
(PEP 3333): gunicorn's sync worker always closes, its threaded one keeps the connection and discards
what the client still sends. gunicorn has no body limit of its own: the proxy in front sets the same
one (README, production guide), and answers such a client itself.

`WsgiBodyLimit` wraps Django's WSGI handler (smsportal/wsgi.py); `AsgiBodyLimit` wraps the ASGI router
(smsportal/asgi.py), so it also covers the long-poll's async handler, which reads a whole body
before any middleware runs.
"""
from __future__ import annotations

import io
import json

from django.conf import settings

from smsportal.api.exceptions import error_body

STATUS = "413 Request Entity Too Large"


def _is_api(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def limit_for(path: str) -> int:
    return settings.API_MAX_BODY_BYTES if _is_api(path) else settings.PORTAL_MAX_BODY_BYTES


def declared_length(value: str | bytes | None) -> int | None:
    """The Content-Length, or None without a usable one (the server refuses a malformed one itself)."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


def is_chunked(transfer_encoding: str | bytes | None) -> bool:
    value = transfer_encoding.decode("latin-1") if isinstance(transfer_encoding, bytes) else transfer_encoding
    return "chunked" in (value or "").lower()


def refusal(path: str, limit: int) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of the 413: our JSON error under /v1, plain text elsewhere."""
    message = f"The request body is larger than {limit} bytes."
    if _is_api(path):
        body, content_type = json.dumps(error_body("request_too_large", message)).encode(), "application/json"
    else:
        body, content_type = message.encode(), "text/plain; charset=utf-8"
    return [("Content-Type", content_type), ("Content-Length", str(len(body)))], body


class WsgiBodyLimit:
    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        limit = limit_for(path)
        length = declared_length(environ.get("CONTENT_LENGTH"))
        if length is None and is_chunked(environ.get("HTTP_TRANSFER_ENCODING")):
            body = environ["wsgi.input"].read(limit + 1)
            length = len(body)
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(length)
        if length is not None and length > limit:
            headers, content = refusal(path, limit)
            start_response(STATUS, headers)
            return [content]
        return self.app(environ, start_response)


class AsgiBodyLimit:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = limit_for(scope["path"])
        headers = dict(scope["headers"])
        length = declared_length(headers.get(b"content-length"))
        if length is None and is_chunked(headers.get(b"transfer-encoding")):
            body = await _body_read(receive, limit + 1)
            if body is None:
                return None  # the client went away
            length = len(body)
            scope = {**scope, "headers": _with_length(scope["headers"], length)}
            receive = _replay(body, receive)
        if length is not None and length > limit:
            return await _refuse(send, scope["path"], limit)
        return await self.app(scope, receive, send)


async def _body_read(receive, most: int) -> bytes | None:
    """The body, or its first `most` bytes or a few more if it is longer; None on a disconnect."""
    body = bytearray()
    while len(body) < most:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return bytes(body)


def _with_length(headers, length: int) -> list:
    kept = [(name, value) for name, value in headers if name not in (b"transfer-encoding", b"content-length")]
    return [*kept, (b"content-length", str(length).encode())]


def _replay(body: bytes, receive):
    """A `receive` that gives the body read already, then whatever comes next (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed():
        return pending.pop() if pending else await receive()
    return replayed


async def _refuse(send, path: str, limit: int) -> None:
    headers, content = refusal(path, limit)
    headers.append(("Connection", "close"))  # uvicorn then closes at once instead of reading the rest
    await send({"type": "http.response.start", "status": 413,
                "headers": [(name.lower().encode(), value.encode()) for name, value in headers]})
    await send({"type": "http.response.body", "body": content})
