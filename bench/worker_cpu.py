#!/usr/bin/env python3
"""CPU per message of the worker's stages, in-process: dispatch, receipts and the webhook POSTs.

On a throw-away database beside --database-url (PostgreSQL, Redis broker as shipped): accepts
`-n` messages in batches of 1,000 (test key's tenant, an endpoint subscribed to `message.delivered`
pointing at a loopback receiver), then runs each stage over batches of 250 (the dispatch task's size)
as the worker's tasks would, and reads the process's CPU (time.process_time) and the PostgreSQL
backend's CPU (/proc, the server on this machine) around each stage. The receipt tasks the
simulator publishes are also captured and applied in-process (their countdown is not waited for).
Prints one JSON line: per stage, ms of Python CPU and of PostgreSQL CPU a message.

    .venv/bin/python bench/worker_cpu.py --database-url postgres://postgres@127.0.0.1:5432/smsportal \\
        --broker-url redis://127.0.0.1:6379/15 --redis-url redis://127.0.0.1:6379/14 -n 5000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing import Process
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from accept import bench_tenant, flush  # noqa: E402
from batch_cpu import cpu_seconds  # noqa: E402
from stack import server_env, throwaway_database  # noqa: E402

BATCH = 250


class Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


PROFILE: list[str] = []  # --profile STAGE: cProfile's top entries of that stage to standard error


def measure(name: str, work, figures: dict, count: int, backend: int) -> None:
    cpu, pg = time.process_time(), cpu_seconds(backend)
    if name in PROFILE:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(work)
        stats = pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime")
        stats.print_stats(25)
        stats.print_callers("re.Pattern|expand_template")
    else:
        work()
    figures[name] = {"python_ms": round((time.process_time() - cpu) * 1000 / count, 3),
                     "postgresql_ms": round((cpu_seconds(backend) - pg) * 1000 / count, 3)}


def stages(count: int, receiver_url: str, *, webhook_threads: int | None) -> dict:
    import django

    django.setup()
    if webhook_threads:
        from smsportal.events import delivery

        delivery.DELIVERY_CONCURRENCY = webhook_threads
    from django.db import connection

    from accounts.models import Tenant
    from accounts.services import SYSTEM
    from messaging import accept, dispatch, pipeline
    from messaging.models import Message
    from messaging.tasks import simulator_receipts_task
    from smsportal.events import services as events
    from smsportal.events.delivery import webhook_deliveries_attempt
    from smsportal.events.models import WebhookDelivery
    from smsportal.tenancy import tenant_context

    tenant = Tenant.objects.get(slug="bench")
    with tenant_context(tenant):
        events.webhook_endpoint_create(tenant=tenant, url=receiver_url, actor=SYSTEM, events=["message.delivered"])
    ids: list[int] = []
    for start in range(0, count, 1000):
        items = [{"to": f"+1415{5000000 + i:07d}"[:-4] + f"{7000 + i % 2000}", "sender": "Acme",
                  "text": "Your code is 123456"} for i in range(start, min(count, start + 1000))]
        with tenant_context(tenant):
            drafts = accept.messages_accept(tenant=tenant, api_key=None, items=items, mode="test")
        ids += [d.id for d in drafts if d.id is not None]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    receipts: list = []
    publish = simulator_receipts_task.apply_async

    def captured(args, **kwargs):
        receipts.append(list(args[0]))
        return publish(args, **kwargs)

    simulator_receipts_task.apply_async = captured
    figures: dict = {"messages": len(ids)}
    batches = dispatch.dispatch_batches(ids)
    measure("dispatch", lambda: [dispatch.messages_dispatch(message_ids=b) for b in batches], figures, len(ids), backend)
    measure("receipts", lambda: [pipeline.receipts_apply(carrier="simulator", receipts=[
        pipeline.Receipt(carrier_message_id=c, status=s, reference=r) for c, s, r in batch]) for batch in receipts],
        figures, len(ids), backend)
    deliveries = list(WebhookDelivery.unscoped.order_by("pk").values_list("pk", flat=True))  # unscoped: a bench
    measure("webhooks", lambda: [webhook_deliveries_attempt(delivery_ids=deliveries[i:i + 100])
                                 for i in range(0, len(deliveries), 100)], figures, len(deliveries), backend)
    # unscoped: a bench over its own database
    figures["statuses"] = dict(Message.unscoped.values_list("status").annotate(n=django.db.models.Count("pk")))
    figures["deliveries"] = len(deliveries)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="cache and rate limits")
    parser.add_argument("--broker-url", default="redis://127.0.0.1:6379/15", help="a throw-away Redis db (flushed)")
    parser.add_argument("-n", "--count", type=int, default=5000)
    parser.add_argument("--webhook-threads", type=int, help="DELIVERY_CONCURRENCY for this run (default: as shipped)")
    parser.add_argument("--profile", action="append", default=[], help="a stage to profile (slower: not a figure)")
    args = parser.parse_args(argv)
    PROFILE.extend(args.profile)
    if not args.database_url:
        parser.error("give --database-url or set DATABASE_URL")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    receiver = Process(target=server.serve_forever, daemon=True)  # its own process: its CPU is not counted
    receiver.start()
    load_before = os.getloadavg()[0]
    with throwaway_database(args.database_url, "bench_worker_cpu") as database_url:
        env = server_env(database_url, args.redis_url, args.broker_url)
        bench_tenant(env)
        os.environ.update({k: v for k, v in env.items() if k != "PATH"}, DJANGO_SETTINGS_MODULE="smsportal.settings")
        try:
            figures = stages(args.count, f"http://127.0.0.1:{server.server_address[1]}/hook",
                             webhook_threads=args.webhook_threads)
        finally:
            from django.db import connections

            connections.close_all()
            flush(args.broker_url)
            receiver.terminate()
    figures["load"] = f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}"
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
