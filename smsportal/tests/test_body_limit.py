"""The request body limit, through the servers as shipped: Procfile.dev's web (gunicorn's sync workers on
smsportal.wsgi) and longpoll (gunicorn with uvicorn workers on smsportal.asgi).

A client streams a 50 MB body over a raw socket while it waits for the answer: the 413 has to come
before the body is read, so it comes at once, and the connection takes far less than the body.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from numbers.tests.factories import shared_senders

import pytest
from django.conf import settings

from accounts.tests.factories import TenantFactory, make_api_key
from smsportal.tests.servers import free_port, on_loopback, procfile_longpoll, procfile_web, server_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = 50 * 1024 * 1024
PIECE = 256 * 1024
TO = "+14155550123"


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@dataclass
class Server:
    kind: str  # asgi, wsgi
    port: int


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def server(request, django_db_setup):
    """One web process of each shipped server serving the test database, for the module's tests."""
    port = free_port()
    shipped = procfile_longpoll() if request.param == "asgi" else procfile_web()
    with web_server(on_loopback(shipped, port, max_workers=1), env=server_env(DB_POOL_MAX_SIZE="8"), port=port):
        yield Server(request.param, port)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float  # from the first byte sent to the whole answer read
    sent: int  # body bytes the connection took before the answer was complete

    def json(self):
        return json.loads(self.body)


def _head(port: int, path: str, secret: str, framing: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n").encode()


@pytest.fixture
def secret() -> str:
    """A test-mode key of a fresh tenant (committed: the server process reads it)."""
    return make_api_key(TenantFactory(), scopes=["messages:send"])[1]


def _send(server: Server, secret: str, framing: str, pieces) -> Answer:
    """POST /v1/messages with `framing` (a Content-Length or Transfer-Encoding header line) and `pieces`."""
    return _exchange(server.port, _head(server.port, "/v1/messages", secret, framing), pieces)


def _exchange(port: int, head: bytes, pieces, timeout: float = 20) -> Answer:
    """Send `head`, then `pieces` from a thread (until the server closes), while reading the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = [0]
    answered = threading.Event()

    def pump():
        try:
            for piece in pieces:
                if answered.is_set():
                    return
                sock.sendall(piece)
                sent[0] += len(piece)
        except OSError:
            pass  # the server closed the connection: what a refusal does

    started = time.monotonic()
    sock.sendall(head)
    sender = threading.Thread(target=pump, daemon=True)
    sender.start()
    try:
        raw = _answer_read(sock)
        seconds = time.monotonic() - started
        taken = sent[0]
    finally:
        answered.set()
        sock.close()
        sender.join(timeout=10)
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (h.split(":", 1) for h in header_lines)}
    return Answer(int(status_line.split()[1]), headers, body, seconds, taken)


def _answer_read(sock) -> bytes:
    """One HTTP answer: the head, then Content-Length bytes of body."""
    raw = b""
    while b"\r\n\r\n" not in raw:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before an answer: {raw!r}"
        raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the answer"
        body += chunk
    return head + b"\r\n\r\n" + body[:length]


def _filler(total: int):
    """`total` bytes of an unfinished JSON string: no parser could make anything of it before the end."""
    yield b'{"to": "' + TO.encode() + b'", "text": "'
    for _ in range(total // PIECE):
        yield b"x" * PIECE


def _chunked(pieces):
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


def _message(**fields) -> bytes:
    return json.dumps({"to": TO, "from": "Brand", "text": "Your code is 123456", **fields}).encode()


def assert_refused(answer: Answer, kind: str) -> None:
    assert answer.status == 413, answer
    assert answer.headers["content-type"] == "application/json", answer.headers
    assert answer.json()["error"]["code"] == "request_too_large", answer.body
    if kind == "asgi":  # uvicorn closes instead of reading the rest (a WSGI application cannot ask that)
        assert answer.headers.get("connection") == "close", answer.headers


def test_a_50_mb_body_is_refused_from_its_content_length_before_it_is_read(server, secret):
    answer = _send(server, secret, f"Content-Length: {HUGE}\r\n", _filler(HUGE))
    assert_refused(answer, server.kind)
    assert answer.seconds < 1.0, answer.seconds
    # What the connection took before the answer: socket buffers at most, nowhere near 50 MB.
    assert answer.sent < HUGE // 5, answer.sent


def test_a_chunked_body_is_read_up_to_the_limit_then_refused(server, secret):
    answer = _send(server, secret, "Transfer-Encoding: chunked\r\n", _chunked(_filler(HUGE)))
    assert_refused(answer, server.kind)
    assert answer.seconds < 1.0, answer.seconds
    assert answer.sent < HUGE // 5, answer.sent


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_a_normal_body_is_still_sent(server, secret, framing):
    body = _message(client_reference=f"normal-{framing}")
    if framing == "length":
        answer = _send(server, secret, f"Content-Length: {len(body)}\r\n", [body])
    else:  # until now Django read a chunked body as empty: "to: This field is required."
        answer = _send(server, secret, "Transfer-Encoding: chunked\r\n", _chunked([body[:20], body[20:]]))
    assert answer.status == 202, answer
    assert answer.json()["to"] == TO


def test_a_body_of_exactly_the_limit_is_parsed(server, secret):
    """Parsed, not refused: this one fails validation (the text is too long), a 400 and not a 413."""
    start = b'{"to": "' + TO.encode() + b'", "from": "Brand", "text": "'
    body = start + b"x" * (settings.API_MAX_BODY_BYTES - len(start) - 2) + b'"}'
    assert len(body) == settings.API_MAX_BODY_BYTES
    answer = _send(server, secret, f"Content-Length: {len(body)}\r\n", [body])
    assert answer.status == 400, answer
    assert answer.json()["error"]["field"] == "text", answer.body


def test_the_portal_answers_413_too(server, secret):
    head = (f"POST /portal/login/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {HUGE}\r\n\r\n").encode()
    answer = _exchange(server.port, head, (b"a" * PIECE for _ in range(HUGE // PIECE)))
    assert answer.status == 413, answer
    assert answer.seconds < 1.0, answer.seconds
