"""The lease long-poll under ASGI.

Django's AsyncClient runs requests through the whole (async-capable) middleware chain; a real uvicorn
server on loopback (PostgreSQL only) shows that a waiting client holds neither a database connection
nor a thread: forty of them waiting at once add neither a thread nor a connection each."""
from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from numbers import services
from numbers.inbound import inbound_receive
from numbers.tests.factories import stock
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest
from django.db import connection
from django.test import AsyncClient
from django.utils import timezone

from smsportal.tests.servers import free_port, server_env, web_server

pytestmark = pytest.mark.django_db(transaction=True)

WAITERS = 40


def _headers(side) -> dict[str, str]:
    return {"Authorization": side.auth["HTTP_AUTHORIZATION"]}


def _leases(side, count: int):
    stock(count, country="US", start=700)
    return [services.number_lease_acquire(tenant=side.tenant, country="US", ttl_seconds=600) for _ in range(count)]


def _get_all(paths: list[str], headers: dict[str, str]):
    async def main():
        client = AsyncClient()
        return await asyncio.gather(*(client.get(path, headers=headers) for path in paths))
    return asyncio.run(main())


def _url(lease, wait: int) -> str:
    return f"/v1/numbers/leases/{lease.public_id}/messages?wait={wait}"


@pytest.mark.postgres  # SQLite's shared-cache test database refuses a writer beside a reader in another thread
def test_a_message_injected_during_the_wait_is_answered_under_asgi(world):
    lease = _leases(world.a, 1)[0]

    def inject():
        time.sleep(1)
        try:
            inbound_receive(to=lease.number.number, sender="+447700900001", carrier="simulator",
                            text="G-482913 is your Google verification code.", carrier_message_id="asgi-1",
                            received_at=timezone.now())
        finally:
            connection.close()

    injector = threading.Thread(target=inject)
    started = time.monotonic()
    injector.start()
    [response] = _get_all([_url(lease, 15)], _headers(world.a))
    injector.join()
    assert response.status_code == 200, response.content
    assert [(m["code"], m["service"]) for m in response.json()] == [("482913", "Google")]
    assert 0.9 < time.monotonic() - started < 5


def test_errors_come_back_at_once_as_json_under_asgi(world):
    lease = world.a.extra["lease"]
    started = time.monotonic()
    [other_tenant] = _get_all([_url(lease, 5)], _headers(world.b))
    [bad_wait] = _get_all([_url(lease, 99)], _headers(world.a))
    assert time.monotonic() - started < 3  # neither waited
    assert other_tenant.status_code == 404 and other_tenant.json()["error"]["code"] == "not_found"
    assert bad_wait.status_code == 400 and bad_wait.json()["error"]["field"] == "wait"


# --- a real ASGI server ---------------------------------------------------------------------------


@pytest.fixture
def asgi_server():
    """uvicorn (the worker class gunicorn runs in Procfile.dev) serving smsportal.asgi on a free loopback port."""
    env = server_env(DB_POOL_MAX_SIZE="8")
    port = free_port()
    with web_server([sys.executable, "-m", "uvicorn", "smsportal.asgi:application", "--host", "127.0.0.1",
                     "--port", str(port), "--lifespan", "off", "--log-level", "warning", "--no-access-log"],
                    env=env, port=port) as server:
        yield server.process, server.url


def _threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def _connections_besides_mine() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


def test_waiting_clients_hold_no_thread_and_no_connection(world, asgi_server):
    process, base = asgi_server
    leases = _leases(world.a, WAITERS)
    headers = _headers(world.a)
    [first] = _get_over_http([f"{base}{_url(leases[0], 0)}"], headers)  # warm up: imports, the pool's first connection
    assert first[0] == 200
    idle_threads = _threads_of(process.pid)
    peaks = {"threads": 0, "connections": 0}

    def sample():
        # From when every first pass is over (all forty wait) to before the wait ends (all forty answer
        # at once, each on a thread again, which is needed).
        time.sleep(3)  # generous: under CI load the forty first passes can take a while
        until = time.monotonic() + 2.5
        try:
            while time.monotonic() < until:
                peaks["threads"] = max(peaks["threads"], _threads_of(process.pid))
                peaks["connections"] = max(peaks["connections"], _connections_besides_mine())
                time.sleep(0.05)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    results = _get_over_http([f"{base}{_url(lease, 7)}" for lease in leases], headers)
    elapsed = time.monotonic() - started
    sampler.join()
    assert [status for status, _ in results] == [200] * WAITERS
    assert all(body == [] for _, body in results)
    assert 6.9 < elapsed < 20
    # A thread or a connection per waiting client would show forty more; the loop's executor and the
    # pool account for a few.
    assert peaks["threads"] - idle_threads < 12, (peaks, idle_threads)
    assert peaks["connections"] <= 8 + 2, peaks  # at most the pool (DB_POOL_MAX_SIZE), idle, and a spare


def _get_over_http(urls: list[str], headers: dict[str, str]) -> list[tuple[int, object]]:
    results: list = [None] * len(urls)

    def get(index: int, url: str):
        try:
            with urlopen(Request(url, headers=headers), timeout=30) as response:  # noqa: S310 (loopback)
                results[index] = (response.status, json.loads(response.read()))
        except HTTPError as error:
            results[index] = (error.code, json.loads(error.read()))

    threads = [threading.Thread(target=get, args=(i, url)) for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
