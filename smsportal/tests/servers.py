"""The web servers we ship, started by a test as subprocesses on a free loopback port.

    with served(procfile_command("web", port=free_port())) as (process, base):   # Procfile.dev's web server
        urlopen(f"{base}/healthz")

The server runs the test settings against pytest-django's test database (PostgreSQL only: a server
process cannot see the in-memory SQLite one; mark the test `django_db(transaction=True)` so it sees
committed rows). It is terminated, and killed if need be, when the block ends; its output is kept
in a file and shown when it fails to start.
"""
from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import urlopen

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]
# The README's other production server: Django's WSGI handler under gunicorn's threaded workers.
WSGI_COMMAND = "gunicorn smsportal.wsgi:application --bind 127.0.0.1:{port} --workers 1 --threads 4"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_database_url() -> str:
    db = connection.settings_dict  # after pytest-django's setup: NAME is the test database
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def procfile_command(name: str, *, port: int) -> list[str]:
    """The `name:` line of Procfile.dev, as `make run` starts it, with WEB_PORT = `port`."""
    for line in (REPO / "Procfile.dev").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1].replace("${WEB_PORT}", str(port)))
    raise AssertionError(f"Procfile.dev has no {name!r} process")


def wsgi_command(*, port: int) -> list[str]:
    return shlex.split(WSGI_COMMAND.format(port=port))


def _port_of(argv: list[str]) -> int:
    for index, arg in enumerate(argv):
        if arg in ("--bind", "-b"):
            return int(argv[index + 1].rsplit(":", 1)[1])
        if arg == "--port":
            return int(argv[index + 1])
    raise AssertionError(f"no port in {argv}")


def _answers(base: str) -> bool:
    try:
        with urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 (loopback)
            return True
    except HTTPError:
        return True  # it answers (a 503 names a dependency down, which is not the test's business)
    except OSError:
        return False


@contextmanager
def served(argv: list[str], *, env: dict[str, str] | None = None,
           startup_seconds: float = 30) -> Iterator[tuple[subprocess.Popen, str]]:
    """Run `argv` (a server command) until the block ends; yields the process and its base URL, http://127.0.0.1:PORT."""
    if connection.vendor != "postgresql":
        pytest.skip("the server process cannot see pytest-django's in-memory SQLite database; needs PostgreSQL")
    base = f"http://127.0.0.1:{_port_of(argv)}"
    bin_dir = str(Path(sys.executable).parent)  # gunicorn, uvicorn: the scripts of this virtualenv
    full_env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "DATABASE_URL": server_database_url(), "DJANGO_SETTINGS_MODULE": "smsportal.test_settings",
                "READ_DOT_ENV": "false", "DB_POOL_MAX_SIZE": "8", **(env or {})}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + startup_seconds
            while not _answers(base):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    pytest.fail(f"{shlex.join(argv)} did not start:\n{log.read().decode(errors='replace')[-3000:]}")
                time.sleep(0.2)
            yield process, base
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
