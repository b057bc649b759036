"""Real server processes for tests: the web server as shipped (gunicorn with uvicorn workers, the
Procfile.dev command) on a free loopback port, against pytest-django's PostgreSQL test database.

    with web_server(env={"CELERY_BROKER_URL": ...}, log=tmp_path / "web.log") as server:
        urlopen(server.url("/healthz"))

Every process started here is killed (its whole process group) when the block ends.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import HTTPRedirectHandler, Request, build_opener, urlopen

REPO = Path(__file__).resolve().parents[2]


def database_url(*, host: str | None = None, port: int | None = None) -> str:
    """pytest-django's test database as a DATABASE_URL (after its setup NAME is the test database);
    `host`/`port` point it elsewhere, e.g. at a fault proxy in front of it."""
    from django.db import connection

    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return (f"postgres://{credentials}@{host or db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}"
            f"/{db['NAME']}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    process: subprocess.Popen
    base: str
    log: Path

    def url(self, path: str) -> str:
        return self.base + path

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class _NoRedirects(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx is the answer under test, not a step to follow


_opener = build_opener(_NoRedirects)


def http(method: str, url: str, *, body: dict | None = None, headers: dict[str, str] | None = None,
         timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    """One request over the network, redirects not followed: (status, headers with lower-case names,
    body), error statuses included."""
    data = None if body is None else json.dumps(body).encode()
    request = Request(url, data=data, method=method,  # noqa: S310 (loopback)
                      headers={**({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@contextmanager
def web_server(*, log: Path, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[Server]:
    """The Procfile.dev `web` command (one worker unless asked: the machine is small) with the test
    settings and the test database, plus `env`. Ready once /healthz answers anything (a 503 names a
    dependency down, which may be what the test is about)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "smsportal.asgi:application", "--worker-class",
               "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--access-logfile", "-", "--log-level", "info"]
    full_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "smsportal.test_settings", "READ_DOT_ENV": "false",
                "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_answering(server)
        yield server
    finally:
        _stop(process)


def _wait_until_answering(server: Server, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the web server exited with {server.process.returncode}:\n{server.tail()}")
        try:
            with urlopen(server.url("/healthz"), timeout=10):  # noqa: S310 (loopback)
                return
        except HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the web server did not answer within {timeout} s:\n{server.tail()}")


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (gunicorn and its workers), then SIGKILL to whatever is left of it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        process.wait(timeout=10)
