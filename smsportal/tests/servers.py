"""The shipped web server, started by a test on a free loopback port against pytest-django's test database.

    with procfile_server("web", env={"API_RATE_LIMIT": "1000/s"}) as base_url:
        urlopen(base_url + "/healthz")

The command is the Procfile.dev line as written (gunicorn with uvicorn workers), run from the
virtualenv of this interpreter. Needs PostgreSQL: on SQLite the test database lives in the test
process's memory. The server runs in its own process group, which is ended when the block exits.
It runs under the test network guard (smsportal/tests/netguard.py, through a `sitecustomize` on its
PYTHONPATH): loopback connects only, and no DNS query leaves the machine.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import quote
from urllib.request import urlopen

from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_database_url() -> str:
    """pytest-django's test database (after its setup: NAME is the test database) as a DATABASE_URL."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def procfile_command(name: str, *, port: int) -> list[str]:
    """The Procfile.dev line of process `name`, with ${WEB_PORT} filled in, as an argv."""
    for line in (REPO / "Procfile.dev").read_text().splitlines():
        process, _, command = line.partition(":")
        if process.strip() == name:
            argv = shlex.split(command.replace("${WEB_PORT}", str(port)))
            return [str(Path(sys.executable).parent / argv[0]), *argv[1:]]  # this virtualenv's gunicorn
    raise LookupError(f"no process {name!r} in Procfile.dev")


def _wait_until_up(base_url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before answering")
        try:
            with urlopen(base_url + "/healthz", timeout=2):  # noqa: S310 - loopback
                return
        except HTTPError:
            return  # it answers (a 503 names a dependency down, which is not the caller's business)
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout} s")


# Loaded by file, so the server's start imports nothing of ours earlier than it would.
SITECUSTOMIZE = f"""import importlib.util
spec = importlib.util.spec_from_file_location("test_netguard", {str(Path(__file__).with_name("netguard.py"))!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.install(resolver=True)
"""


@contextlib.contextmanager
def procfile_server(name: str = "web", *, env: dict[str, str] | None = None, log: Path | None = None,
                    timeout: float = 60) -> Iterator[str]:
    """Run Procfile.dev's `name` process on a free port against the test database; yields its base URL."""
    if connection.vendor != "postgresql":
        raise RuntimeError("a server process cannot see pytest-django's SQLite test database; needs PostgreSQL")
    port = free_port()
    guard = tempfile.TemporaryDirectory(prefix="netguard-")
    (Path(guard.name) / "sitecustomize.py").write_text(SITECUSTOMIZE)
    pythonpath = os.pathsep.join(filter(None, [guard.name, os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "DATABASE_URL": test_database_url(), "DJANGO_SETTINGS_MODULE": "smsportal.test_settings",
                   "READ_DOT_ENV": "false", "PYTHONPATH": pythonpath, **(env or {})}
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below, after the process
    process = subprocess.Popen(procfile_command(name, port=port), cwd=REPO, env=environment, stdout=output,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}", process, timeout)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # gunicorn and its workers, by the group we started
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log:
            output.close()
        guard.cleanup()
