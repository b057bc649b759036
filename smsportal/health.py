"""GET /healthz: 200 when the database and the broker answer, 503 naming what is down."""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("smsportal.health")


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker() -> None:
    from smsportal.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)


def check_cache() -> None:
    cache.set("healthz", "1", timeout=5)
    if cache.get("healthz") != "1":
        raise RuntimeError("cache did not return what was written")


def _checks() -> dict:
    checks = {"database": check_database, "broker": check_broker}
    if settings.REDIS_URL:
        checks["cache"] = check_cache
    return checks


@never_cache
@require_GET
def healthz(request):
    results, down = {}, []
    for name, check in _checks().items():
        started = time.monotonic()
        try:
            check()
            results[name] = {"status": "ok", "latency_ms": round((time.monotonic() - started) * 1000, 1)}
        except Exception as exc:  # any failure means "down"; the reason is logged, not shown
            logger.warning("health check %s failed: %s", name, exc.__class__.__name__)
            results[name] = {"status": "down"}
            down.append(name)
    body = {"status": "ok" if not down else "unavailable", "checks": results}
    if down:
        body["down"] = down
    return JsonResponse(body, status=503 if down else 200)
