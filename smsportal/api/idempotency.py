"""Idempotency keys for POST /v1 (Stripe / Brandur style): claim, complete, replay, purge.

A POST with `Idempotency-Key` is scoped to (tenant, api-key mode, key), so a retry after key
rotation still replays. `ApiView.dispatch` (smsportal/api/views.py) drives the phases:

All in the request's one durable transaction (ApiView):
1. `idempotency_claim` (one INSERT ... ON CONFLICT DO NOTHING): an `in_progress` record; the
   UNIQUE(tenant, mode, key) constraint decides who runs, and a concurrent duplicate's INSERT waits
   on it until the winner commits. A loser reads the winner's row: another fingerprint -> 422;
   completed -> the stored response; in progress (committed by an older process) -> 409 +
   Retry-After, unless older than IDEMPOTENCY_RECOVERY_SECONDS, then a conditional UPDATE on the
   old `locked_at` takes it over (one taker wins).
2. The view runs; `idempotency_complete` stores the rendered answer, so side effects, claim and
   answer commit together. A 5xx, a 429 or an exception rolls everything back, claim included: a
   rolled-back 500 is not cached.

Completing is conditional on the claim's `locked_at`, so a request whose stale claim was taken
over cannot commit its work (it answers 409 and rolls back).

The plain single send (messaging/api/send.py) takes a shorter way to the same rows: it knows its
answer before it writes, so its one statement inserts the record already completed, with the
answer, beside the message (`AnsweredClaim`, `answered_claim_cte`). A key that is taken makes that
statement write nothing; the request is then served the long way above, which replays.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.response import Response

from accounts.models import ApiKey, IdempotencyRecord
from smsportal.errors import Conflict, DomainError, Unprocessable

logger = logging.getLogger("smsportal.api.idempotency")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# 1 to 255 printable ASCII characters (space to tilde): no control characters, nothing non-ASCII.
KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
# 429 means "try again later": caching it would make the retry pointless.
NOT_STORED = frozenset({429})
CLAIM_ATTEMPTS = 3


class InvalidIdempotencyKey(DomainError):
    code = "invalid_idempotency_key"
    message = "The Idempotency-Key header must be 1 to 255 printable ASCII characters."


class IdempotencyKeyReused(Unprocessable):
    code = "idempotency_key_reused"
    message = ("This Idempotency-Key was already used for a different request (another body or endpoint). "
               "Use a new key for a new request.")


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"
    message = "A request with this Idempotency-Key is still being processed. Retry in a moment."
    retry_after = 1


class KeyTaken(Exception):  # noqa: N818 (a signal between two layers, not an error anyone sees)
    """The answered claim found its key taken: the statement wrote nothing. Serve the request the long way
    (idempotency_claim): it replays the stored answer, or answers 409 / 422."""


@dataclass(frozen=True)
class AnsweredClaim:
    """A claim written already completed, with its answer, by the statement that does the request's work.

    `render` makes the answer's bytes from what the work knows before it writes (the single send: its
    draft, with id, status and times). Written by `answered_claim_cte`; nothing is written when the key is
    taken (KeyTaken)."""

    tenant_id: int
    mode: str
    key: str
    fingerprint: str
    status: int
    render: Callable[[Any], bytes]
    content_type: str = "application/json"


def answered_claim_insert_sql() -> str:
    """INSERT the completed record, ON CONFLICT DO NOTHING, RETURNING id: no row when the key is taken.
    Its parameters, in order: answered_claim_params (on PostgreSQL each cast: it also runs bound on the server)."""
    table = IdempotencyRecord._meta.db_table
    kinds = ("bigint", "text", "text", "text", "timestamptz", "integer", "text", "bytea", "timestamptz")
    typed = connection.vendor == "postgresql"
    values = [f"%s::{kind}" if typed else "%s" for kind in kinds]
    values.insert(4, f"'{IdempotencyRecord.State.COMPLETED}'")
    return (f"INSERT INTO {table} (tenant_id, mode, key, fingerprint, state, locked_at, "  # noqa: S608
            f"response_status, response_content_type, response_body, created_at) VALUES ({', '.join(values)}) "
            "ON CONFLICT (tenant_id, mode, key) DO NOTHING RETURNING id")


def answered_claim_cte(name: str) -> str:
    """answered_claim_insert_sql as the data-modifying CTE `name` of a larger statement (PostgreSQL)."""
    return f"{name} AS ({answered_claim_insert_sql()})"


def answered_claim_params(claim: AnsweredClaim, *, body: bytes, now: datetime) -> list:
    moment = IdempotencyRecord._meta.get_field("locked_at").get_db_prep_value(now, connection)
    return [claim.tenant_id, claim.mode, claim.key, claim.fingerprint, moment, claim.status, claim.content_type,
            body, moment]


@dataclass(frozen=True)
class Claim:
    """The right to run a request: the record, and the `locked_at` that proves the claim is ours."""

    record_pk: int
    locked_at: datetime


# --- the request side ---------------------------------------------------------------------------


def idempotency_key_from(request) -> str | None:
    """The request's Idempotency-Key, None without one; InvalidIdempotencyKey when malformed."""
    key = request.META.get("HTTP_IDEMPOTENCY_KEY")
    if key is None:
        return None
    if not KEY_RE.fullmatch(key):
        raise InvalidIdempotencyKey()
    return key


def request_fingerprint(*, method: str, route: str, kwargs: dict, query: dict, body) -> str:
    """SHA-256 over the method, route template, path parameters, query and canonical JSON body.

    The path parameters count because a route template alone makes POST /v1/x/A/cancel and
    POST /v1/x/B/cancel look like one request.
    """
    canonical = json.dumps(
        {"method": method, "route": route, "kwargs": kwargs, "query": query, "body": body},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def fingerprint_of(request) -> str:
    """The fingerprint of a DRF request (parses the body: a ParseError surfaces here, before any claim)."""
    match = request.resolver_match
    body = request.data
    if hasattr(body, "lists"):  # a QueryDict (form data): every value, in order
        body = {k: v for k, v in body.lists()}
    return request_fingerprint(
        method=request.method,
        route=match.route if match else request.path,
        kwargs=dict(match.kwargs) if match else {},
        query={k: v for k, v in request.query_params.lists()},
        body=body,
    )


# --- the record ---------------------------------------------------------------------------------


def idempotency_claim(*, api_key: ApiKey, key: str, fingerprint: str) -> Claim | HttpResponse:
    """Claim (tenant, mode, key) for this request, or return the stored response to replay.

    Raises IdempotencyKeyReused (other fingerprint) or IdempotencyKeyInUse (a fresh claim committed
    by an older process is held). Call it at the start of the request's transaction (ApiView does):
    the claim commits with the request's side effects and its answer; until then a concurrent
    INSERT of the same key waits on the unique index, and then finds the answer to replay.
    """
    scope = {"tenant": api_key.tenant, "mode": api_key.mode, "key": key}
    for _ in range(CLAIM_ATTEMPTS):
        now = timezone.now()
        record_pk = _record_insert(tenant_id=api_key.tenant_id, mode=api_key.mode, key=key,
                                   fingerprint=fingerprint, now=now)
        if record_pk is not None:
            return Claim(record_pk=record_pk, locked_at=now)
        # the key is taken: look at who holds it
        existing = IdempotencyRecord.objects.filter(**scope).first()
        if existing is None:
            continue  # released between our INSERT and our read: try again
        if existing.fingerprint != fingerprint:
            raise IdempotencyKeyReused()
        if existing.state == IdempotencyRecord.State.COMPLETED:
            return _replay(existing)
        if existing.locked_at > now - timedelta(seconds=settings.IDEMPOTENCY_RECOVERY_SECONDS):
            raise IdempotencyKeyInUse()
        claim = _take_over(existing, now=now)
        if claim is not None:
            return claim
    raise IdempotencyKeyInUse()


def _record_insert(*, tenant_id: int, mode: str, key: str, fingerprint: str, now: datetime) -> int | None:
    """INSERT the in-progress record; its id, or None when (tenant, mode, key) is taken.

    One raw statement (no ORM compilation on every idempotent POST), in the caller's transaction."""
    table = IdempotencyRecord._meta.db_table
    moment = IdempotencyRecord._meta.get_field("locked_at").get_db_prep_value(now, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, mode, key, fingerprint, state, locked_at, response_content_type, "  # noqa: S608
            "created_at) VALUES (%s, %s, %s, %s, %s, %s, '', %s) ON CONFLICT (tenant_id, mode, key) DO NOTHING "
            "RETURNING id",
            [tenant_id, mode, key, fingerprint, IdempotencyRecord.State.IN_PROGRESS, moment, moment])
        row = cursor.fetchone()
    return row[0] if row else None


def _take_over(record: IdempotencyRecord, *, now: datetime) -> Claim | None:
    # The holder stopped renewing its claim (it crashed or hung). Only one taker can match the old
    # locked_at; the others, and the old holder's own completion, then find it changed.
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk, state=IdempotencyRecord.State.IN_PROGRESS, locked_at=record.locked_at
    ).update(locked_at=now)
    if not taken:
        return None
    logger.warning("idempotency: took over a stale claim (tenant %s, mode %s, claimed at %s)",
                   record.tenant_id, record.mode, record.locked_at.isoformat())
    return Claim(record_pk=record.pk, locked_at=now)


def idempotency_complete(*, claim: Claim, response: HttpResponse, redact: tuple[str, ...] = ()) -> bool:
    """Store the rendered response on the claimed record; call it inside the view's transaction.

    Top-level fields named in `redact` are stored as null (secrets are never kept at rest). Returns
    False when the claim was taken over meanwhile: the caller must roll back.
    """
    # One plain UPDATE by the record's id (ours, from the claim): on every idempotent POST, so not
    # compiled by the ORM each time.
    table = IdempotencyRecord._meta.db_table
    locked_at = IdempotencyRecord._meta.get_field("locked_at").get_db_prep_value(claim.locked_at, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET state = %s, response_status = %s, response_content_type = %s, "  # noqa: S608
            "response_body = %s WHERE id = %s AND state = %s AND locked_at = %s",
            [IdempotencyRecord.State.COMPLETED, response.status_code, response.get("Content-Type", ""),
             _stored_body(response, redact), claim.record_pk, IdempotencyRecord.State.IN_PROGRESS, locked_at])
        return cursor.rowcount == 1


def storable(response: HttpResponse) -> bool:
    """Every answer below 500 is kept, 4xx included (the answer to a key is fixed once given), except 429."""
    return response.status_code < 500 and response.status_code not in NOT_STORED


def _stored_body(response: HttpResponse, redact: tuple[str, ...]) -> bytes:
    data = getattr(response, "data", None)
    hidden = [name for name in redact if isinstance(data, dict) and name in data]
    if not hidden or not isinstance(response, Response):
        return bytes(response.content)
    redacted = {**data, **dict.fromkeys(hidden)}
    return response.accepted_renderer.render(redacted, response.accepted_media_type, response.renderer_context)


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(bytes(record.response_body), status=record.response_status,
                            content_type=record.response_content_type or "application/json")
    response[REPLAYED_HEADER] = "true"
    return response


# --- retention ----------------------------------------------------------------------------------


def idempotency_records_purge(*, batch_size: int = 1000, max_batches: int = 100) -> int:
    """Delete records older than IDEMPOTENCY_TTL_HOURS, in bounded batches; returns how many.

    A record still claimed by a live request is kept until its claim goes stale. Two purges may run
    at once: on PostgreSQL each batch locks its rows with SKIP LOCKED, so they never wait on each
    other. Whatever is left over after `max_batches` goes on the next run.
    """
    now = timezone.now()
    # unscoped: the hourly purge, over every tenant
    old = IdempotencyRecord.unscoped.filter(
        created_at__lt=now - timedelta(hours=settings.IDEMPOTENCY_TTL_HOURS),
        locked_at__lt=now - timedelta(seconds=settings.IDEMPOTENCY_RECOVERY_SECONDS),
    )
    deleted = 0
    for _ in range(max_batches):
        with transaction.atomic():
            batch = list(old.select_for_update(skip_locked=True).order_by("created_at")
                         .values_list("pk", flat=True)[:batch_size])
            IdempotencyRecord.unscoped.filter(pk__in=batch).delete()
        deleted += len(batch)
        if len(batch) < batch_size:
            break
    return deleted
