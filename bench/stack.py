"""What the benchmarks share to start servers: free ports, a throw-away database, the shipped commands.

Everything here talks only to loopback and to the database and Redis URLs it is given.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sql(database_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statement)


@contextlib.contextmanager
def throwaway_database(database_url: str, suffix: str) -> Iterator[str]:
    """A new, empty database beside the one `database_url` names (NAME_suffix), dropped afterwards."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/") + "_" + suffix
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"unexpected database name {name!r}")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    sql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    sql(admin_url, f"CREATE DATABASE {name}")
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        sql(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not start listening")


def procfile_command(name: str, **variables: str) -> list[str]:
    """The argv of Procfile.dev's `name` process, exactly as shipped, with ${VARS} filled in."""
    for line in (ROOT / "Procfile.dev").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            for variable, value in variables.items():
                command = command.replace("${" + variable + "}", value).replace("$" + variable, value)
            return shlex.split(command)
    raise SystemExit(f"Procfile.dev has no {name!r} process")


def manage(*args: str, env: dict) -> str:
    """Run `manage.py ARGS` with the project's interpreter; its standard output."""
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,  # noqa: S603
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def stopped(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def server_env(database_url: str, redis_url: str, broker_url: str, **extra: str) -> dict:
    """Production-like settings (DEBUG off) on loopback, limits raised so they do not measure themselves."""
    return {
        **os.environ, "READ_DOT_ENV": "false", "DEBUG": "false", "SECRET_KEY": "bench-" + "k" * 60,
        "ALLOWED_HOSTS": "127.0.0.1,localhost", "SECURE_SSL_REDIRECT": "false", "LOG_LEVEL": "WARNING",
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "CELERY_BROKER_URL": broker_url,
        "API_RATE_LIMIT": "1000000/s", "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        # Without billing unless asked for (`--billing` on accept.py, batch.py and e2e.py: BILLING_ENABLED=true in
        # **extra, then bench_billing gives the bench tenant prices and a balance, and the sends use a live key).
        "BILLING_ENABLED": "false",
        # As `make run` does: the virtualenv's commands (gunicorn, celery) first on PATH.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra,
    }


# Every destination priced (a one-digit prefix per country code's first digit), and a balance far above the run.
BILLING_SETUP = """
from decimal import Decimal
from accounts.models import Tenant
from accounts.services.audit import SYSTEM
from billing.models import Price
from billing.services import balance_credit
for digit in "123456789":
    Price.unscoped.get_or_create(tenant=None, prefix=digit, country="", operator="", message_type="",
                                 min_monthly_volume=0, effective_from="2025-01-01",
                                 defaults={"price": Decimal("0.0050"), "currency": "EUR"})
balance_credit(tenant=Tenant.objects.get(slug="bench"), amount=Decimal("10000000"), reason="bench", actor=SYSTEM)
"""


def billing_env(enabled: bool) -> dict:
    """server_env's **extra for a run with billing (rating and the prepaid hold at accept) or without."""
    return {"BILLING_ENABLED": "true" if enabled else "false"}


def bench_billing(env: dict) -> str:
    """Prices for every destination and a balance of 10,000,000 EUR for the bench tenant; its live key's secret
    (a test key's sends are rated but hold nothing: the hold is what billing adds to a live send)."""
    manage("shell", "-c", BILLING_SETUP, env=env)
    return manage("create_api_key", "bench", "--name", "bench-billed", "--mode", "live", env=env).strip().splitlines()[-1]
