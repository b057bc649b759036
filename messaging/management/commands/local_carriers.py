"""manage.py local_carriers [--only smpp|http]: make run's SMPP and HTTP carriers on loopback, in the foreground.

The SMSC (messaging/carriers/local/smsc.js) listens on LOCAL_SMPP_PORT and the HTTP carrier on
LOCAL_HTTP_CARRIER_PORT, with the credentials seed_demo gives the carriers local-smpp and local-http
(messaging/carriers/local/demo.py). Each child's pid is in var/local_carriers/{smpp,http}.pid, this process's
in var/local_carriers/local_carriers.pid (--run-dir: another directory than var/local_carriers; the SMSC's
submit_sm log, smsc.jsonl, is there too): `kill` a child to stop that carrier (this process goes on, so the
others keep running), `kill -HUP` this process to start the stopped ones again. SIGTERM or SIGINT stops
every child, then this process.
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from messaging.carriers.local import demo
from messaging.carriers.local.processes import (
    Child,
    ChildFailed,
    http_carrier_argv,
    pid_file_remove,
    pid_file_write,
    smsc_argv,
)

POLL_SECONDS = 0.2


class Command(BaseCommand):
    help = "Run the local SMPP carrier (smsc.js) and the local HTTP carrier on loopback until SIGTERM or SIGINT."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--only", choices=["smpp", "http"], help="run only this carrier")
        parser.add_argument("--run-dir", type=Path, default=None,
                            help="where the pid files and the SMSC's log go (default var/local_carriers)")

    def handle(self, *args, only: str | None = None, run_dir: Path | None = None, **options) -> None:
        self.run_dir = run_dir or settings.VAR_DIR / "local_carriers"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        signals: list[int] = []
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, lambda received, _frame: signals.append(received))
        children = [self._smpp()] if only != "http" else []
        children += [self._http()] if only != "smpp" else []
        pid_file_write(self.run_dir / "local_carriers.pid", os.getpid())
        try:
            for child in children:
                self._start(child)
            self._watch(children, signals)
        finally:
            for child in children:
                child.stop()
                pid_file_remove(self.run_dir / f"{child.name}.pid")
            pid_file_remove(self.run_dir / "local_carriers.pid")
        self.stdout.write("local carriers: stopped")

    def _smpp(self) -> Child:
        argv = smsc_argv(port=settings.LOCAL_SMPP_PORT, system_id=demo.SMPP_SYSTEM_ID, password=demo.SMPP_PASSWORD,
                         undeliverable_suffix=demo.UNDELIVERABLE_SUFFIX, log=str(self.run_dir / "smsc.jsonl"),
                         stats_port=0)
        return Child("smpp", argv, echo=self._echo("smpp"))

    def _http(self) -> Child:
        env = {**os.environ, "LOCAL_HTTP_CARRIER_SECRET": demo.http_carrier_secret("receipt"),
               "LOCAL_HTTP_CARRIER_TOKEN": demo.http_carrier_secret("token")}
        argv = http_carrier_argv(port=settings.LOCAL_HTTP_CARRIER_PORT, undeliverable_suffix=demo.UNDELIVERABLE_SUFFIX)
        return Child("http", argv, env=env, cwd=settings.BASE_DIR, echo=self._echo("http"))

    def _echo(self, name: str):
        return lambda line: self.stdout.write(f"{name}: {line}")

    def _start(self, child: Child) -> None:
        try:
            child.start()
        except ChildFailed as exc:
            raise CommandError(str(exc)) from None
        pid_file_write(self.run_dir / f"{child.name}.pid", child.pid)
        where = {"smpp": f"SMPP on 127.0.0.1:{child.port} (system_id {demo.SMPP_SYSTEM_ID}, stats "
                         f"http://127.0.0.1:{child.lines.get('stats', '?')}/stats, log {self.run_dir / 'smsc.jsonl'})",
                 "http": f"HTTP on http://127.0.0.1:{child.port}/send (stats http://127.0.0.1:{child.port}/stats)"}
        self.stdout.write(f"local carriers: {where[child.name]}, pid {child.pid}")

    def _watch(self, children: list[Child], signals: list[int]) -> None:
        """Until SIGTERM or SIGINT: report a child that stopped; on SIGHUP, start the stopped ones again."""
        reported: set[str] = set()
        while True:
            while signals:
                received = signals.pop(0)
                if received != signal.SIGHUP:
                    return
                for child in children:
                    if not child.running():
                        self._start(child)
                        reported.discard(child.name)
            for child in children:
                if not child.running() and child.name not in reported:
                    reported.add(child.name)
                    self.stdout.write(f"local carriers: {child.name} stopped (exit {child.process.returncode}); "
                                      f"`kill -HUP {os.getpid()}` starts it again")
            time.sleep(POLL_SECONDS)
