#!/usr/bin/env python3
"""Single-send accept speed, as shipped, beside the floor (bench/floor.py) in the same run.

Makes a throw-away database beside --database-url, migrates it, creates a tenant and a test key,
starts Procfile.dev's `web` command exactly as shipped (DEBUG off, PostgreSQL, Redis), then loads
POST /v1/messages with the seed payload and an Idempotency-Key on every request at concurrency -c.
The floor runs right before, on the same database server, with the same client and concurrency.

    .venv/bin/python bench/accept.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --redis-url redis://127.0.0.1:6379/0 --broker-url redis://127.0.0.1:6379/15 -n 4000 -c 20

Limits are raised so they do not measure themselves, and the JSON says so: API_RATE_LIMIT=1000000/s
and the tenant's messages_per_second = 1,000,000. No worker runs: this measures accept only (the
messages stay queued, and the broker database given should be a throw-away one: it is flushed).
Prints one JSON line: {"floor": {...}, "ours": {...}, "ratio": ours / floor requests per second}.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import floor  # noqa: E402
from send import Api, load  # noqa: E402
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

RAISED_RATE = 1_000_000


def seed_payload(_: int) -> dict:
    """The README's example send, to a random fictional US number (never the simulator's 0001-0004), each with its
    own code as real OTPs have: the same code to the same number again would be answered by the OTP dedupe
    (docs/compliance.md), which is not the send this measures."""
    return {"to": f"+1415555{random.randint(1000, 9999):04d}", "from": "YourBrand",
            "text": f"Your OTP is {random.randint(0, 999_999):06d}", "callback_url": "https://yourapp.example/webhook",
            "message_type": "OTP", "region": "US"}


def idempotency_header(_: int) -> dict:
    return {"Idempotency-Key": str(uuid.uuid4())}


def bench_tenant(env: dict) -> str:
    """Migrate, make the bench tenant with its rate raised out of the way; its test key's secret."""
    if env.get("REDIS_URL"):
        counters_forget(env["REDIS_URL"])
    manage("migrate", "--noinput", env=env)
    manage("create_tenant", "bench", "--name", "Bench Ltd", "--owner-email", "bench@example.com", env=env)
    manage("shell", "-c", f"from accounts.models import Tenant; "
                          f"Tenant.objects.filter(slug='bench').update(messages_per_second={RAISED_RATE})", env=env)
    # The seed payload's "YourBrand" to a US number goes from a shared US number (sender substitution, as seed_demo
    # provides one: docs/compliance.md "Sender IDs"); without one every send would be 422 sender_not_supported.
    manage("shell", "-c", "from numbers.inventory import demo_numbers; "
                          "from numbers.services import number_shared_sender_set, phone_number_upsert; "
                          "number = next(demo_numbers('US', 'mobile', 1, start=900)); "
                          "row, _ = phone_number_upsert(number=number, country='US', type='mobile', capabilities=['sms'], "
                          "carrier='simulator', monthly_cost=0, monthly_price=0); "
                          "number_shared_sender_set(number=row, shared_sender=True)", env=env)
    return manage("create_api_key", "bench", "--name", "bench", "--mode", "test", env=env).strip().splitlines()[-1]


@contextlib.contextmanager
def served(env: dict, workers: int) -> Iterator[tuple[int, list[str]]]:
    """Procfile.dev's `web` command as shipped, on a free port: (port, argv) while it runs."""
    port = free_port()
    argv = _with_workers(procfile_command("web", WEB_PORT=str(port)), workers)
    server = subprocess.Popen(argv, env=env, cwd=HERE.parent, stdout=subprocess.DEVNULL)  # noqa: S603
    try:
        wait_listening(port, server)
        yield port, argv
    finally:
        stopped(server)


def single_sends(port: int, key: str, *, count: int, concurrency: int) -> dict:
    """The single-send load (after a warm-up of up to 200): figures without the answers."""
    api = Api(f"http://127.0.0.1:{port}", key)
    load(api, "/v1/messages", seed_payload, count=min(200, count), concurrency=concurrency,
         headers_for=idempotency_header)  # warm up
    figures = load(api, "/v1/messages", seed_payload, count=count, concurrency=concurrency,
                   headers_for=idempotency_header)
    figures.pop("answers")
    return figures


def ours(*, database_url: str, redis_url: str, broker_url: str, count: int, concurrency: int, workers: int,
         billing: bool = False) -> dict:
    env = server_env(database_url, redis_url, broker_url, **billing_env(billing))
    key = bench_tenant(env)
    if billing:
        key = bench_billing(env)
    with served(env, workers) as (port, argv):
        figures = single_sends(port, key, count=count, concurrency=concurrency)
    what = ("live key, billing on (rated, held on the balance)" if billing else "test key")
    return {"what": f"POST /v1/messages, seed payload, {what}, Idempotency-Key on each", "server": " ".join(argv),
            **figures}


def _with_workers(argv: list[str], workers: int) -> list[str]:
    for flag in ("--workers", "-w"):
        if flag in argv:
            argv = list(argv)
            argv[argv.index(flag) + 1] = str(workers)
            return argv
    return [*argv, "--workers", str(workers)]


def flush(redis_url: str) -> None:
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def counters_forget(redis_url: str) -> None:
    """Forget earlier runs' rate-limit buckets, Idempotency-Key markers, fraud windows and OTP dedupe markers: each
    run's throw-away database makes the same tenant ids again, which would meet the last run's counts."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for pattern in ("*:ratelimit:*", "*:firstuse:*", "*:fraud:*", "*:otpdedupe:*"):
        for key in client.scan_iter(match=pattern, count=1000):
            client.delete(key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="cache and rate limits")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("-n", "--count", type=int, default=4000)
    parser.add_argument("-c", "--concurrency", type=int, default=20)
    parser.add_argument("-w", "--workers", type=int, default=4, help="web processes, for ours and the floor alike")
    parser.add_argument("--billing", action="store_true", help="billing on: prices, a balance, a live key (the hold)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    with throwaway_database(args.database_url, "bench_accept") as database_url:
        floor_figures = floor.run(database_url=database_url, count=args.count, concurrency=args.concurrency,
                                  workers=args.workers)
        try:
            our_figures = ours(database_url=database_url, redis_url=args.redis_url, broker_url=args.broker_url,
                               count=args.count, concurrency=args.concurrency, workers=args.workers,
                               billing=args.billing)
        finally:
            flush(args.broker_url)
    ratio = our_figures["requests_per_second"] / floor_figures["requests_per_second"]
    print(json.dumps({"floor": floor_figures, "ours": our_figures, "ratio": round(ratio, 3),
                      "limits": {"API_RATE_LIMIT": f"{RAISED_RATE}/s", "messages_per_second": RAISED_RATE}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
