#!/usr/bin/env python3
"""Lease release benchmark: how long the every-minute job takes for N expired leases.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smsportal .venv/bin/python bench/leases.py -n 10000
    DATABASE_URL=… CELERY_BROKER_URL=redis://127.0.0.1:6379/15 .venv/bin/python bench/leases.py -n 10000 --webhook-endpoint

Works on a throw-away test database (test_<name>, created and dropped here), never on the data of
DATABASE_URL itself. Prints one JSON line with the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smsportal.test_settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000, help="expired leases to release")
    parser.add_argument("--webhook-endpoint", action="store_true",
                        help="the tenant has an endpoint subscribed to number.released: one delivery (and one "
                             "task published to CELERY_BROKER_URL) per lease; use a throw-away broker")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        print(json.dumps(run(args.n, webhook_endpoint=args.webhook_endpoint)))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(n: int, *, webhook_endpoint: bool = False) -> dict:
    from numbers import services
    from numbers.models import NumberEvent, NumberLease, NumberStatus, PhoneNumber

    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Tenant
    from smsportal.events import signing
    from smsportal.events.models import WebhookDelivery, WebhookEndpoint

    tenant = Tenant.objects.create(slug="bench", name="Bench")
    if webhook_endpoint:
        # unscoped: a benchmark builds and counts rows of a throw-away database
        WebhookEndpoint.unscoped.create(tenant=tenant, url="http://127.0.0.1:9/hook", events=["number.released"],
                                        **signing.secret_fields(signing.secret_generate()))
    now = timezone.now()
    start = time.perf_counter()
    numbers = PhoneNumber.objects.bulk_create(
        PhoneNumber(number=f"+1999{i:07d}", country="US", type="mobile", capabilities=["sms"],
                    status=NumberStatus.LEASED, holder=tenant) for i in range(n))
    NumberLease.unscoped.bulk_create(
        NumberLease(tenant=tenant, number=number, started_at=now - timedelta(minutes=16),
                    expires_at=now - timedelta(minutes=1)) for number in numbers)
    setup_seconds = time.perf_counter() - start

    start = time.perf_counter()
    counts = services.leases_release_expired(now=now)
    release_seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = services.leases_release_expired(now=now)
    idle_seconds = time.perf_counter() - start
    assert counts["released"] == n and again["released"] == 0, (counts, again)
    assert NumberEvent.unscoped.filter(kind="released").count() == n
    assert PhoneNumber.objects.filter(status=NumberStatus.QUARANTINED).count() == n
    deliveries = WebhookDelivery.unscoped.filter(event_type="number.released").count()
    assert deliveries == (n if webhook_endpoint else 0), deliveries
    return {"database": connection.vendor, "expired_leases": n, "released": counts["released"],
            "webhook_deliveries": deliveries,
            "broker": settings.CELERY_BROKER_URL.split("://", 1)[0] if webhook_endpoint else None,
            "release_seconds": round(release_seconds, 2), "per_lease_ms": round(1000 * release_seconds / n, 3),
            "second_run_seconds": round(idle_seconds, 3), "setup_seconds": round(setup_seconds, 2),
            "batch": services.SWEEP_BATCH}


if __name__ == "__main__":
    main()
