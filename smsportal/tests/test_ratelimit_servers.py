"""The rate limits hold across processes: the web server as shipped (Procfile.dev: gunicorn, its sync
workers) on PostgreSQL and Redis, hit for 5 s by client threads.

Over a window of T seconds a limit of `rate` a second with `burst` admits at most burst + rate * T,
whatever the number of processes and threads, and a client that keeps asking gets close to that.
Issue 8 found, for a tenant limit of 10/s, 37 sends in 1.69 s (the GCRA reset a TAT one caller saw
in its future), and for a per-key limit of 20/s, 103-117 in about 3 s (DRF's cache throttle reads,
then writes, its history: not atomic).
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from numbers.tests.factories import shared_senders
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.db import connection

from accounts.models import Tenant
from accounts.tests.factories import make_api_key
from smsportal.tests.ratelimit_helpers import rate_buckets_empty
from smsportal.tests.servers import WebServer

REDIS_URL = os.environ.get("REDIS_URL", "")
KEY_RATE = 20  # API_RATE_LIMIT of the per-key test, per second
TENANT_RATE = 10  # tenant A's messages_per_second
SECONDS = 5.0
CLIENT_THREADS = 8
BODY = {"to": "+14155550123", "from": "Acme", "text": "hello"}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL=redis://127.0.0.1:6379/7"),
]


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """A US and a Canadian shared sender number: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture
def serve(tmp_path):
    """`serve(api_rate_limit)`: the web server with that per-key limit, stopped at the end of the test."""
    if connection.vendor != "postgresql":
        pytest.skip("the server process cannot see pytest-django's in-memory SQLite database; needs PostgreSQL")
    with ExitStack() as stack:
        def start(api_rate_limit: str) -> WebServer:
            # The accepted sends' dispatch tasks go to the test folder of the embedded broker (emptied by
            # each test session), not to a Redis broker where a later worker would find them.
            env = {"REDIS_URL": REDIS_URL, "API_RATE_LIMIT": api_rate_limit, "CELERY_BROKER_URL": "filesystem://",
                   "MESSAGE_DESTINATION_RATE_LIMIT": ""}
            web = stack.enter_context(WebServer.from_procfile(tmp_path, env=env))
            assert len(web.workers()) >= 2, "Procfile.dev's web command runs several worker processes"
            return web

        yield start


@pytest.fixture(autouse=True)
def _fresh_buckets():
    rate_buckets_empty(REDIS_URL)


@dataclass
class Load:
    """What the client threads saw: statuses, a refusal's answer, and the span from first request to last answer."""

    statuses: Counter = field(default_factory=Counter)
    refusal: tuple[int, dict, str] | None = None
    first: float = float("inf")
    last: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def elapsed(self) -> float:
        return self.last - self.first


def _hammer(make_request, seconds: float = SECONDS, threads: int = CLIENT_THREADS) -> Load:
    """`threads` clients, each sending `make_request(i)` on a new connection, again and again, for `seconds`."""
    load, barrier = Load(), threading.Barrier(threads)

    def client(index: int) -> None:
        barrier.wait(timeout=30)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                with urlopen(make_request(index), timeout=30) as answer:  # noqa: S310 (loopback)
                    status, body, retry_after = answer.status, None, None
            except HTTPError as refused:
                status, body, retry_after = refused.code, json.loads(refused.read()), refused.headers["Retry-After"]
            with load.lock:
                load.statuses[status] += 1
                load.first, load.last = min(load.first, started), max(load.last, time.monotonic())
                if body is not None and load.refusal is None:
                    load.refusal = (status, body, retry_after)

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 60)
    return load


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _assert_limited(load: Load, ok: int, rate: int, burst: int) -> None:
    accepted = load.statuses[ok]
    # then nothing but accepted and refused requests, and a refusal is 429 rate_limited with a whole Retry-After
    assert set(load.statuses) == {ok, 429}, load.statuses
    status, body, retry_after = load.refusal
    assert (status, body["error"]["code"]) == (429, "rate_limited") and int(retry_after) >= 1
    # and the limit held across processes and threads: at most its burst plus its rate over the span
    assert accepted <= burst + rate * load.elapsed, (accepted, load.elapsed, load.statuses)
    # and was not far below it: the clients kept asking, so the limit, not the server, set the pace
    assert accepted >= 0.8 * (burst + rate * SECONDS), (accepted, load.elapsed, load.statuses)


def test_the_tenants_send_limit_holds_across_server_processes(world, serve):
    # given tenant A limited to 10 sends a second, sending with 2 keys (without a per-key limit to speak of)
    server = serve("100000/s")
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=TENANT_RATE)
    secrets = [make_api_key(world.a.tenant, scopes=["messages:send"], name=f"load-{i}")[1] for i in range(2)]
    cpu_before = {pid: _cpu_seconds(pid) for pid in server.workers()}

    def send(index: int) -> Request:
        return Request(f"{server.url}/v1/messages", data=json.dumps(BODY).encode(), method="POST",  # noqa: S310
                       headers={"Authorization": f"Bearer {secrets[index % 2]}", "Content-Type": "application/json"})

    # when 8 client threads send as fast as they can for 5 s
    load = _hammer(send)
    # then A's sends were limited as one tenant, across both server processes
    _assert_limited(load, 202, TENANT_RATE, TENANT_RATE)
    assert all(_cpu_seconds(pid) - cpu_before[pid] > 0.1 for pid in cpu_before), "both workers served"


def test_the_per_key_limit_holds_across_server_processes(world, serve):
    # given B's key, which may make 20 requests a second
    server = serve(f"{KEY_RATE}/s")
    cpu_before = {pid: _cpu_seconds(pid) for pid in server.workers()}

    def me(index: int) -> Request:
        return Request(f"{server.url}/v1/me", headers={"Authorization": world.b.auth["HTTP_AUTHORIZATION"]})  # noqa: S310

    # when 8 client threads call with it as fast as they can for 5 s
    load = _hammer(me)
    # then the key was limited as one key, across both server processes
    _assert_limited(load, 200, KEY_RATE, KEY_RATE)
    assert all(_cpu_seconds(pid) - cpu_before[pid] > 0.1 for pid in cpu_before), "both workers served"
