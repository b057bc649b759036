"""The local carriers as child processes: how each is started, its `ready PORT` line awaited, and stopped.

A child dies with the process that started it, even a killed one (Linux: PR_SET_PDEATHSIG), so a kill -9 of
`manage.py local_carriers` leaves no carrier holding its port.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
PR_SET_PDEATHSIG = 1
ANNOUNCEMENTS = frozenset({"ready", "stats"})


class ChildFailed(RuntimeError):
    """A carrier did not start: it exited, or said nothing within the timeout (its port taken, say)."""


def smsc_argv(*, port: int, system_id: str, password: str, undeliverable_suffix: str = "", log: str = "",
              stats_port: int | None = None, receipt_delay_ms: int = 0) -> list[str]:
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "smpp").is_dir():
        raise ChildFailed("the local SMSC needs node and node-smpp: run `make local-carriers`")
    argv = [node, str(HERE / "smsc.js"), "--port", str(port), "--system-id", system_id, "--password", password,
            "--receipt-delay-ms", str(receipt_delay_ms)]
    if undeliverable_suffix:
        argv += ["--undeliverable-suffix", undeliverable_suffix]
    if log:
        argv += ["--log", log]
    if stats_port is not None:
        argv += ["--stats-port", str(stats_port)]
    return argv


def http_carrier_argv(*, port: int, undeliverable_suffix: str = "", receipt_delay_ms: int = 1000) -> list[str]:
    argv = [sys.executable, "-m", "messaging.carriers.local.http_carrier", "--port", str(port),
            "--receipt-delay-ms", str(receipt_delay_ms)]
    return argv + (["--undeliverable-suffix", undeliverable_suffix] if undeliverable_suffix else [])


_prctl = ctypes.CDLL(None).prctl if sys.platform == "linux" else None  # looked up before any fork


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One carrier process. `start()` returns once it printed `ready PORT`; its stdout lines other than the
    announcements (ANNOUNCEMENTS: `ready PORT`, smsc.js's `stats PORT`) go to `echo`."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
                 echo: Callable[[str], None] = lambda line: None) -> None:
        self.name, self.argv, self.env, self.cwd, self.echo = name, argv, env, cwd, echo
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.lines: dict[str, str] = {}  # first word -> the rest, of each line it printed ("stats" -> "40123")

    def start(self, timeout: float = 15.0) -> Child:
        ready = threading.Event()
        self.port, self.lines = 0, {}
        self.process = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,  # noqa: S603 - our own argv
                                        env=self.env, cwd=self.cwd, preexec_fn=_die_with_parent)  # noqa: PLW1509 - before any thread of the child
        threading.Thread(target=self._read, args=(self.process, ready), name=f"{self.name}-stdout", daemon=True).start()
        if not ready.wait(timeout) or not self.port:
            self.stop()
            raise ChildFailed(f"{self.name} did not start (exit {self.process.returncode}): {' '.join(self.argv[:2])}")
        return self

    def _read(self, process: subprocess.Popen, ready: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            word, _, rest = line.strip().partition(" ")
            self.lines.setdefault(word, rest)
            if word == "ready" and not ready.is_set():
                self.port = int(rest)
                ready.set()
            elif word not in ANNOUNCEMENTS:
                self.echo(line.rstrip("\n"))
        ready.set()  # it exited before it was ready

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; its exit status (None when it never started)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        return self.process.returncode


def pid_file_write(path: Path, pid: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{pid}\n" if pid else "")


def pid_file_remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
