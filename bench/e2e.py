#!/usr/bin/env python3
"""End to end with the simulator: accept -> dispatch -> sent -> receipt -> delivered -> one signed
`message.delivered` webhook per delivered message to a loopback receiver, beside the floor from the same run.

On a throw-away database beside --database-url:
- floor: bench/floor.py (a DRF endpoint validating `to` and `text` and inserting one row, gunicorn
  sync workers) at -c 20, as every speed figure of ours is quoted;
- ours: Procfile.dev's `web`, `dispatcher`, `worker` and `webhooks` processes as shipped (DEBUG off, PostgreSQL,
  Redis), a webhook endpoint subscribed to `message.delivered` only, pointing at a receiver process
  on loopback; then `--seconds` of load through POST /v1/messages/batch, 1,000 messages a request,
  paced at `--rate` messages/s (the seed payload without `callback_url`: the one webhook per message
  is the endpoint's), each to a distinct number (the per-destination limit is left as shipped), none
  ending 0004 (the simulator never sends that one a receipt: it could not be final by the end).
  Then it waits until every message is final and every delivered message's webhook has come, and
  verifies every webhook with the Standard Webhooks reference library.

    .venv/bin/python bench/e2e.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/14 --broker-url redis://127.0.0.1:6379/15 --seconds 60 --rate 1000

Beat does not run (the sweeper is for recovery, and nothing is lost here). The broker db is flushed.
Prints one JSON line: {"floor": {...}, "ours": {...}, "ratio": ours delivered/s over the floor's requests/s}.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accept import RAISED_RATE, bench_tenant, flush, seed_payload  # noqa: E402
from batch_cpu import backend_pids, cpu_seconds  # noqa: E402
from send import Api  # noqa: E402
from stack import (  # noqa: E402
    bench_billing,
    billing_env,
    free_port,
    manage,
    procfile_command,
    server_env,
    stopped,
    throwaway_database,
    wait_listening,
)

BATCH = 1000
STEADY_AFTER = 10.0  # seconds into the load from which webhooks_steady_per_second counts
FINAL = ("delivered", "undelivered", "failed", "expired", "rejected", "canceled")


# --- the receiver: its own process, so its CPU is not the load generator's ---------------------------

def receive(port: int, out: Path) -> None:
    """Answer 204 to every POST and log (arrival time, headers, body) as a JSON line; keep-alive."""
    lock = threading.Lock()
    sink = out.open("a", buffering=1024 * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {name: self.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
            line = json.dumps({"at": time.time(), "headers": headers, "body": body.decode()})
            with lock:
                sink.write(line + "\n")
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 1024  # http.server's 5 drops the SYNs of a burst of concurrent deliveries

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=_flush_every_second, args=(sink, lock), daemon=True).start()
    server.serve_forever()


def _flush_every_second(sink, lock) -> None:
    while True:
        time.sleep(1)
        with lock:
            sink.flush()


# --- the run ------------------------------------------------------------------------------------------

def floor(database_url: str) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "floor.py"), "--database-url", database_url, "-n", "4000",  # noqa: S603
                           "-c", "20"], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def endpoint_secret(env: dict, url: str) -> str:
    script = ("from accounts.models import Tenant; from accounts.services import SYSTEM; "
              "from smsportal.events import services; "
              "t = Tenant.objects.get(slug='bench'); "
              f"e, s = services.webhook_endpoint_create(tenant=t, url={url!r}, actor=SYSTEM, events=['message.delivered']); "
              "print(s)")
    return manage("shell", "-c", script, env=env).strip().splitlines()[-1]


def numbers(count: int) -> list[str]:
    base = random.randint(0, 3_000_000)
    found = []
    i = 0
    while len(found) < count:
        number = f"+1415{2_000_000 + base + i:07d}"
        i += 1
        if not number.endswith("0004"):
            found.append(number)
    return found


def load(port: int, key: str, *, seconds: float, rate: float) -> dict:
    """Paced batches of BATCH: batch i is sent at start + i * BATCH / rate (late ones go at once)."""
    api = Api(f"http://127.0.0.1:{port}", key, timeout=120)
    defaults = {k: v for k, v in seed_payload(0).items() if k not in ("to", "callback_url")}
    batches = max(1, round(seconds * rate / BATCH))
    destinations = numbers(batches * BATCH)
    started = time.time()

    def one(index: int) -> tuple[int, int, float]:
        time.sleep(max(0.0, started + index * BATCH / rate - time.time()))
        sent = time.perf_counter()
        body = {"defaults": defaults, "messages": [{"to": to} for to in destinations[index * BATCH:(index + 1) * BATCH]]}
        status, answer = api.request("POST", "/v1/messages/batch", body, {"Idempotency-Key": str(uuid.uuid4())})
        return status, answer.get("accepted", 0), (time.perf_counter() - sent) * 1000

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(batches)))
    finished = time.time()
    accepted = sum(n for _, n, _ in results)
    latencies = sorted(ms for _, _, ms in results)
    return {"started": started, "finished": finished, "accepted": accepted, "batches": batches,
            "statuses": sorted({s for s, _, _ in results}), "batch_p50_ms": round(latencies[len(latencies) // 2]),
            "batch_max_ms": round(latencies[-1])}


def statuses(database_url: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT status, count(*) FROM messaging_message GROUP BY status").fetchall())


def delivered_window(database_url: str) -> tuple[float, float]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        first, last = conn.execute("SELECT extract(epoch FROM min(created_at)), extract(epoch FROM max(delivered_at)) "
                                   "FROM messaging_message WHERE status = 'delivered'").fetchone()
    return float(first), float(last)


def received(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def drain(database_url: str, out: Path, *, timeout: float) -> tuple[dict[str, int], list[dict], float]:
    """Wait until every message is final and one webhook per delivered message has come."""
    deadline = time.monotonic() + timeout
    while True:
        counts = statuses(database_url)
        hooks = received(out)
        final = all(status in FINAL for status in counts)
        if (final and len(hooks) >= counts.get("delivered", 0)) or time.monotonic() > deadline:
            return counts, hooks, time.time()
        time.sleep(2)


def connector_bound(database_url: str, timeout: float = 60.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT 1 FROM messaging_carrier WHERE session_state = 'bound'").fetchone():
                return
            time.sleep(0.2)
    raise SystemExit("the connector did not bind")


def submits(database_url: str) -> int:
    """Our count of messages submitted to the SMPP carrier (attempts it answered)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM messaging_messageattempt WHERE carrier = 'bench-smpp' "
                            "AND outcome IN ('submitted', 'delivered', 'undelivered')").fetchone()[0]


def verify(hooks: list[dict], secret: str) -> dict:
    from standardwebhooks.webhooks import Webhook

    webhook = Webhook(secret)
    failures, subjects = 0, []
    for hook in hooks:
        try:
            payload = webhook.verify(hook["body"], hook["headers"])
        except Exception:  # any refusal by the reference library counts
            failures += 1
            continue
        subjects.append((payload["type"], payload["data"]["id"]))
    return {"verify_failures": failures, "duplicates": len(subjects) - len(set(subjects)),
            "types": sorted({t for t, _ in subjects})}


def lags(hooks: list[dict]) -> dict:
    from datetime import datetime

    values = sorted(h["at"] - datetime.fromisoformat(json.loads(h["body"])["data"]["created_at"].replace("Z", "+00:00"))
                    .timestamp() for h in hooks)
    if not values:
        return {}
    return {"p50": round(values[len(values) // 2], 2), "p99": round(values[int(len(values) * 0.99)], 2),
            "max": round(values[-1], 2)}


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (a prefork pool's children, gunicorn's workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu_seconds(current)
        todo += children.get(current, [])
    return total


def cpu_sample(names: list[str], processes: list[subprocess.Popen], database_url: str) -> dict[str, float]:
    sample = {name: tree_cpu(process.pid) for name, process in zip(names, processes, strict=True)}
    sample.update({f"postgresql:{pid}": cpu_seconds(pid) for pid in backend_pids(database_url)})
    return sample


def cpu_used(before: dict[str, float], after: dict[str, float], messages: int) -> dict[str, float]:
    """ms of CPU a message per process (PostgreSQL: the backends of this database alive at the end)."""
    used = {name: after[name] - before.get(name, 0.0) for name in after if not name.startswith("postgresql:")}
    used["postgresql"] = sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith("postgresql:"))
    return {name: round(seconds * 1000 / max(1, messages), 3) for name, seconds in used.items()}


def smpp_route(env: dict, tmp: Path, smsc) -> str:
    """A live key, and the SMPP carrier to `smsc` with a route for +1 (carriers_load, as an operator would)."""
    from connector import carriers_file

    key = manage("create_api_key", "bench", "--name", "bench-live", "--mode", "live", env=env).strip().splitlines()[-1]
    manage("carriers_load", str(carriers_file(tmp, smsc.port, 50)), env=env)
    return key


def ours(*, database_url: str, redis_url: str, broker_url: str, seconds: float, rate: float, tmp: Path,
         smsc=None, billing: bool = False) -> dict:
    live = smsc is not None
    env = server_env(database_url, redis_url, broker_url, LIVE_CARRIER="routes" if live else "simulator",
                     CONNECTOR_JOURNAL_DIR=str(tmp / "journal"), **billing_env(billing))
    key = bench_tenant(env)
    if live:
        key = smpp_route(env, tmp, smsc)
    if billing:  # a live key: each batch held at accept, each message captured when it goes to the carrier
        key = bench_billing(env)
    receiver_port, web_port = free_port(), free_port()
    out = tmp / f"webhooks-{uuid.uuid4().hex[:8]}.jsonl"
    secret = endpoint_secret(env, f"http://127.0.0.1:{receiver_port}/hook")
    processes = [subprocess.Popen([sys.executable, __file__, "receive", str(receiver_port), str(out)])]  # noqa: S603
    names = ("web", "dispatcher", "worker", "webhooks", *(("connector",) if live else ()))
    commands = {name: procfile_command(name, WEB_PORT=str(web_port)) for name in names}
    try:
        for name, argv in commands.items():
            log = (tmp / f"e2e-{name}.log").open("wb")
            processes.append(subprocess.Popen(argv, env=env, cwd=HERE.parent, stdout=log, stderr=subprocess.STDOUT))  # noqa: S603
        wait_listening(web_port, processes[1])
        wait_listening(receiver_port, processes[0])
        time.sleep(3)  # the workers' start
        if live:
            connector_bound(database_url)
            smsc_before = smsc.stats()
        names = ["receiver", *commands]
        before = cpu_sample(names, processes, database_url)
        figures = load(web_port, key, seconds=seconds, rate=rate)
        counts, hooks, drained_at = drain(database_url, out, timeout=max(120.0, seconds * 3))
        cpu = cpu_used(before, cpu_sample(names, processes, database_url), figures["accepted"])
        if live:
            smsc_after = smsc.stats()
    finally:
        for process in reversed(processes):
            stopped(process)
    start, end = figures["started"], figures["finished"]
    first_created, last_delivered = delivered_window(database_url)
    in_window = sum(1 for h in hooks if h["at"] <= end)
    # After the pipeline has filled (receipts come SIMULATOR_RECEIPT_DELAY after the submit): the rate it keeps up.
    steady = sum(1 for h in hooks if start + STEADY_AFTER <= h["at"] <= end)
    last_hook = max((h["at"] for h in hooks), default=end)
    carried = {"what": "POST /v1/messages/batch (1,000 a request, paced), test key, simulator, endpoint on message.delivered"}
    if live:
        carried = {"what": "POST /v1/messages/batch (1,000 a request, paced), live key, routed to one SMPP carrier "
                           "(manage.py connector, one session, window 50, to smsc.js), endpoint on message.delivered",
                   "submit_sm_ours": submits(database_url),
                   "smsc": {k: smsc_after[k] - smsc_before.get(k, 0) for k in smsc_after if isinstance(smsc_after[k], int)}}
    return {
        **carried,
        "commands": {name: " ".join(argv) for name, argv in commands.items()},
        "load_seconds": round(end - start, 1), "target_rate": rate, **{k: figures[k] for k in
                                                                        ("accepted", "statuses", "batch_p50_ms", "batch_max_ms")},
        "accepted_per_second": round(figures["accepted"] / (end - start)),
        "delivered_per_second": round(counts.get("delivered", 0) / (last_delivered - first_created)),
        "webhooks_per_second": round(len(hooks) / (last_hook - start)),
        "webhooks_during_load_per_second": round(in_window / (end - start)),
        "webhooks_steady_per_second": round(steady / max(1.0, end - start - STEADY_AFTER)),
        "drain_seconds_after_load": round(drained_at - end, 1),
        "final": counts, "all_final": all(status in FINAL for status in counts), "webhooks": len(hooks),
        **verify(hooks, secret), "lag_seconds": lags(hooks), "cpu_ms_per_message": cpu,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["receive"]:
        receive(int(argv[1]), Path(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="cache and rate limits")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=1000, help="messages/s offered")
    parser.add_argument("--carrier", choices=["simulator", "smpp"], default="simulator",
                        help="simulator: test key; smpp: live key over manage.py connector to smsc.js")
    parser.add_argument("--no-floor", action="store_true", help="skip the floor (only to try things out)")
    parser.add_argument("--billing", action="store_true", help="billing on: prices, a balance, a live key (the hold)")
    parser.add_argument("--tmp", default=str(Path(tempfile.gettempdir()) / "smsportal-e2e"), help="where the receiver's log and the process logs go")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    Path(args.tmp).mkdir(parents=True, exist_ok=True)
    out: dict = {"uptime_before": _uptime()}
    with throwaway_database(args.database_url, "bench_e2e") as database_url:
        if not args.no_floor:
            out["floor"] = floor(database_url)
        flush(args.broker_url)
        smsc = None
        if args.carrier == "smpp":
            from connector import Smsc

            smsc = Smsc(Path(args.tmp) / "smsc.log")
        try:
            out["ours"] = ours(database_url=database_url, redis_url=args.redis_url, broker_url=args.broker_url,
                               seconds=args.seconds, rate=args.rate, tmp=Path(args.tmp), smsc=smsc,
                               billing=args.billing)
        finally:
            flush(args.broker_url)
            if smsc is not None:
                smsc.stop()
    if "floor" in out:
        out["ratio"] = round(out["ours"]["delivered_per_second"] / out["floor"]["requests_per_second"], 3)
    out["limits"] = {"API_RATE_LIMIT": "1000000/s", "messages_per_second": RAISED_RATE}
    out["billing"] = args.billing
    out["uptime_after"] = _uptime()
    print(json.dumps(out))
    return 0


def _uptime() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


if __name__ == "__main__":
    sys.exit(main())
