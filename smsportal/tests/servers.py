"""Real processes for tests: the environment that points a child process at the test database, a
free loopback port, and web servers run as subprocesses, ready once /healthz answers.

    port = free_port()
    with web_server([sys.executable, "-m", "gunicorn", ...], env=server_env(TRUSTED_PROXIES=""), port=port) as server:
        urlopen(f"{server.url}/v1/me")

    with WebServer.from_procfile(tmp_path, env={"API_RATE_LIMIT": "20/s"}) as server:  # Procfile.dev's web line
        server.workers()  # the PIDs of gunicorn's worker processes

    with procfile_server(env={"CELERY_BROKER_URL": ...}, log=tmp_path / "web.log") as server:
        status, headers, body = http("GET", server.url("/healthz"))  # redirects not followed

Only PostgreSQL works: a child process cannot see pytest-django's in-memory SQLite database, so
server_env skips the test there; the data a test gives a server must be committed (`transaction=True`).
"""
from __future__ import annotations

import json
import os
import re
import shlex
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

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parents[2]


def child_database_url(*, host: str | None = None, port: int | None = None) -> str:
    """DATABASE_URL of pytest-django's test database (after its setup, NAME is the test database);
    `host`/`port` point it elsewhere, e.g. at a fault proxy in front of it."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return (f"postgres://{credentials}@{host or db['HOST'] or '127.0.0.1'}:{port or db['PORT'] or 5432}"
            f"/{db['NAME']}")


NETGUARD_SITE = Path(__file__).resolve().parent / "netguard_site"


def server_env(**overrides: str) -> dict[str, str]:
    """This process's environment, on the test database with the test settings and no .env, plus `overrides`.

    A process started with it runs under the test network guard (netguard_site/sitecustomize.py):
    loopback connects only, and no DNS query leaves the machine (it serves webhook URLs naming any host)."""
    if connection.vendor != "postgresql":
        pytest.skip("a server process cannot see pytest-django's in-memory SQLite database; needs PostgreSQL")
    pythonpath = os.pathsep.join(filter(None, [str(NETGUARD_SITE), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "DATABASE_URL": child_database_url(), "DJANGO_SETTINGS_MODULE": "smsportal.test_settings",
            "READ_DOT_ENV": "false", "PYTHONPATH": pythonpath, **overrides}


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


# --- the shipped commands ------------------------------------------------------------------------


def procfile_line(name: str) -> list[str]:
    """Procfile.dev's `name` command as written (`make run` starts it with ${WEB_PORT} and ${LONGPOLL_PORT} set)."""
    [line] = [line for line in (REPO / "Procfile.dev").read_text().splitlines() if line.startswith(f"{name}:")]
    return shlex.split(line.removeprefix(f"{name}:"))


def procfile_web() -> list[str]:
    """Procfile.dev's web command: smsportal.wsgi, which serves every path."""
    return procfile_line("web")


def procfile_longpoll() -> list[str]:
    """Procfile.dev's longpoll command: smsportal.asgi under uvicorn, for the lease long-poll."""
    return procfile_line("longpoll")


def readme_production(module: str) -> list[str]:
    """The README's production web command that serves `module` (smsportal.asgi or smsportal.wsgi)."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Production deployment") : text.index("## Tests and CI")]
    [command] = re.findall(rf"`(gunicorn {re.escape(module)}[^`]*)`", section)
    return shlex.split(command)


def _option_set(argv: list[str], option: str, value: str) -> list[str]:
    index = argv.index(option)
    return [*argv[: index + 1], value, *argv[index + 2 :]]


def on_loopback(argv: list[str], port: int, *, max_workers: int = 2) -> list[str]:
    """A shipped gunicorn command as written, on 127.0.0.1:`port` (Procfile.dev's ${WEB_PORT}, the
    README's 0.0.0.0:8000) with at most `max_workers` workers, run by this interpreter's gunicorn."""
    assert argv[0] == "gunicorn", argv
    argv = _option_set(argv, "--bind", f"127.0.0.1:{port}")
    if int(argv[argv.index("--workers") + 1]) > max_workers:
        argv = _option_set(argv, "--workers", str(max_workers))  # the machine running the tests has few cores
    return [sys.executable, "-m", "gunicorn", *argv[1:]]


def procfile_command(name: str, port: int) -> list[str]:
    """The Procfile.dev line `name`, on `port` (its ${WEB_PORT} or ${LONGPOLL_PORT}), run with this interpreter's environment."""
    for line in (REPO / "Procfile.dev").read_text().splitlines():
        if line.startswith(f"{name}:"):
            command = line.split(":", 1)[1].replace("${WEB_PORT}", str(port)).replace("${LONGPOLL_PORT}", str(port))
            args = shlex.split(command)
            return [sys.executable, "-m", *args]  # `gunicorn ...` as `python -m gunicorn ...` of this venv
    raise LookupError(f"no {name!r} process in Procfile.dev")


@dataclass
class WebServer:
    command: list[str]
    env: dict[str, str]
    url: str
    log: Path
    process: subprocess.Popen | None = None

    @classmethod
    def from_procfile(cls, tmp: Path, *, env: dict[str, str] | None = None) -> WebServer:
        port = free_port()
        full_env = server_env(DB_POOL_MAX_SIZE="8", **(env or {}))
        return cls(procfile_command("web", port), full_env, f"http://127.0.0.1:{port}", tmp / f"web-{port}.log")

    def __enter__(self) -> WebServer:
        with self.log.open("wb") as out:
            # A session of its own: gunicorn and its workers form one process group to end.
            self.process = subprocess.Popen(self.command, cwd=REPO, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_until_serving(timeout=60)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def workers(self) -> list[int]:
        """PIDs of the server's worker processes (the children of gunicorn's master)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def _wait_until_serving(self, timeout: float) -> None:
        expected = self._workers_wanted()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the web server exited with {self.process.returncode}:\n{self.tail()}")
            if len(self.workers()) >= expected and self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"the web server did not start within {timeout} s:\n{self.tail()}")

    def _workers_wanted(self) -> int:
        """gunicorn's --workers N (one without it)."""
        args = self.command
        return int(args[args.index("--workers") + 1]) if "--workers" in args else 1

    def _answers(self) -> bool:
        try:
            with urlopen(f"{self.url}/healthz", timeout=2):  # noqa: S310 (loopback, our server)
                return True
        except HTTPError:
            return True  # it answers (a 503 names a dependency down, which is not this helper's business)
        except OSError:
            return False


@dataclass
class LoggedServer:
    """A server started by procfile_server: its log, and URLs by path."""

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
def procfile_server(*, log: Path, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[LoggedServer]:
    """The Procfile.dev `web` command (one worker unless asked: the machine is small) with the test
    settings and the test database, plus `env`. Ready once /healthz answers anything (a 503 names a
    dependency down, which may be what the test is about)."""
    port = free_port()
    command = procfile_command("web", port)
    command[command.index("--workers") + 1] = str(workers)
    full_env = server_env(PYTHONUNBUFFERED="1", **(env or {}))
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = LoggedServer(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_logged_server_answers(server)
        yield server
    finally:
        _stop(process)


def _wait_until_logged_server_answers(server: LoggedServer, timeout: float = 40) -> None:
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
