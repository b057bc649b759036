"""Kept-alive connections (outbound.ConnectionPool) against real keep-alive servers on loopback."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from smsportal import outbound


class KeepAliveServer:
    """HTTP/1.1 with keep-alive; counts the TCP connections it accepted. `close_idle_after` closes a
    connection that stays idle that long (as real servers do), without telling the client."""

    def __init__(self, *, close_idle_after: float | None = None, status: int = 204, body: bytes = b"") -> None:
        self.connections = 0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = close_idle_after

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("content-length") or 0))
                server.requests += 1
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # an idle connection timing out is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self._server.server_address[1]}/hook"

    def __enter__(self) -> KeepAliveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _post(url: str, pool: outbound.ConnectionPool | None) -> outbound.Response:
    return outbound.post(url, body=b"{}", headers={"content-type": "application/json"}, timeout=2,
                         allow_private=True, pool=pool)


def test_a_pool_reuses_one_connection_for_requests_in_a_row():
    pool = outbound.ConnectionPool()
    with KeepAliveServer() as server:
        statuses = [_post(server.url(), pool).status_code for _ in range(5)]
    assert statuses == [204] * 5
    assert (server.requests, server.connections) == (5, 1)


def test_without_a_pool_every_request_has_its_own_connection():
    with KeepAliveServer() as server:
        for _ in range(3):
            _post(server.url(), None)
    assert server.connections == 3


def test_a_connection_the_server_closed_while_idle_is_replaced_without_an_error():
    pool = outbound.ConnectionPool()
    with KeepAliveServer(close_idle_after=0.2) as server:
        _post(server.url(), pool)
        time.sleep(0.6)  # the server has closed it; the pool does not know yet
        assert _post(server.url(), pool).status_code == 204
    assert (server.requests, server.connections) == (2, 2)


def test_a_kept_connection_is_not_used_for_another_host_name_on_the_same_address():
    # the pool is keyed by the URL's host: "localhost" never rides on a connection opened for 127.0.0.1
    pool = outbound.ConnectionPool()
    with KeepAliveServer() as server:
        _post(server.url(), pool)
        _post(server.url(host="localhost"), pool)
    assert server.connections == 2


def test_a_kept_connection_is_not_used_when_the_new_checks_refuse_the_address():
    # the resolution and SSRF checks run for every request: with private targets not allowed, the
    # loopback connection kept from an allowed request is not used, and the request is refused
    pool = outbound.ConnectionPool()
    with KeepAliveServer() as server:
        _post(server.url(), pool)
        with pytest.raises(outbound.BlockedDestination):
            outbound.post(server.url(), body=b"{}", headers={}, timeout=2, allow_private=False, pool=pool)
    assert server.requests == 1


def test_an_answer_whose_body_was_not_read_to_the_end_is_not_kept():
    pool = outbound.ConnectionPool()
    with KeepAliveServer(status=200, body=b"x" * (outbound.MAX_RESPONSE_BYTES + 10)) as server:
        _post(server.url(), pool)
        _post(server.url(), pool)
    assert server.connections == 2


def test_a_slow_receiver_still_times_out_on_a_kept_connection():
    gate = threading.Event()
    accepted: list[socket.socket] = []
    with KeepAliveServer() as server:
        pool = outbound.ConnectionPool()
        _post(server.url(), pool)
        # now a listener that accepts and never answers, on a fresh port, through the same pool
        listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=lambda: (accepted.append(listener.accept()[0]), gate.wait(5)), daemon=True).start()
        started = time.monotonic()
        with pytest.raises(outbound.Timeout):
            outbound.post(f"http://127.0.0.1:{listener.getsockname()[1]}/", body=b"{}", headers={}, timeout=0.5,
                          allow_private=True, pool=pool)
        assert time.monotonic() - started < 2
        gate.set()
        listener.close()
