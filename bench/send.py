#!/usr/bin/env python3
"""Send benchmark against a RUNNING smsportal (starts nothing): POST /v1/messages N times at concurrency C,
then wait until every accepted message has a final status. Prints one JSON line with the figures.

    SMSPORTAL_API_KEY=sk_test_... python3 bench/send.py --url http://127.0.0.1:8000 -n 2000 -c 20

Standard library only. It talks to --url and nothing else: pagination links the server returns are
followed by their path and query only, on the same connection.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

FINAL = frozenset({"delivered", "undelivered", "failed", "expired", "rejected", "canceled"})
SIMULATOR_SPECIAL = range(1, 5)  # the simulator's 0001-0004 fail, retry or never get a receipt


class Api:
    """One keep-alive HTTP connection per thread to the one base URL."""

    def __init__(self, base_url: str, key: str, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SystemExit(f"--url must be http(s)://host[:port], not {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path.rstrip("/")
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json",
                        "Accept": "application/json"}
        self.timeout = timeout
        self.local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = self.local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
        """(status, JSON body); status 0 when the request failed on the network."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {**self.headers, **headers} if headers else self.headers
        for attempt in (1, 2):  # once more on a fresh connection if the kept-alive one was closed
            conn = self._connection()
            try:
                conn.request(method, self.prefix + path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if response.getheader("Connection", "").lower() == "close":
                    self._drop()
                try:
                    return response.status, json.loads(data) if data else {}
                except ValueError:
                    return response.status, {}
            except (OSError, http.client.HTTPException):
                self._drop()
                if attempt == 2:
                    return 0, {}
        return 0, {}

    def _drop(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
        self.local.conn = None


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return round(sorted_values[index], 1)


def _number(prefix: str) -> str:
    while True:
        ending = random.randint(0, 9999)
        if ending not in SIMULATOR_SPECIAL:
            return f"{prefix}{ending:04d}"


def load(api: Api, path: str, body_for, *, count: int, concurrency: int, headers_for=None) -> dict:
    """POST `body_for(i)` (with the headers `headers_for(i)`, if given) to `path` `count` times with
    `concurrency` threads.

    Returns the figures: requests, seconds, requests_per_second, statuses (HTTP status -> count; 0 is a
    network error), latency_ms p50/p95/p99, and `answers` (the JSON bodies, in request order)."""
    def one(index: int) -> tuple[int, dict, float]:
        started = time.perf_counter()
        headers = headers_for(index) if headers_for else None
        status, answer = api.request("POST", path, body_for(index), headers)
        return status, answer, (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(count)))
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for _, _, latency in results)
    return {
        "requests": count, "concurrency": concurrency, "seconds": round(elapsed, 2),
        "requests_per_second": round(count / elapsed, 1) if elapsed else None,
        "statuses": {str(status): n for status, n in sorted(Counter(s for s, _, _ in results).items())},
        "latency_ms": {"p50": _percentile(latencies, 0.50), "p95": _percentile(latencies, 0.95),
                       "p99": _percentile(latencies, 0.99)},
        "answers": [answer for _, answer, _ in results],
    }


def send_all(api: Api, count: int, concurrency: int, prefix: str, reference: str):
    """POST `count` messages with `concurrency` threads; returns (accepted ids, status counter, latencies, seconds)."""
    def body(_: int) -> dict:
        return {"to": _number(prefix), "from": "Bench", "text": "Your code is 123456", "message_type": "otp",
                "client_reference": reference}

    figures = load(api, "/v1/messages", body, count=count, concurrency=concurrency)
    ids = {answer.get("id") for answer in figures["answers"] if answer.get("id")}
    statuses = Counter({int(status): n for status, n in figures["statuses"].items()})
    return ids, statuses, figures["latency_ms"], figures["seconds"]


def statuses_of(api: Api, reference: str) -> dict[str, str] | None:
    """id -> status of every message with this client_reference, following the cursor; None on an error."""
    found: dict[str, str] = {}
    path = "/v1/messages?" + urlencode({"client_reference": reference, "limit": 200})
    for _ in range(10_000):  # bounded: 2,000,000 messages at 200 a page
        status, body = api.request("GET", path)
        if status != 200:
            return None
        found.update((item["id"], item["status"]) for item in body.get("results", []))
        following = body.get("next")
        if not following:
            return found
        parts = urlsplit(following)  # only its path and query: never another host
        path = parts.path[len(api.prefix):] + ("?" + parts.query if parts.query else "")
    return None


def wait_final(api: Api, ids: set[str], reference: str, timeout: float, interval: float = 1.0):
    """Poll until every id is final or `timeout` passes; returns (seconds waited or None, status counts)."""
    started = time.perf_counter()
    latest: dict[str, str] = {}
    while True:
        seen = statuses_of(api, reference)
        if seen is not None:
            latest = {message_id: seen.get(message_id, "missing") for message_id in ids}
            pending = sum(status not in FINAL for status in latest.values())
            print(f"  {pending} of {len(ids)} not final yet", file=sys.stderr)
            if pending == 0:
                return time.perf_counter() - started, Counter(latest.values())
        if time.perf_counter() - started > timeout:
            return None, Counter(latest.values())
        time.sleep(interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="base URL of the running stack")
    parser.add_argument("--key", default=os.environ.get("SMSPORTAL_API_KEY"),
                        help="API key with messages:send and messages:read (default: $SMSPORTAL_API_KEY)")
    parser.add_argument("-n", "--count", type=int, default=2000, help="messages to send")
    parser.add_argument("-c", "--concurrency", type=int, default=20, help="requests in flight")
    parser.add_argument("--to-prefix", default="+1415555", help="numbers are this + 4 random digits (never 0001-0004)")
    parser.add_argument("--timeout-final", type=float, default=300.0, help="seconds to wait for final statuses")
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("give --key or set SMSPORTAL_API_KEY")
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")

    api = Api(args.url, args.key)
    reference = f"bench-{uuid.uuid4().hex[:12]}"  # finds exactly this run's messages
    print(f"sending {args.count} messages to {args.url} at concurrency {args.concurrency} ({reference})",
          file=sys.stderr)
    ids, statuses, latencies, send_seconds = send_all(api, args.count, args.concurrency, args.to_prefix, reference)
    print(f"accepted {len(ids)} in {send_seconds:.1f} s; waiting for final statuses", file=sys.stderr)
    waited, final_statuses = wait_final(api, ids, reference, args.timeout_final) if ids else (0.0, Counter())
    result = {
        "messages": args.count,
        "concurrency": args.concurrency,
        "accepted": len(ids),
        "rejected": {str(status or "network_error"): n for status, n in sorted(statuses.items()) if status != 202},
        "accepted_per_second": round(len(ids) / send_seconds, 1) if send_seconds else None,
        "latency_ms": latencies,
        # From the first POST until the last accepted message was seen final (null: not within the timeout).
        "seconds_to_all_final": round(send_seconds + waited, 1) if waited is not None else None,
        "final_statuses": dict(sorted(final_statuses.items())),
    }
    print(json.dumps(result))
    return 0 if waited is not None and len(ids) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
