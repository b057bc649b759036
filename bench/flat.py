#!/usr/bin/env python3
"""Does the single-send rate stay flat as the messages table grows? Empty table, then --rows rows.

On a throw-away database beside --database-url: the bench tenant and key (bench/accept.py), the
single-send load on the empty table, then --rows messages of that tenant written by one
`INSERT ... SELECT FROM generate_series` (messages only; the events table stays small),
ANALYZE, and the same load again, each time on a freshly started server as shipped.

    .venv/bin/python bench/flat.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/0 --broker-url redis://127.0.0.1:6379/15 -n 3000 -c 20

Prints one JSON line: {"empty": {...}, "full": {...}, "rows": N, "fill_seconds": s, "ratio": full / empty}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from accept import bench_tenant, flush, served, single_sends  # noqa: E402
from stack import server_env, sql, throwaway_database  # noqa: E402

# Spread like real traffic: a status mix, recipients over a million numbers, a minute apart going back.
FILL = """
INSERT INTO messaging_message (tenant_id, public_id, mode, "to", sender, text, template_ref, message_type, status,
    sequence, encoding, segments, characters, smart_encoding, client_reference, metadata, callback_url, created_at,
    expires_at, attempts, status_changed_at, carrier, carrier_message_id, error_code, error_message)
SELECT t.id, 'msg_fill' || g, 'test', '+1415' || lpad((g % 1000000)::text, 7, '0'), 'YourBrand',
    'Your OTP is 123456', '', 'otp', (ARRAY['delivered','delivered','delivered','sent','failed'])[1 + g % 5], 1,
    'GSM-7', 1, 18, true, '', '{}', '', now() - g * interval '1 second', now() - g * interval '1 second'
    + interval '10 minutes', 1, now() - g * interval '1 second', 'simulator', 'sim-fill-' || g, '', ''
FROM generate_series(1, %(rows)s) AS g, (SELECT id FROM accounts_tenant WHERE slug = 'bench') AS t
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="cache and rate limits")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("-n", "--count", type=int, default=3000)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("-w", "--workers", type=int, default=4, help="web processes")
    parser.add_argument("--rows", type=int, default=10_000_000, help="messages to fill the table with")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    out: dict = {"rows": args.rows}
    with throwaway_database(args.database_url, "bench_flat") as database_url:
        env = server_env(database_url, args.redis_url, args.broker_url)
        key = bench_tenant(env)
        try:
            with served(env, args.workers) as (port, argv_):
                out["empty"] = single_sends(port, key, count=args.count, concurrency=args.concurrency)
            started = time.perf_counter()
            sql(database_url, FILL.replace("%(rows)s", str(int(args.rows))))
            sql(database_url, "ANALYZE")
            out["fill_seconds"] = round(time.perf_counter() - started, 1)
            with served(env, args.workers) as (port, argv_):
                out["full"] = single_sends(port, key, count=args.count, concurrency=args.concurrency)
            out["server"] = " ".join(argv_)
        finally:
            flush(args.broker_url)
    out["ratio"] = round(out["full"]["requests_per_second"] / out["empty"]["requests_per_second"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
