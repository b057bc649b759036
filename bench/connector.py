#!/usr/bin/env python3
"""One connector process over one SMPP session (window 50) to a loopback SMSC that answers at once and sends a
receipt for every message, beside two floors from the same run.

On a throw-away database beside --database-url:
- floor: bench/floor.py (a DRF endpoint validating `to` and `text` and inserting one row, gunicorn sync
  workers, -c 20), as every speed figure of ours is quoted;
- smpp_floor: a plain smpplib client, one session, the same window, to the same SMSC: submit_sm with
  registered_delivery, every receipt answered, nothing stored. What the library and the SMSC give this box;
- ours: `--messages` live messages accepted and handed to the SMPP route (attempts `pending`, as dispatch leaves
  them for a connector), then `manage.py connector` started: from its first claim until every message is
  `delivered` by its receipt. The SMSC's own counts (submit_sm, receipts sent and answered) are beside ours.

    .venv/bin/python bench/connector.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/14 --broker-url redis://127.0.0.1:6379/15 --messages 30000

The SMSC is messaging/carriers/local/smsc.js (node-smpp; `make local-carriers` installs it). The broker db is
flushed. Prints one JSON line: {"floor": {...}, "smpp_floor": {...}, "ours": {...}, "ratio_to_smpp_floor": ...}.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accept import RAISED_RATE, bench_tenant, flush  # noqa: E402
from batch_cpu import backend_pids, cpu_seconds  # noqa: E402
from e2e import floor  # noqa: E402
from stack import ROOT, manage, procfile_command, server_env, stopped, throwaway_database  # noqa: E402

SMSC = ROOT / "messaging" / "carriers" / "local" / "smsc.js"
SYSTEM_ID, PASSWORD = "bench", "benchpw"
TEXT = "Your code is 123456"


class Smsc:
    """smsc.js on free ports: its SMPP port and its /stats."""

    def __init__(self, log: Path) -> None:
        self.process = subprocess.Popen(  # noqa: S603
            [shutil.which("node") or "node", str(SMSC), "--port", "0", "--stats-port", "0", "--system-id", SYSTEM_ID, "--password", PASSWORD],
            cwd=SMSC.parent, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True)
        self.port = self.stats_port = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (self.port and self.stats_port):
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("smsc.js exited before it was ready")
            words = line.split()
            if words[:1] == ["ready"]:
                self.port = int(words[1])
            elif words[:1] == ["stats"]:
                self.stats_port = int(words[1])
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats", timeout=5) as answer:  # noqa: S310
            return json.loads(answer.read())

    def stop(self) -> None:
        stopped(self.process)


# --- the smpplib floor ---------------------------------------------------------------------------------------

def smpp_floor(port: int, *, count: int, window: int) -> dict:
    """A plain smpplib client: submit_sm with a window of `window`, every receipt answered; nothing stored."""
    import smpplib.client
    import smpplib.exceptions

    client = smpplib.client.Client("127.0.0.1", port, allow_unknown_opt_params=True)
    slots = threading.Semaphore(window)
    lock = threading.Lock()
    counts = {"resp": 0, "receipts": 0}
    done = threading.Event()

    def on_sent(pdu) -> None:
        slots.release()
        with lock:
            counts["resp"] += 1

    def on_message(pdu) -> None:
        with lock:
            counts["receipts"] += 1
            if counts["receipts"] >= count:
                done.set()

    client.set_message_sent_handler(on_sent)
    client.set_message_received_handler(on_message)
    client.connect()
    client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # noqa: SLF001 (as our session does)
    client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)

    def listen() -> None:
        with contextlib.suppress(smpplib.exceptions.ConnectionError, OSError):  # the socket closed at the end
            client.listen(auto_send_enquire_link=False)

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    started = time.perf_counter()
    for i in range(count):
        slots.acquire()
        client.send_message(source_addr_ton=5, source_addr="Bench", dest_addr_ton=1, dest_addr_npi=1,
                            destination_addr=f"1415{2_000_000 + i:07d}", short_message=TEXT.encode(),
                            data_coding=0, registered_delivery=1)
    submitted = time.perf_counter() - started
    done.wait(120)
    elapsed = time.perf_counter() - started
    client._socket.close()  # noqa: SLF001 (the reader thread ends on the closed socket; no unbind needed)
    return {"what": f"plain smpplib client, one session, window {window}, receipts answered, nothing stored",
            "submit_sm": count, "receipts": counts["receipts"],
            "submit_sm_per_second": round(count / submitted),
            "with_receipts_per_second": round(counts["receipts"] / elapsed)}


# --- ours ------------------------------------------------------------------------------------------------------

STAGE = """
import time
from django.utils import timezone
from accounts.models import ApiKey, Tenant
from messaging import dispatch
from messaging.accept import messages_accept
from messaging.routing.models import Carrier
from messaging.routing.cache import routing_cache_clear

tenant = Tenant.objects.get(slug="bench")
key = ApiKey.unscoped.filter(tenant=tenant, mode="live").first()
# dispatch hands attempts to a connector only while one reports the carrier bound: as a running one would
Carrier.objects.filter(name="bench-smpp").update(session_state="bound", session_state_at=timezone.now())
routing_cache_clear()
COUNT, CHUNK = {count}, 1000
handed = 0
for start in range(0, COUNT, CHUNK):
    items = [dict(to=f"+1415{{2_000_000 + i:07d}}", sender="Bench", text={text!r}, message_type="transactional")
             for i in range(start, min(COUNT, start + CHUNK))]
    drafts = messages_accept(tenant=tenant, api_key=key, items=items)
    bad = [d.error for d in drafts if d.error is not None]
    assert not bad, bad[:3]
    Carrier.objects.filter(name="bench-smpp").update(session_state_at=timezone.now())
    counts = dispatch.messages_dispatch(message_ids=[d.id for d in drafts])
    handed += counts.get("handed", 0)
Carrier.objects.filter(name="bench-smpp").update(session_state="down", session_state_at=timezone.now())
print("handed", handed)
"""

CLAIMED = "SELECT 1 FROM messaging_messageattempt WHERE outcome <> 'pending' LIMIT 1"
PROGRESS = ("SELECT count(*) FILTER (WHERE outcome <> 'pending'), count(*) FILTER (WHERE outcome = 'delivered'), "
            "count(*) FROM messaging_messageattempt")


def carriers_file(tmp: Path, port: int, window: int) -> Path:
    path = tmp / "bench-carriers.json"
    path.write_text(json.dumps({
        "carriers": [{"name": "bench-smpp", "kind": "smpp", "host": "127.0.0.1", "port": port, "system_id": SYSTEM_ID,
                      "password": PASSWORD, "bind": "transceiver", "sessions": 1, "window": window, "max_mps": 0}],
        "routes": [{"carrier": "bench-smpp", "prefix": "1", "cost": "0.0050", "currency": "EUR", "priority": 1}]}))
    return path


def ours(*, database_url: str, redis_url: str, broker_url: str, smsc: Smsc, count: int, window: int,
         tmp: Path, profile: str = "", profile_idle: bool = False) -> dict:
    import psycopg

    env = server_env(database_url, redis_url, broker_url, LIVE_CARRIER="routes",
                     CONNECTOR_JOURNAL_DIR=str(tmp / "journal"), ROUTING_CACHE_SECONDS="0")
    bench_tenant(env)
    manage("create_api_key", "bench", "--name", "bench-live", "--mode", "live", env=env)
    manage("carriers_load", str(carriers_file(tmp, smsc.port, window)), env=env)
    staged_at = time.perf_counter()
    handed = manage("shell", "-c", STAGE.format(count=count, text=TEXT), env=env).split()[-1]
    stage_seconds = time.perf_counter() - staged_at
    if int(handed) != count:
        raise SystemExit(f"only {handed} of {count} attempts were handed to the connector")
    before = smsc.stats()
    argv = procfile_command("connector")
    log = (tmp / "connector.log").open("wb")
    process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    spy = None
    if profile:  # py-spy's collapsed stacks of the connector, by thread, until every message is delivered
        sampled = ["--idle"] if profile_idle else ["--gil"]  # every thread's waits too, or only who holds the GIL
        spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--threads", *sampled, "--nonblocking", "-o", profile,  # noqa: S603, S607
                                "--pid", str(process.pid)], stdout=log, stderr=subprocess.STDOUT)
    first = last = None
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                # Until the first claim, the database; then the SMSC's count of answered receipts (the connector
                # answers one only once it is stored), so that the benchmark's own polling does not scan the
                # attempts beside the run; the database confirms at the end.
                if first is None:
                    if conn.execute(CLAIMED).fetchone():
                        first = time.perf_counter()
                        cpu_before = cpu_seconds(process.pid), {p: cpu_seconds(p) for p in backend_pids(database_url)}
                elif smsc.stats()["receipts_acked"] - before["receipts_acked"] >= count:
                    now = time.perf_counter()
                    if conn.execute(PROGRESS).fetchone()[1] >= count:
                        last = now
                        break
                if process.poll() is not None:
                    raise SystemExit(f"the connector exited with {process.returncode}: see {tmp / 'connector.log'}")
                time.sleep(0.05)
            cpu_after = cpu_seconds(process.pid), {p: cpu_seconds(p) for p in backend_pids(database_url)}
            statuses = dict(conn.execute("SELECT status, count(*) FROM messaging_message GROUP BY 1").fetchall())
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        stopped(process)
    if last is None:
        raise SystemExit(f"not every message was delivered in time: {statuses}")
    after = smsc.stats()
    seconds = last - first
    connector_cpu = cpu_after[0] - cpu_before[0]
    postgres_cpu = sum(v - cpu_before[1].get(k, 0.0) for k, v in cpu_after[1].items())
    return {"what": f"manage.py connector, one session, window {window}: from the first claim until every message "
                    "is delivered by its receipt (answers and receipts stored)",
            "command": " ".join(argv), "messages": count, "stage_seconds": round(stage_seconds, 1),
            "seconds": round(seconds, 2), "submit_sm_per_second": round(count / seconds),
            "statuses": statuses,
            "smsc": {key: after.get(key, 0) - before.get(key, 0) for key in after if isinstance(after[key], int)},
            "cpu_ms_per_message": {"connector": round(connector_cpu * 1000 / count, 3),
                                   "postgresql": round(postgres_cpu * 1000 / count, 3)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="cache and rate limits")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("--messages", type=int, default=30000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--no-floor", action="store_true", help="skip bench/floor.py (only to try things out)")
    parser.add_argument("--profile", default="", help="record the connector with py-spy into this file (raw stacks)")
    parser.add_argument("--profile-idle", action="store_true", help="with --profile: sample waiting threads too")
    parser.add_argument("--tmp", default=str(Path(tempfile.gettempdir()) / "smsportal-connector-bench"))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    tmp = Path(args.tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    out: dict = {"load_before": _load()}
    smsc = Smsc(tmp / "smsc.log")
    try:
        with throwaway_database(args.database_url, "bench_connector") as database_url:
            if not args.no_floor:
                out["floor"] = floor(database_url)
            out["smpp_floor"] = smpp_floor(smsc.port, count=args.messages, window=args.window)
            flush(args.broker_url)
            try:
                out["ours"] = ours(database_url=database_url, redis_url=args.redis_url, broker_url=args.broker_url,
                                   smsc=smsc, count=args.messages, window=args.window, tmp=tmp, profile=args.profile,
                                   profile_idle=args.profile_idle)
            finally:
                flush(args.broker_url)
    finally:
        smsc.stop()
    out["ratio_to_smpp_floor"] = round(out["ours"]["submit_sm_per_second"]
                                       / out["smpp_floor"]["with_receipts_per_second"], 3)
    if "floor" in out:
        out["ratio_to_floor"] = round(out["ours"]["submit_sm_per_second"] / out["floor"]["requests_per_second"], 3)
    out["limits"] = {"messages_per_second": RAISED_RATE}
    out["load_after"] = _load()
    print(json.dumps(out))
    return 0


def _load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


if __name__ == "__main__":
    sys.exit(main())
