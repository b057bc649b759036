"""Real processes for tests: the environment that points a child process at the test database, a
free loopback port, and a web server run as a subprocess, ready once /healthz answers.

    port = free_port()
    with web_server([sys.executable, "-m", "gunicorn", ...], env=server_env(TRUSTED_PROXIES=""), port=port) as server:
        urlopen(f"{server.url}/v1/me")

Only PostgreSQL works: a child process cannot see pytest-django's in-memory SQLite database, so
server_env skips the test there.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def child_database_url() -> str:
    """DATABASE_URL of pytest-django's test database (after its setup, NAME is the test database)."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def server_env(**overrides: str) -> dict[str, str]:
    """This process's environment, on the test database with the test settings and no .env, plus `overrides`."""
    if connection.vendor != "postgresql":
        pytest.skip("a server process cannot see pytest-django's in-memory SQLite database; needs PostgreSQL")
    return {**os.environ, "DATABASE_URL": child_database_url(), "DJANGO_SETTINGS_MODULE": "smsportal.test_settings",
            "READ_DOT_ENV": "false", **overrides}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    process: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def web_server(command: list[str], *, env: dict[str, str], port: int, timeout: float = 30) -> Iterator[Server]:
    """Runs `command` (which listens on 127.0.0.1:`port`) until the block ends; its whole process
    group (gunicorn's workers too) is killed if it does not stop within 20 s of SIGTERM."""
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    try:
        _wait_until_answering(process, f"http://127.0.0.1:{port}/healthz", timeout)
        yield Server(process=process, port=port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        try:
            os.killpg(process.pid, signal.SIGKILL)  # any worker its master left behind
        except ProcessLookupError:
            pass


def _wait_until_answering(process: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before answering")
        try:
            with urlopen(url, timeout=2):  # noqa: S310 (loopback)
                return
        except HTTPError:
            return  # it answers (a 503 names a dependency down, or a 301 to HTTPS: not the caller's business)
        except OSError:
            time.sleep(0.2)
    pytest.fail("the server did not start")
