#!/usr/bin/env python3
"""Batch accept speed, as shipped, beside a plain-insert floor from the same run.

On a throw-away database beside --database-url: the floor first, then ours.
- floor: `-c` threads each commit 1,000-row `INSERT ... SELECT FROM unnest(...)` transactions into a
  plain table (id, public_id, to, text), straight from psycopg: what PostgreSQL itself gives for
  a comparable plain insert on this box.
- ours: Procfile.dev's `web` command as shipped (DEBUG off, PostgreSQL, Redis), `-c` clients each
  POSTing /v1/messages/batch with 1,000 messages (the seed payload as `defaults`, a distinct number
  per item), an Idempotency-Key on each, a test key. Accepted means 202 with every item accepted;
  durable means counted in messaging_message afterwards. Run twice: the seed payload, whose
  `callback_url` makes a `message.queued` webhook delivery per message, and the same without it.

    .venv/bin/python bench/batch.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/0 --broker-url redis://127.0.0.1:6379/15 -n 40 -c 4

Limits are raised as in bench/accept.py. No worker runs: the broker db given is flushed.
Prints one JSON line: {"floor": {...}, "ours": {...}, "ours_without_callback_url": {...}, "ratio": ...}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accept import RAISED_RATE, bench_tenant, flush, seed_payload, served  # noqa: E402
from send import Api  # noqa: E402
from stack import bench_billing, billing_env, server_env, throwaway_database  # noqa: E402

BATCH = 1000
FLOOR_TABLE = "bench_floor_batch"


def floor_rows(*, database_url: str, batches: int, concurrency: int) -> dict:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE {FLOOR_TABLE} (id bigserial PRIMARY KEY, public_id text UNIQUE, "to" text, '
                     "text text)")

    def one(_: int) -> None:
        with psycopg.connect(database_url) as conn:
            ids = [f"msg_{uuid.uuid4().hex[:20]}" for _ in range(BATCH)]
            numbers = [f"+1415555{i % 10000:04d}" for i in range(BATCH)]
            conn.execute(f'INSERT INTO {FLOOR_TABLE} (public_id, "to", text) '  # noqa: S608 (a constant)
                         "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])",
                         [ids, numbers, ["Your OTP is 123456"] * BATCH])

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(batches)))
    elapsed = time.perf_counter() - started
    return {"what": f"psycopg, {BATCH}-row INSERT ... SELECT FROM unnest per transaction, plain table, no HTTP",
            "rows": batches * BATCH, "concurrency": concurrency, "seconds": round(elapsed, 2),
            "rows_per_second": round(batches * BATCH / elapsed)}


def batch_body(index: int, *, callback_url: bool) -> dict:
    defaults = {key: value for key, value in seed_payload(0).items() if key != "to"}
    if not callback_url:
        defaults.pop("callback_url")
    base = (index * BATCH) % 9_000_000
    return {"defaults": defaults, "messages": [{"to": f"+1415{2_000_000 + (base + i) % 7_000_000:07d}"}
                                               for i in range(BATCH)]}


def batches_load(port: int, key: str, *, batches: int, concurrency: int, callback_url: bool) -> dict:
    api = Api(f"http://127.0.0.1:{port}", key, timeout=120)

    def one(index: int) -> tuple[int, int, float]:
        started = time.perf_counter()
        status, answer = api.request("POST", "/v1/messages/batch", batch_body(index, callback_url=callback_url),
                                     {"Idempotency-Key": str(uuid.uuid4())})
        return status, answer.get("accepted", 0), (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(batches)))
    elapsed = time.perf_counter() - started
    accepted = sum(n for _, n, _ in results)
    latencies = sorted(ms for _, _, ms in results)
    return {"batches": batches, "batch_size": BATCH, "concurrency": concurrency, "seconds": round(elapsed, 2),
            "accepted": accepted, "messages_per_second": round(accepted / elapsed),
            "statuses": sorted({status for status, _, _ in results}),
            "batch_latency_ms": {"p50": round(latencies[len(latencies) // 2]), "max": round(latencies[-1])}}


def durable(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM messaging_message").fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="cache and rate limits")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("-n", "--batches", type=int, default=40, help="batches of 1,000 per run")
    parser.add_argument("-c", "--concurrency", type=int, default=4)
    parser.add_argument("-w", "--workers", type=int, default=4, help="web processes")
    parser.add_argument("--billing", action="store_true", help="billing on: prices, a balance, a live key (the hold)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    out: dict = {}
    with throwaway_database(args.database_url, "bench_batch") as database_url:
        out["floor"] = floor_rows(database_url=database_url, batches=args.batches, concurrency=args.concurrency)
        env = server_env(database_url, args.redis_url, args.broker_url, **billing_env(args.billing))
        key = bench_tenant(env)
        if args.billing:
            key = bench_billing(env)
        out["billing"] = args.billing
        try:
            with served(env, args.workers) as (port, argv_):
                batches_load(port, key, batches=2, concurrency=1, callback_url=False)  # warm up
                before = durable(database_url)
                for name, callback_url in (("ours", True), ("ours_without_callback_url", False)):
                    figures = batches_load(port, key, batches=args.batches, concurrency=args.concurrency,
                                           callback_url=callback_url)
                    after = durable(database_url)
                    out[name] = {**figures, "durable_rows": after - before}
                    before = after
                out["server"] = " ".join(argv_)
        finally:
            flush(args.broker_url)
    out["ratio"] = round(out["ours"]["messages_per_second"] / out["floor"]["rows_per_second"], 3)
    out["limits"] = {"API_RATE_LIMIT": "1000000/s", "messages_per_second": RAISED_RATE}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
