"""The node-smpp peer of the SMPP tests (messaging/tests/smpp_peer/server.js) as a Python object."""
from __future__ import annotations

import json
import pathlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from messaging.connector.service import Connector

PEER_DIR = pathlib.Path(__file__).parent / "smpp_peer"
NODE_MODULES = pathlib.Path(__file__).parents[1] / "carriers" / "local" / "node_modules"  # make local-carriers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Peer:
    """A running node-smpp SMSC on 127.0.0.1:`port`; `events` are the JSON lines it printed."""

    def __init__(self, port: int, *, system_id: str = "smsportal", password: str = "secret") -> None:  # noqa: S107 - the test peer's own
        if shutil.which("node") is None:
            pytest.skip("node is not installed (the SMPP tests run against node-smpp)")
        if not (NODE_MODULES / "smpp").is_dir():
            pytest.fail("node-smpp is not installed: run `make local-carriers`")
        self.port = port
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._proc = subprocess.Popen(["node", str(PEER_DIR / "server.js"), str(port), system_id, password],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda event: event["event"] == "listening")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()

    def command(self, cmd: str, **fields: Any) -> None:
        assert self._proc.stdin is not None
        done_before = self._done(cmd)
        self._proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self._proc.stdin.flush()
        self.wait_for(lambda event: event["event"] == "done" and event["cmd"] == cmd, count=done_before + 1)

    def _done(self, cmd: str) -> int:
        return len(self.matching(lambda event: event["event"] == "done" and event["cmd"] == cmd))

    def matching(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._cond:
            return [event for event in self.events if predicate(event)]

    def pdus(self, command: str) -> list[dict[str, Any]]:
        return self.matching(lambda event: event["event"] == "pdu" and event["command"] == command)

    def wait_pdus(self, command: str, count: int) -> list[dict[str, Any]]:
        """The `command` PDUs it got, once there are `count` (its stdout can lag behind its answers)."""
        return self.wait_for(lambda event: event["event"] == "pdu" and event["command"] == command, count=count)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], *, count: int = 1,
                 timeout: float = 5.0) -> list[dict[str, Any]]:
        with self._cond:
            self._cond.wait_for(lambda: len([e for e in self.events if predicate(e)]) >= count, timeout)
            found = [event for event in self.events if predicate(event)]
        assert len(found) >= count, f"waited {timeout}s for {count} event(s); log: {self.events[-10:]}"
        return found

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(5)
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()


class LocalSmsc:
    """messaging/carriers/local/smsc.js (the store-and-forward SMSC of make run) on a free port, with its
    submit_sm log and its /stats."""

    def __init__(self, log: pathlib.Path, *, system_id: str = "smsportal", password: str = "secret",  # noqa: S107
                 **options: str) -> None:
        script = pathlib.Path(__file__).parents[1] / "carriers" / "local" / "smsc.js"
        argv = ["node", str(script), "--port", "0", "--stats-port", "0", "--system-id", system_id,
                "--password", password, "--log", str(log)]
        for name, value in options.items():
            argv += ["--" + name.replace("_", "-"), str(value)]
        self.log = log
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)  # noqa: S603
        self.port = self.stats_port = 0
        while not (self.port and self.stats_port):
            words = self._proc.stdout.readline().split()
            assert words, "smsc.js exited before it was ready"
            if words[0] == "ready":
                self.port = int(words[1])
            elif words[0] == "stats":
                self.stats_port = int(words[1])

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats", timeout=5) as answer:  # noqa: S310
            return json.loads(answer.read())

    def submits(self) -> list[dict[str, Any]]:
        """The submit_sm log (written in batches: complete once stats() counted them and a flush went by)."""
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(5)
        self._proc.stdout.close()


class Running:
    """A Connector run in a thread of this process, stopped at the end of the block."""

    def __init__(self, name: str = "test-connector") -> None:
        self.connector = Connector(name=name, redis_url="")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.connector.run, args=(self._stop.is_set,), daemon=True)

    def __enter__(self) -> Running:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        assert not self._thread.is_alive()


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()
