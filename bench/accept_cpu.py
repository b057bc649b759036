#!/usr/bin/env python3
"""CPU one single send costs on the served path, beside the floor's, in one run: figures the box's load moves little.

Serves the floor (bench/floor.py) and then Procfile.dev's `web` as shipped (as bench/accept.py does, on a
throw-away database beside --database-url), posts `-n` single sends at concurrency `-c` to each, and reads
from /proc the user+system CPU of the gunicorn processes and of the PostgreSQL backends of that database
around the load (Linux, database server on this machine). Prints one JSON line, milliseconds per request.

    .venv/bin/python bench/accept_cpu.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/0 --broker-url redis://127.0.0.1:6379/15 -n 2000 -c 20
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floor  # noqa: E402
from accept import bench_tenant, flush, idempotency_header, seed_payload, served  # noqa: E402
from batch_cpu import backend_pids, cpu_seconds, gunicorn_pids  # noqa: E402
from send import Api, load  # noqa: E402
from stack import bench_billing, billing_env, server_env, throwaway_database  # noqa: E402


@contextlib.contextmanager
def cpu_of(port: int, database_url: str, count: int, into: dict):
    """Add to `into` the web and PostgreSQL CPU ms per request spent inside the block."""
    web, backends = gunicorn_pids(port), backend_pids(database_url)
    web_before, db_before = sum(map(cpu_seconds, web)), {pid: cpu_seconds(pid) for pid in backends}
    yield
    web_cpu = sum(map(cpu_seconds, web)) - web_before
    db_cpu = sum(cpu_seconds(pid) - db_before.get(pid, 0.0) for pid in backend_pids(database_url))
    into.update(web_cpu_ms=round(web_cpu * 1000 / count, 2), postgres_cpu_ms=round(db_cpu * 1000 / count, 2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("-w", "--workers", type=int, default=4)
    parser.add_argument("--handoff", choices=("dispatcher", "publish"), default="dispatcher",
                        help="MESSAGE_HANDOFF of the served web (no dispatcher process runs: accept only)")
    parser.add_argument("--billing", action="store_true", help="billing on: prices, a balance, a live key (the hold)")
    args = parser.parse_args(argv)
    floor_cpu, our_cpu = {}, {}
    with throwaway_database(args.database_url, "bench_accept_cpu") as database_url:
        floor_figures = floor.run(database_url=database_url, count=args.count, concurrency=args.concurrency,
                                  workers=args.workers,
                                  around=lambda port: cpu_of(port, database_url, args.count, floor_cpu))
        env = server_env(database_url, args.redis_url, args.broker_url, MESSAGE_HANDOFF=args.handoff,
                         **billing_env(args.billing))
        key = bench_tenant(env)
        if args.billing:
            key = bench_billing(env)
        try:
            with served(env, args.workers) as (port, _argv):
                api = Api(f"http://127.0.0.1:{port}", key)
                load(api, "/v1/messages", seed_payload, count=200, concurrency=args.concurrency,
                     headers_for=idempotency_header)  # warm up
                with cpu_of(port, database_url, args.count, our_cpu):
                    figures = load(api, "/v1/messages", seed_payload, count=args.count, concurrency=args.concurrency,
                                   headers_for=idempotency_header)
        finally:
            flush(args.broker_url)
    print(json.dumps({"count": args.count, "concurrency": args.concurrency, "floor": floor_cpu, "ours": our_cpu,
                      "web_cpu_ratio": round(our_cpu["web_cpu_ms"] / floor_cpu["web_cpu_ms"], 2),
                      "floor_requests_per_second": floor_figures["requests_per_second"],
                      "ours_requests_per_second": figures["requests_per_second"], "ours_p99_ms": figures["latency_ms"]["p99"],
                      "handoff": args.handoff, "billing": args.billing}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
