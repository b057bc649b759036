#!/usr/bin/env python3
"""CPU a batch of 1,000 costs on the served path: a figure the box's load does not move.

Serves Procfile.dev's `web` (as bench/batch.py, on a throw-away database beside --database-url),
posts `-n` batches of 1,000 at concurrency `-c`, and reads from /proc the user+system CPU of the
gunicorn processes and of the PostgreSQL backends of that database around the run (Linux, with the
database server on this machine). Prints one JSON line with the milliseconds per batch.

    .venv/bin/python bench/batch_cpu.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/0 --broker-url redis://127.0.0.1:6379/15 -n 20 -c 2 [--callback-url]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accept import bench_tenant, flush, served  # noqa: E402
from batch import batches_load  # noqa: E402
from stack import server_env, throwaway_database  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # gone since it was listed
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def gunicorn_pids(port: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if "gunicorn" in command and f":{port}" in command:
            pids.append(int(entry.name))
    pids += [int(c.name) for pid in list(pids) for c in Path("/proc").iterdir()
             if c.name.isdigit() and _parent(c) == pid]
    return sorted(set(pids))


def _parent(entry: Path) -> int | None:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def backend_pids(database_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return [row[0] for row in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                               "AND pid <> pg_backend_pid()")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("-n", "--batches", type=int, default=20)
    parser.add_argument("-c", "--concurrency", type=int, default=2)
    parser.add_argument("-w", "--workers", type=int, default=2)
    parser.add_argument("--callback-url", action="store_true", help="keep the seed payload's callback_url")
    args = parser.parse_args(argv)
    with throwaway_database(args.database_url, "bench_batch_cpu") as database_url:
        env = server_env(database_url, args.redis_url, args.broker_url)
        key = bench_tenant(env)
        try:
            with served(env, args.workers) as (port, _argv):
                batches_load(port, key, batches=4, concurrency=args.concurrency, callback_url=args.callback_url)
                web, backends = gunicorn_pids(port), backend_pids(database_url)
                web_before, db_before = sum(map(cpu_seconds, web)), {pid: cpu_seconds(pid) for pid in backends}
                figures = batches_load(port, key, batches=args.batches, concurrency=args.concurrency,
                                       callback_url=args.callback_url)
                web_cpu = sum(map(cpu_seconds, web)) - web_before
                db_cpu = sum(cpu_seconds(pid) - db_before.get(pid, 0.0) for pid in backend_pids(database_url))
        finally:
            flush(args.broker_url)
    per = 1000 / args.batches
    print(json.dumps({"callback_url": args.callback_url, "batches": args.batches, "concurrency": args.concurrency,
                      "web_cpu_ms_per_batch": round(web_cpu * per), "postgres_cpu_ms_per_batch": round(db_cpu * per),
                      "messages_per_second_at_this_cost_on_2_cores": round(2 * 1000 / (web_cpu + db_cpu) * args.batches),
                      "measured_messages_per_second": figures["messages_per_second"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
