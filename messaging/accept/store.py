"""Step 5 of accept: the messages, and what their `message.queued` webhooks need.

A single send (one message) is one INSERT ... SELECT whose data-modifying CTEs also write its
Idempotency-Key record (completed, with the answer) when it has one and, when the dispatcher hands over (MESSAGE_HANDOFF = "dispatcher"), its `message.queued` fan-out
row (expanded by the dispatcher: no publish in the request); otherwise its webhook deliveries are
recorded directly.
Under the dispatcher no row is stamped `enqueued_at` at insert: an empty stamp is what the
dispatcher claims.

No accept writes a MessageEvent: the message row is its own first event (the timeline shows
`accepted` from its created_at and status: selectors.message_timeline); every later status change
writes one (lifecycle.message_transition). A batch (two or more) writes **no row per message besides
the message itself**: its ids are drawn from the sequence in one statement and the rows go in with
COPY (PostgreSQL's bulk path, several times cheaper than an INSERT of the same rows); and its
`message.queued` webhooks are one fan-out row carrying the batch's ids
(smsportal/events/fanout.py), expanded into deliveries by the worker. docs/send-pipeline.md.
"""
from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone

from messaging.events import message_events_emit
from messaging.handoff import handoff_by_dispatcher
from messaging.models import Message, Status
from smsportal.api import idempotency
from smsportal.bulk import prepared_fetchone
from smsportal.events import fanout
from smsportal.ids import public_ids

if TYPE_CHECKING:
    from messaging.accept.steps import AcceptContext, Draft

# Per message (arrays, in this order) ...
_ROW_COLUMNS = (
    ("public_id", "text"), ("to", "text"), ("sender", "text"), ("pool_id", "bigint"), ("text", "text"),
    ("template_ref", "text"), ("message_type", "text"), ("status", "text"), ("encoding", "text"),
    ("segments", "integer"), ("characters", "integer"), ("smart_encoding", "boolean"),
    ("client_reference", "text"), ("metadata", "text"), ("callback_url", "text"),
    ("scheduled_at", "timestamptz"), ("expires_at", "timestamptz"), ("price", "numeric"), ("currency", "text"),
    ("billed", "boolean"), ("scheduled_reason", "text"), ("sender_substituted", "jsonb"),
)
# ... and the same for the whole request (one value each). Pipeline bookkeeping starts empty.
_REQUEST_COLUMNS = ("tenant_id", "api_key_id", "mode", "created_at", "status_changed_at")
_REQUEST_TYPES = ("bigint", "bigint", "text", "timestamptz", "timestamptz")
_EMPTY_COLUMNS = ("carrier", "carrier_message_id", "error_code", "error_message")
# JSON columns: the ORM paths (SQLite) give them as Python values, the statement and COPY as JSON text.
_JSON_COLUMNS = ("metadata", "sender_substituted")


@functools.cache
def _insert_sql(*, with_fanout: bool, with_claim: bool, hold_ctes: str | None = None, hold_outputs: str = "") -> str:
    """The single send's one statement: the message (values as scalars: no arrays to build for one row), with
    `with_fanout` its `message.queued` fan-out row (EventFanout), with `with_claim` its Idempotency-Key record,
    completed with the answer (smsportal/api/idempotency.py), and with `hold_ctes` its hold on the balance
    (billing.services.HoldStatement: the conditional UPDATE `h` and its ledger entry). Data-modifying CTEs: one
    round trip, no ORM model built. The message goes in only when the hold, or else the claim, returned a row,
    and the hold only after the claim: the key is locked before the balance row, as on the API's long path
    (idempotency_claim first), so the two cannot deadlock. It answers the message's id (NULL when not written)
    and whether the claim was written, then `hold_outputs` (the hold's own figures)."""
    message = Message._meta.db_table
    names = [name for name, _ in _ROW_COLUMNS]
    values = ", ".join("%s::jsonb" if name == "metadata" else f"%s::{kind}" for name, kind in _ROW_COLUMNS)
    columns = ", ".join(f'"{name}"' for name in (*_REQUEST_COLUMNS, "sequence", "attempts", *_EMPTY_COLUMNS, *names))
    request_values = ", ".join(f"%s::{kind}" for kind in _REQUEST_TYPES)
    empty = ", ".join(["''"] * len(_EMPTY_COLUMNS))
    claim = f"{idempotency.answered_claim_cte('c')}," if with_claim else ""
    hold = f"{hold_ctes}," if hold_ctes else ""
    gate = "h" if hold_ctes else "c" if with_claim else None
    gated = f" WHERE EXISTS (SELECT 1 FROM {gate})" if gate else ""  # noqa: S608 (a CTE name)
    claimed = "(SELECT count(*) FROM c)" if with_claim else "0"
    return f"""
        WITH {claim}{hold}
        m AS (
            INSERT INTO {message} ({columns})
            SELECT {request_values}, 1, 0, {empty}, {values}{gated}
            RETURNING id, tenant_id, status, created_at
        ){_FANOUT_CTE if with_fanout else ""}
        SELECT (SELECT id FROM m), {claimed}{", " + hold_outputs if hold_outputs else ""}
    """  # noqa: S608 (table and column names are constants, every value is a parameter)


_FANOUT_CTE = f""",
        f AS (
            INSERT INTO {fanout.FANOUT_TABLE} (tenant_id, event_type, items, created_at, deliveries)
            SELECT tenant_id, 'message.queued', jsonb_build_array(id), created_at, 0 FROM m
        )"""  # noqa: S608 (a constant table name, no value)


def is_bulk(count: int) -> bool:
    """Whether an insert of `count` messages takes the bulk path: COPY, a fan-out row,
    `enqueued_at` stamped at insert."""
    return count > 1


def messages_insert(*, context: AcceptContext, drafts: Sequence[Draft],
                    claim: idempotency.AnsweredClaim | None = None) -> None:
    """Store `drafts` (queued, or scheduled), set their id, public id, status and times, and record
    their `message.queued` outbox rows. In the caller's transaction, if any: a single send on
    PostgreSQL is one statement, atomic by itself.

    `claim` (a single send only): its Idempotency-Key record goes in the same statement, completed
    with the answer; raises idempotency.KeyTaken, with nothing written, when the key is taken."""
    if not drafts:
        return
    now = timezone.now()
    for draft, public_id in zip(drafts, public_ids("msg", len(drafts)), strict=True):
        prepared = draft.message
        draft.public_id = draft.public_id or public_id  # a check may have drawn it (the OTP dedupe's marker)
        draft.status = Status.SCHEDULED if prepared.scheduled_at else Status.QUEUED
        draft.created_at, draft.expires_at = now, (prepared.scheduled_at or now) + prepared.validity
    api_key_id = context.api_key.pk if context.api_key else None
    request = {"tenant_id": context.tenant.pk, "api_key_id": api_key_id, "mode": context.mode, "created_at": now,
               "status_changed_at": now}
    queued = [draft for draft in drafts if draft.status == Status.QUEUED]
    by_dispatcher, postgresql = handoff_by_dispatcher(), connection.vendor == "postgresql"
    in_statement = postgresql and _fanout_in_statement(context=context, drafts=drafts, queued=queued)
    if claim is not None and is_bulk(len(drafts)):
        raise ValueError("an answered claim goes with a single send")
    if not is_bulk(len(drafts)):
        ids = (_insert_postgresql(draft=drafts[0], request=request, with_fanout=in_statement, claim=claim,
                                  hold=context.hold)
               if postgresql else _insert_portable(drafts=drafts, request=request, claim=claim))
    else:
        ids = (_copy_postgresql if postgresql else _bulk_portable)(drafts=drafts, request=request)
    for draft in drafts:
        draft.id = ids[draft.public_id]
    if not is_bulk(len(drafts)) and not by_dispatcher:
        _queued_emit(context=context, drafts=queued)
    elif queued and not in_statement:
        # The dispatcher expands the row (no publish in the request); without it, its task does.
        fanout.event_fanout_record(tenant_id=context.tenant.pk, event_type="message.queued",
                                   items=[draft.id for draft in queued],
                                   callback_urls={draft.message.callback_url for draft in queued},
                                   publish=not by_dispatcher)


def _fanout_in_statement(*, context: AcceptContext, drafts: Sequence[Draft], queued: Sequence[Draft]) -> bool:
    """Whether a single send writes its fan-out row in the message's own statement: under the
    dispatcher (nothing to publish after commit), queued, and someone listens."""
    return (handoff_by_dispatcher() and not is_bulk(len(drafts)) and bool(queued)
            and fanout.event_fanout_wanted(tenant_id=context.tenant.pk, event_type="message.queued",
                                           callback_urls={queued[0].message.callback_url}))


def _insert_postgresql(*, draft: Draft, request: dict, with_fanout: bool,
                       claim: idempotency.AnsweredClaim | None, hold=None) -> dict[str, int]:
    """The single send's statement (_insert_sql). Raises KeyTaken when the claim's key is taken, and with a
    `hold` the hold's refusal (402) when the balance or a daily cap does not cover it: nothing written.

    A hold with a claim runs in a transaction of its own (BEGIN, the statement, COMMIT): a claim written for a
    hold then refused is rolled back with it. A hold alone is the statement only: it writes all or nothing."""
    params = [*(request[name] for name in _REQUEST_COLUMNS), *_row_values(draft)]
    if hold is not None:
        params = [*hold.params, *params]
    if claim is not None:
        params = [*idempotency.answered_claim_params(claim, body=claim.render(draft), now=request["created_at"]),
                  *params]
    sql = _insert_sql(with_fanout=with_fanout, with_claim=claim is not None,
                      hold_ctes=hold.sql(after="c" if claim is not None else None) if hold is not None else None,
                      hold_outputs=hold.outputs if hold is not None else "")
    with transaction.atomic() if hold is not None and claim is not None else contextlib.nullcontext():
        message_id, claimed, *outputs = prepared_fetchone(sql, params)
        if message_id is not None:
            if hold is not None:
                hold.taken(outputs)
            return {draft.public_id: message_id}
        if claim is not None and not claimed:
            raise idempotency.KeyTaken()
        refusal = hold.refusal(field="to")
        refusal.limits_counted = True  # step 3 counted the request (steps.price)
        raise refusal  # (rolls back the claim)


def _insert_portable(*, drafts: Sequence[Draft], request: dict,
                     claim: idempotency.AnsweredClaim | None = None) -> dict[str, int]:
    """The same rows through the ORM, a statement each, in the pipeline's transaction (SQLite: `make run`
    and the default `make test` have no data-modifying CTE). bulk_create sets the primary keys (SQLite 3.35+)."""
    if claim is not None:
        with connection.cursor() as cursor:
            cursor.execute(idempotency.answered_claim_insert_sql(),
                           idempotency.answered_claim_params(claim, body=claim.render(drafts[0]),
                                                             now=request["created_at"]))
            if cursor.fetchone() is None:
                raise idempotency.KeyTaken()
    messages = Message.objects.bulk_create([
        Message(**request, sequence=1, attempts=0, **dict.fromkeys(_EMPTY_COLUMNS, ""),
                **{name: _row_value(draft, name) for name, _ in _ROW_COLUMNS if name not in _JSON_COLUMNS},
                metadata=draft.message.metadata or {}, sender_substituted=draft.message.sender_substituted)
        for draft in drafts])
    return {message.public_id: message.pk for message in messages}


# COPY's columns: the primary key (drawn beforehand), the request's values, the bookkeeping, the message's.
_COPY_COLUMNS = ("id", *_REQUEST_COLUMNS, "sequence", "attempts", "enqueued_at", *_EMPTY_COLUMNS,
                 *(name for name, _ in _ROW_COLUMNS))


def _copy_postgresql(*, drafts: Sequence[Draft], request: dict) -> dict[str, int]:
    """Ids from the sequence in one statement, then every row in one COPY: no statement per message,
    no per-value SQL quoting, and no RETURNING to read back.

    `enqueued_at` is stamped now for queued rows, not after the publish: the post-commit UPDATE of
    a whole batch cost as much as its insert. A publish that fails clears the stamp again
    (messaging/handoff.py); a process that dies between commit and publish leaves it, and the
    sweeper's lost-task pass re-publishes after MESSAGE_STUCK_SECONDS instead of after
    MESSAGE_DISPATCH_PICKUP_SECONDS: later, never lost."""
    table, by_dispatcher = Message._meta.db_table, handoff_by_dispatcher()
    with connection.cursor() as cursor:
        sql = f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, %s)"  # noqa: S608 (a constant)
        cursor.execute(sql, [len(drafts)])
        ids = [row[0] for row in cursor.fetchall()]
        head = [request[name] for name in _REQUEST_COLUMNS]
        columns = ", ".join(f'"{name}"' for name in _COPY_COLUMNS)
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for pk, draft in zip(ids, drafts, strict=True):
                stamp = request["created_at"] if draft.status == Status.QUEUED and not by_dispatcher else None
                copy.write_row((pk, *head, 1, 0, stamp, "", "", "", "", *_row_values(draft)))
    return {draft.public_id: pk for pk, draft in zip(ids, drafts, strict=True)}


def _row_values(draft: Draft) -> tuple:
    """_row_value of every _ROW_COLUMNS name, in that order, without the lookup per value (the COPY's rows)."""
    prepared, analysis = draft.message, draft.message.analysis
    metadata = json.dumps(prepared.metadata, separators=(",", ":")) if prepared.metadata else "{}"
    return (draft.public_id, prepared.to, prepared.sender, prepared.pool.pk if prepared.pool else None, analysis.text,
            prepared.template_ref, prepared.message_type, draft.status, analysis.encoding, analysis.segment_count,
            analysis.characters, prepared.smart_encoding, prepared.client_reference, metadata, prepared.callback_url,
            prepared.scheduled_at, draft.expires_at, draft.price, draft.currency, draft.billed,
            prepared.scheduled_reason,
            json.dumps(prepared.sender_substituted) if prepared.sender_substituted else None)


def _bulk_portable(*, drafts: Sequence[Draft], request: dict) -> dict[str, int]:
    """The batch's rows through bulk_create (SQLite): the same rows as the COPY."""
    messages = Message.objects.bulk_create([
        Message(**request, sequence=1, attempts=0, **dict.fromkeys(_EMPTY_COLUMNS, ""),
                enqueued_at=request["created_at"] if draft.status == Status.QUEUED and not handoff_by_dispatcher() else None,
                **{name: _row_value(draft, name) for name, _ in _ROW_COLUMNS if name not in _JSON_COLUMNS},
                metadata=draft.message.metadata or {}, sender_substituted=draft.message.sender_substituted)
        for draft in drafts])
    return {message.public_id: message.pk for message in messages}


def _row_value(draft: Draft, name: str):
    prepared = draft.message
    analysis = prepared.analysis
    match name:
        case "public_id" | "status" | "expires_at" | "price" | "currency" | "billed":
            return getattr(draft, name)
        case "pool_id":
            return prepared.pool.pk if prepared.pool else None
        case "text":
            return analysis.text
        case "encoding":
            return analysis.encoding
        case "segments":
            return analysis.segment_count
        case "characters":
            return analysis.characters
        case "metadata":
            return json.dumps(prepared.metadata, separators=(",", ":")) if prepared.metadata else "{}"
        case "sender_substituted":
            return json.dumps(prepared.sender_substituted) if prepared.sender_substituted else None
        case _:
            return getattr(prepared, name)


def _queued_emit(*, context: AcceptContext, drafts: Sequence[Draft]) -> None:
    """`message.queued` for the queued ones, as message_transition emits every later status.

    The payload reads plain attributes: light stand-ins for the stored rows, not model instances
    (whose construction was a quarter of a batch's time)."""
    pairs = []
    for draft in drafts:
        prepared = draft.message
        message = SimpleNamespace(
            pk=draft.id, tenant_id=context.tenant.pk, public_id=draft.public_id, mode=context.mode, to=prepared.to,
            sender=prepared.sender, message_type=prepared.message_type, segments=prepared.analysis.segment_count,
            encoding=prepared.analysis.encoding, client_reference=prepared.client_reference,
            metadata=prepared.metadata, callback_url=prepared.callback_url, created_at=draft.created_at,
            error_message="")
        event = SimpleNamespace(status=draft.status, sequence=1, created_at=draft.created_at, error_code="")
        pairs.append((message, event))
    message_events_emit(tenant_id=context.tenant.pk, pairs=pairs, event_type="message.queued")
