"""Live route quality: rolled up from the attempts by beat (every minute), read by routing (lcr.py).

Per route and window (the last 15 minutes, the last 24 hours), over the attempts started in the window:
submits (every attempt that reached the carrier or failed at route level), delivered and failed (final
receipts), errors (route-level failures and refusals), and the p50/p95 latency from submit to the final
delivered receipt. A window's delivery rate is delivered / (delivered + failed): an attempt still waiting
for its receipt counts in neither.

The same pass opens a route's circuit when its delivery rate collapses against its own baseline: a
15-minute rate more than ROUTING_COLLAPSE_DROP (0.30) below the route's 24-hour rate, both over at least
ROUTING_MIN_SAMPLE finished messages.
"""
from __future__ import annotations

from datetime import timedelta
from statistics import quantiles

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from messaging.routing.dispatching import circuit_move
from messaging.routing.models import MessageAttempt, RouteCircuit, RouteQuality

Outcome = MessageAttempt.Outcome
WINDOWS = {RouteQuality.Window.QUARTER_HOUR: timedelta(minutes=15), RouteQuality.Window.DAY: timedelta(hours=24)}


def route_quality_rollup(*, now=None) -> int:
    """Recompute every route's figures for both windows; returns the rows written."""
    now = now or timezone.now()
    written = 0
    for window, span in WINDOWS.items():
        since = now - span
        # unscoped: route quality is over every tenant's attempts on a route
        attempts = MessageAttempt.unscoped.filter(started_at__gte=since, route__isnull=False).exclude(
            outcome=Outcome.PENDING)
        counts = attempts.values("route_id").annotate(
            submits=Count("id"), delivered=Count("id", filter=Q(outcome=Outcome.DELIVERED)),
            failed=Count("id", filter=Q(outcome=Outcome.FAILED)),
            errors=Count("id", filter=Q(outcome__in=[Outcome.ROUTE_ERROR, Outcome.REJECTED])))
        latencies = _latencies(since)
        for row in counts:
            p50, p95 = latencies.get(row["route_id"], (None, None))
            RouteQuality.objects.update_or_create(route_id=row["route_id"], window=window, defaults={
                "submits": row["submits"], "delivered": row["delivered"], "failed": row["failed"],
                "errors": row["errors"], "latency_p50_ms": p50, "latency_p95_ms": p95, "computed_at": now})
            written += 1
        # a route with no attempt in the window has no figures for it
        RouteQuality.objects.filter(window=window).exclude(route_id__in=[r["route_id"] for r in counts]).delete()
    _collapses_open()
    return written


def _latencies(since) -> dict[int, tuple[int | None, int | None]]:
    """p50 and p95 milliseconds from submit to the delivered receipt, per route."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # unscoped (raw SQL): route quality over every tenant's attempts
            cursor.execute(
                "SELECT route_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), "
                "percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) FROM ("
                "  SELECT route_id, EXTRACT(EPOCH FROM finished_at - submitted_at) * 1000 AS ms"
                "  FROM messaging_messageattempt WHERE started_at >= %s AND outcome = %s"
                "  AND submitted_at IS NOT NULL AND finished_at IS NOT NULL AND route_id IS NOT NULL) t "
                "GROUP BY route_id", [since, Outcome.DELIVERED])
            return {route_id: (round(p50), round(p95)) for route_id, p50, p95 in cursor.fetchall()}
    by_route: dict[int, list[float]] = {}
    # unscoped: as above (SQLite: the percentiles in Python)
    for route_id, submitted, finished in MessageAttempt.unscoped.filter(
            started_at__gte=since, outcome=Outcome.DELIVERED, submitted_at__isnull=False,
            finished_at__isnull=False).values_list("route_id", "submitted_at", "finished_at"):
        by_route.setdefault(route_id, []).append((finished - submitted).total_seconds() * 1000)
    return {route_id: _percentiles(values) for route_id, values in by_route.items()}


def _percentiles(values: list[float]) -> tuple[int, int]:
    if len(values) == 1:
        return round(values[0]), round(values[0])
    cuts = quantiles(values, n=100, method="inclusive")
    return round(cuts[49]), round(cuts[94])


def _collapses_open() -> None:
    figures = {(q.route_id, q.window): q for q in RouteQuality.objects.all()}
    for (route_id, window), recent in figures.items():
        baseline = figures.get((route_id, RouteQuality.Window.DAY))
        if window != RouteQuality.Window.QUARTER_HOUR or baseline is None:
            continue
        enough = min(recent.delivered + recent.failed, baseline.delivered + baseline.failed) >= settings.ROUTING_MIN_SAMPLE
        if not enough or recent.delivery_rate is None or baseline.delivery_rate is None:
            continue
        drop = baseline.delivery_rate - recent.delivery_rate
        if drop > settings.ROUTING_COLLAPSE_DROP:
            RouteCircuit.objects.get_or_create(route_id=route_id)
            with transaction.atomic():  # locked as circuit_record locks it: one of them changes it at a time
                circuit = RouteCircuit.objects.select_for_update().get(route_id=route_id)
                if circuit.state == RouteCircuit.State.CLOSED:
                    circuit_move(circuit, RouteCircuit.State.OPEN,
                                 f"delivery rate collapsed: {recent.delivery_rate:.0%} in 15 min against "
                                 f"{baseline.delivery_rate:.0%} over 24 h")
