"""Celery entry points of the send pipeline: thin wrappers around messaging.pipeline."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from messaging import dispatch, pipeline
from messaging.connector import claims, mo
from messaging.routing import decks, dispatching, quality


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def message_dispatch_task(message_id: int) -> None:
    """One attempt; the pipeline hands a retry over itself (a countdown, or the sweeper when due). With
    LIVE_CARRIER = "routes" through the batch path, where routing, failover and attempts live."""
    if settings.LIVE_CARRIER == "routes":
        dispatch.messages_dispatch(message_ids=[message_id])
    else:
        pipeline.message_dispatch(message_id=message_id)


# A batch task that lost a deadlock (or its connection) rolled back whole: running it again is safe
# (claims are conditional, receipts idempotent), and sooner than the sweeper would.
RETRIED = {"autoretry_for": (OperationalError,), "retry_backoff": 1, "retry_backoff_max": 8, "max_retries": 5}


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True, **RETRIED)
def messages_dispatch_task(message_ids: list[int]) -> None:
    """Messages of one accept (messaging/handoff.py), dispatched as one batch (messaging/dispatch.py)."""
    dispatch.messages_dispatch(message_ids=message_ids)


@shared_task(acks_late=True, ignore_result=True)
def simulator_receipt_task(carrier_message_id: str, status: str, reference: str) -> None:
    pipeline.receipt_apply(carrier="simulator", carrier_message_id=carrier_message_id, status=status,
                           reference=reference)


@shared_task(acks_late=True, ignore_result=True, **RETRIED)
def simulator_receipts_task(receipts: list[tuple[str, str, str]], carrier: str = "simulator") -> None:
    """The simulator's receipts for one batch of submissions: (carrier id, status, reference) each; `carrier` is
    the name it submitted under (a local carrier of the routing table, or "simulator")."""
    pipeline.receipts_apply(carrier=carrier, receipts=[
        pipeline.Receipt(carrier_message_id=cid, status=status, reference=reference) for cid, status, reference in receipts])


@shared_task(ignore_result=True)
def messages_sweep_task() -> dict[str, int]:
    return pipeline.messages_sweep()


@shared_task(ignore_result=True)
def route_quality_rollup_task() -> int:
    """Every minute (beat): route quality over 15 min and 24 h, circuits of routes whose rate collapsed opened,
    and open circuits past their cool-down stored half-open."""
    written = quality.route_quality_rollup()
    dispatching.circuits_half_open()
    return written


@shared_task(ignore_result=True)
def route_costs_apply_task() -> int:
    """Every minute (beat): the cost in force of each route, so a rate deck dated in the future takes over."""
    return decks.route_costs_apply()


@shared_task(ignore_result=True)
def connector_claims_sweep_task() -> dict[str, int]:
    """Every 10 s (beat): fail over attempts no connector took; settle the claims of dead connectors; drop the
    stored parts of long MOs that never completed (mo.mo_parts_sweep, each logged)."""
    counts = claims.connector_claims_sweep()
    counts["mo_dropped"] = mo.mo_parts_sweep()
    return counts
