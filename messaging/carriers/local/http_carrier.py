"""The local HTTP carrier for the generic preset: make run's second carrier, and the tests' (stdlib only).

    python -m messaging.carriers.local.http_carrier --port 9401 [--receipt-delay-ms 1000] [--undeliverable-suffix 999]

The receipt secret and the optional bearer token come from the environment (LOCAL_HTTP_CARRIER_SECRET,
LOCAL_HTTP_CARRIER_TOKEN), so that no secret shows in a process list.

Port 0 picks a free port; once listening it prints `ready PORT` on stdout; SIGTERM or SIGINT stops it.

- `POST /send`, a JSON object {"to", "from", "text", "ref", "dlr"} (the generic preset's fields, as seed_demo
  configures them): 200 {"id": "lh-…"}. With a token, `Authorization: Bearer <token>` is required (401 without).
  400 for a body that is not such an object, or a `dlr` that is not an http URL on loopback: this carrier calls
  nothing else.
- --receipt-delay-ms after the answer, a receipt is POSTed to `dlr`: {"id", "ref", "to", "status"}, status
  DELIVERED, or FAILED for a destination ending in --undeliverable-suffix, signed as the generic preset verifies
  (messaging/carriers/http/generic.py): `X-Signature: sha256=<hex HMAC-SHA256 of the raw body, key the secret>`.
  A receipt the receiver does not take (no connection, not 2xx) is tried again after 1, 2, 4 and 8 s, then
  dropped (`receipts_failed`).
- `GET /stats`: {"send", "send_refused", "receipts_sent", "receipts_retried", "receipts_failed",
  "receipts_pending"}.

One thread answers each request (ThreadingHTTPServer); one more sends the receipts, in due order.
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import hmac
import ipaddress
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

RETRY_SECONDS = (1, 2, 4, 8)
RECEIPT_TIMEOUT_SECONDS = 5
MAX_BODY = 64 * 1024


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    tries: int = field(default=0, compare=False)


def receipt_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_loopback_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


class HttpCarrier:
    """The carrier: `start()` serves on a thread (tests), `serve_forever()` in the foreground (the command)."""

    def __init__(self, *, port: int = 0, secret: str, token: str = "", receipt_delay: float = 1.0,
                 undeliverable_suffix: str = "") -> None:
        self.secret, self.token = secret, token
        self.receipt_delay, self.undeliverable_suffix = receipt_delay, undeliverable_suffix
        self.counts = {"send": 0, "send_refused": 0, "receipts_sent": 0, "receipts_retried": 0, "receipts_failed": 0}
        self._due: list[_Due] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._send_receipts, name="http-carrier-receipts", daemon=True)]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> HttpCarrier:
        self._threads.append(threading.Thread(target=self._server.serve_forever, name="http-carrier", daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        self._threads[0].start()
        self._server.serve_forever()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {**self.counts, "receipts_pending": len(self._due)}

    # -- /send ------------------------------------------------------------------------------------------------

    def send(self, headers, body: bytes) -> tuple[int, dict]:
        if self.token and not hmac.compare_digest(headers.get("Authorization", ""), f"Bearer {self.token}"):
            return self._refused(401, "A bearer token is required.")
        try:
            fields = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._refused(400, "The body is not JSON.")
        if not isinstance(fields, dict) or not all(isinstance(fields.get(name), str) and fields.get(name)
                                                   for name in ("to", "text")):
            return self._refused(400, "The body must be a JSON object with to and text.")
        dlr = fields.get("dlr") or ""
        if dlr and not (isinstance(dlr, str) and is_loopback_url(dlr)):
            return self._refused(400, "dlr must be an http URL on loopback.")
        carrier_id = "lh-" + secrets.token_hex(8)
        if dlr:
            failed = bool(self.undeliverable_suffix) and fields["to"].endswith(self.undeliverable_suffix)
            receipt = {"id": carrier_id, "ref": fields.get("ref", ""), "to": fields["to"],
                       "status": "FAILED" if failed else "DELIVERED"}
            self._queue(dlr, json.dumps(receipt).encode(), time.monotonic() + self.receipt_delay)
        with self._cond:
            self.counts["send"] += 1
        return 200, {"id": carrier_id}

    def _refused(self, status: int, message: str) -> tuple[int, dict]:
        with self._cond:
            self.counts["send_refused"] += 1
        return status, {"error": message}

    # -- receipts ---------------------------------------------------------------------------------------------

    def _queue(self, url: str, body: bytes, at: float, tries: int = 0) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._due, _Due(at, self._seq, url, body, tries))
            self._cond.notify_all()

    def _send_receipts(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._due or self._due[0].at > time.monotonic()):
                    self._cond.wait(self._due[0].at - time.monotonic() if self._due else None)
                if self._stopping:
                    return
                due = heapq.heappop(self._due)
            self._post(due)

    def _post(self, due: _Due) -> None:
        request = urllib.request.Request(due.url, data=due.body, method="POST", headers={  # noqa: S310 - checked: http, loopback
            "Content-Type": "application/json", "X-Signature": receipt_signature(self.secret, due.body)})
        try:
            with urllib.request.urlopen(request, timeout=RECEIPT_TIMEOUT_SECONDS) as answer:  # noqa: S310 - loopback only
                ok = 200 <= answer.status < 300
        except (urllib.error.URLError, OSError):
            ok = False
        with self._cond:
            if ok:
                self.counts["receipts_sent"] += 1
                return
            retry = due.tries < len(RETRY_SECONDS)
            self.counts["receipts_retried" if retry else "receipts_failed"] += 1
        if retry:
            self._queue(due.url, due.body, time.monotonic() + RETRY_SECONDS[due.tries], due.tries + 1)


def _handler(carrier: HttpCarrier) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the generic preset's connection pool reuses connections

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if self.path.split("?")[0] != "/send":
                return self._answer(404, {"error": "not found"})
            if length > MAX_BODY:
                return self._answer(413, {"error": "too large"})
            self._answer(*carrier.send(self.headers, self.rfile.read(length)))

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/stats":
                return self._answer(404, {"error": "not found"})
            self._answer(200, carrier.stats())

        def _answer(self, status: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
            pass  # one line per request would drown make run's output

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9401)
    parser.add_argument("--receipt-delay-ms", type=int, default=1000)
    parser.add_argument("--undeliverable-suffix", default="")
    args = parser.parse_args(argv)
    secret = os.environ.get("LOCAL_HTTP_CARRIER_SECRET", "")
    if not secret:
        parser.error("LOCAL_HTTP_CARRIER_SECRET (the receipts' HMAC key) is not set")
    carrier = HttpCarrier(port=args.port, secret=secret, token=os.environ.get("LOCAL_HTTP_CARRIER_TOKEN", ""),
                          receipt_delay=args.receipt_delay_ms / 1000, undeliverable_suffix=args.undeliverable_suffix)
    # SIGTERM and SIGINT end serve_forever from another thread (shutdown() waits for the loop it stops).
    stop = lambda *_: threading.Thread(target=carrier.stop, daemon=True).start()  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"ready {carrier.port}", flush=True)
    carrier.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
