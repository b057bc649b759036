"""The message lifecycle: which status may follow which, enforced in one place.

`message_transition` is the only code that changes Message.status. It locks
the row, refuses a change the table does not allow (so a late `sent` never
overwrites `delivered`, and a repeated receipt changes nothing), bumps the
message's sequence, writes the MessageEvent and emits the webhook event, all
in one transaction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import F
from django.db.models.base import ModelState
from django.db.models.functions import Coalesce
from django.utils import timezone

from billing import services as billing
from messaging.events import message_event_emit, message_events_emit
from messaging.models import Message, MessageEvent, Status
from smsportal.bulk import rows_update

FINAL = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED, Status.REJECTED,
                   Status.CANCELED})

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.SCHEDULED: frozenset({Status.QUEUED, Status.CANCELED, Status.EXPIRED, Status.REJECTED}),
    Status.QUEUED: frozenset({Status.SENDING, Status.CANCELED, Status.EXPIRED, Status.REJECTED, Status.FAILED}),
    # sending -> queued: a transient error (or a stuck claim) puts it back for another attempt.
    # sending -> delivered/undelivered: a receipt can overtake the worker's own "sent" record.
    Status.SENDING: frozenset({Status.QUEUED, Status.SENT, Status.DELIVERED, Status.UNDELIVERED, Status.FAILED,
                               Status.EXPIRED}),
    Status.SENT: frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.EXPIRED}),
    **{final: frozenset() for final in FINAL},
}

# A billed message's hold is captured when it reaches a carrier, released when it ends without leaving us
# (once per message: a release after a capture, e.g. failed after sent, changes nothing: billing.services).
SETTLE = {Status.SENT: billing.CAPTURE, Status.DELIVERED: billing.CAPTURE, Status.UNDELIVERED: billing.CAPTURE,
          Status.FAILED: billing.RELEASE, Status.EXPIRED: billing.RELEASE, Status.REJECTED: billing.RELEASE,
          Status.CANCELED: billing.RELEASE}

# Status -> webhook event type; statuses not listed emit no webhook.
WEBHOOK_EVENTS = {
    Status.QUEUED: "message.queued",
    Status.SENT: "message.sent",
    Status.DELIVERED: "message.delivered",
    Status.UNDELIVERED: "message.undelivered",
    Status.FAILED: "message.failed",
    Status.EXPIRED: "message.expired",
}


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS[current]


@transaction.atomic
def message_transition(
    *,
    message_id: int,
    to: str,
    source: str,
    detail: str = "",
    error_code: str = "",
    error_message: str = "",
    carrier_error_code: str = "",
    expected: frozenset[str] | set[str] | None = None,
    fields: dict | None = None,
    increment_attempts: bool = False,
    webhook: bool = True,
    at: datetime | None = None,
) -> Message | None:
    """Move a message to `to`; returns it, or None when the move is not allowed now.

    `expected` narrows the statuses to move from (a claim: only from `queued`).
    `fields` are other columns to set in the same write (carrier id, next attempt...);
    `increment_attempts` counts a dispatch attempt on the locked row; `webhook=False`
    keeps an internal step (a retry going back to queued) out of the customer's webhooks.
    Holds the message row lock for the duration of the transaction.
    """
    # unscoped: one message by its id, from dispatch, receipts and sweeps
    message = Message.unscoped.select_for_update().get(pk=message_id)
    if not can_transition(message.status, to) or (expected is not None and message.status not in expected):
        return None
    now = at or timezone.now()
    message.status = to
    message.sequence += 1
    message.status_changed_at = now
    if error_code:
        message.error_code, message.error_message = error_code, error_message[:500]
    if to == Status.SENT and message.sent_at is None:
        message.sent_at = now
    if to == Status.DELIVERED:
        message.delivered_at = now
    if increment_attempts:
        message.attempts += 1
    for name, value in (fields or {}).items():
        setattr(message, name, value)
    message.save()
    event = MessageEvent.unscoped.create(
        tenant_id=message.tenant_id, message=message, sequence=message.sequence, status=to, source=source,
        detail=detail[:500], error_code=error_code, carrier_error_code=carrier_error_code, created_at=now,
    )
    _holds_settle([message], to)
    if webhook and to in WEBHOOK_EVENTS:
        message_event_emit(message=message, event_type=WEBHOOK_EVENTS[to], event=event)
    return message


def _holds_settle(moved: list[Message], to: str) -> None:
    """Capture or release the holds of the billed messages that moved, in the transition's transaction: one
    statement for the lot (none when none is billed). Each names its key and the day (UTC) of its accept, when
    its hold was taken: a release that day gives the hold back to the day's spend of the key and the tenant."""
    kind = SETTLE.get(to)
    settlements = [billing.Settlement(message_id=m.pk, tenant_id=m.tenant_id, amount=m.price, currency=m.currency,
                                      country=billing.destination_country(m.to), segments=m.segments,
                                      api_key_id=m.api_key_id, held_on=m.created_at.astimezone(UTC).date(),
                                      to=m.to, message_type=m.message_type)
                   for m in moved if m.billed and m.price] if kind else []
    billing.holds_settle(settlements=settlements, kind=kind)


@transaction.atomic
def messages_transition(
    *,
    message_ids: list[int],
    to: str,
    source: str,
    detail: str = "",
    error_code: str = "",
    error_message: str = "",
    carrier_error_code: str = "",
    expected: frozenset[str] | set[str] | None = None,
    fields: dict | None = None,
    increment_attempts: bool = False,
    webhook: bool = True,
    at: datetime | None = None,
    assign: dict[str, dict[int, object]] | None = None,
) -> list[Message]:
    """message_transition for many messages at once, with the same outcome per message as one call
    each: returns the messages that moved (those the table and `expected` allow), already changed.

    A constant number of statements whatever the count: on PostgreSQL one statement locks (in id
    order, so two batches over the same rows cannot deadlock), updates and inserts the events
    (_moved_postgresql); elsewhere a SELECT ... FOR UPDATE, an UPDATE and an INSERT. Then per tenant
    one endpoints query and one INSERT of the deliveries, none for a tenant nobody listens to
    (messaging.events.message_events_emit).

    `assign`, {field name: {message id: value}}: set on each of those messages whether it moves or not, in the
    same statement and under the same lock (on PostgreSQL; elsewhere one UPDATE per message before): the
    carrier ids of a batch the carrier took, recorded even where a receipt moved a message past `sent`. One
    row version per message instead of two (every index of the table gets an entry for each).
    """
    if not message_ids:
        return []
    now = at or timezone.now()
    if connection.vendor == "postgresql":
        moved = _moved_postgresql(message_ids=message_ids, to=to, source=source, now=now, expected=expected,
                                  changes=_changes(to=to, now=now, error_code=error_code, error_message=error_message,
                                                   fields=fields, increment_attempts=increment_attempts),
                                  event={"detail": detail[:500], "error_code": error_code,
                                         "carrier_error_code": carrier_error_code}, assign=assign or {})
        events = [_EventView(status=to, sequence=m.sequence, created_at=now, error_code=error_code) for m in moved]
    else:
        if assign:
            _assigned_portable(message_ids, assign)
        moved, events = _moved_portable(
            message_ids=message_ids, to=to, source=source, detail=detail, error_code=error_code,
            error_message=error_message, carrier_error_code=carrier_error_code, expected=expected, fields=fields,
            increment_attempts=increment_attempts, now=now)
    if not moved:
        return []
    _holds_settle(moved, to)
    if webhook and to in WEBHOOK_EVENTS:
        by_tenant: dict[int, list] = {}
        for message, event in zip(moved, events, strict=True):
            by_tenant.setdefault(message.tenant_id, []).append((message, event))
        for tenant_id, pairs in by_tenant.items():
            message_events_emit(tenant_id=tenant_id, pairs=pairs, event_type=WEBHOOK_EVENTS[to])
    return moved


def _from_statuses(to: str, expected: frozenset[str] | set[str] | None) -> list[str]:
    """The statuses a message may be in to move to `to` now: the table's, narrowed by `expected`."""
    return sorted(s for s, nexts in TRANSITIONS.items() if to in nexts and (expected is None or s in expected))


def _changes(*, to: str, now: datetime, error_code: str, error_message: str, fields: dict | None,
             increment_attempts: bool) -> dict[str, tuple[str, object]]:
    """{column: (SQL expression over the old row `m`, its parameter)} of the one UPDATE."""
    changes: dict[str, tuple[str, object]] = {"status": ("%s", to), "sequence": ("m.sequence + 1", None),
                                              "status_changed_at": ("%s", now)}
    if error_code:
        changes.update(error_code=("%s", error_code), error_message=("%s", error_message[:500]))
    if to == Status.SENT:
        changes["sent_at"] = ("coalesce(m.sent_at, %s)", now)
    if to == Status.DELIVERED:
        changes["delivered_at"] = ("%s", now)
    if increment_attempts:
        changes["attempts"] = ("m.attempts + 1", None)
    for name, value in (fields or {}).items():
        field = Message._meta.get_field(name)
        changes[field.column] = ("%s", field.get_db_prep_save(value, connection))
    return changes


_COLUMNS = [field.column for field in Message._meta.concrete_fields]
_NAMES = [field.attname for field in Message._meta.concrete_fields]


def _moved_postgresql(*, message_ids: list[int], to: str, source: str, now: datetime,
                      expected: frozenset[str] | set[str] | None, changes: dict, event: dict,
                      assign: dict[str, dict[int, object]]) -> list[Message]:
    """Lock, move and record the events of the movable messages in one statement; the rows as moved.

    The CTE locks in id order (two batches over the same rows cannot deadlock), and a row another
    transaction changed while we waited for its lock is checked again against the statuses
    (PostgreSQL re-evaluates the WHERE on the new row version), so a late `sent` never overwrites
    `delivered`. No model instance is built for the events. With `assign`, every given row is locked and
    gets its values, and only the movable ones (`locked.movable`, read under the lock) change status."""
    returned = ", ".join(f"m.{column}" for column in _COLUMNS)
    params: list = [list(message_ids), _from_statuses(to, expected)]
    if assign:
        fields = [Message._meta.get_field(name) for name in assign]
        columns = [field.column for field in fields]
        ids = sorted(set(message_ids))
        values = ", ".join(f"%s::{field.db_type(connection)}[]" for field in fields)
        names = ", ".join(f"v_{column}" for column in columns)
        locked = (f"v AS (SELECT * FROM unnest(%s::bigint[], {values}) AS v(id, {names})), "  # noqa: S608
                  "locked AS (SELECT m.id, m.status = ANY(%s::text[]) AS movable, "
                  f"{', '.join(f'v.v_{c}' for c in columns)} FROM messaging_message m JOIN v ON v.id = m.id "
                  "ORDER BY m.id FOR UPDATE OF m)")
        params = [ids, *([field.get_db_prep_save(assign[field.name][pk], connection) for pk in ids] for field in fields),
                  _from_statuses(to, expected)]
        assignments = ", ".join([f"{column} = locked.v_{column}" for column in columns]
                                + [f"{column} = CASE WHEN locked.movable THEN {sql} ELSE m.{column} END"
                                   for column, (sql, _) in changes.items()])
        movable = " WHERE movable"
    else:
        locked = ("locked AS (SELECT id FROM messaging_message WHERE id = ANY(%s::bigint[]) "
                  "AND status = ANY(%s::text[]) ORDER BY id FOR UPDATE)")
        assignments = ", ".join(f"{column} = {sql}" for column, (sql, _) in changes.items())
        movable = ""
    # unscoped (raw SQL): messages by their ids, from dispatch, receipts and sweeps (any tenant's)
    statement = (  # column names from the model's meta and _changes, values as parameters
        f"WITH {locked}, "  # noqa: S608
        f"moved AS (UPDATE messaging_message m SET {assignments} FROM locked WHERE m.id = locked.id "
        f"RETURNING {returned}{', locked.movable' if assign else ''}), "
        "events AS (INSERT INTO messaging_messageevent (tenant_id, message_id, sequence, status, source, detail, "
        "error_code, carrier_error_code, created_at) "
        f"SELECT tenant_id, id, sequence, %s, %s, %s, %s, %s, %s FROM moved{movable}) "
        f"SELECT {', '.join(f'moved.{column}' for column in _COLUMNS)} FROM moved{movable} ORDER BY id")
    params += [value for sql, value in changes.values() if "%s" in sql]
    params += [to, source, event["detail"], event["error_code"], event["carrier_error_code"], now]
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return [_instance(row, connection.alias) for row in rows]


def _instance(row: tuple, alias: str) -> Message:
    """A raw row as a Message, as Model.from_db would build it (every concrete field, not adding, from `alias`),
    without Model.__init__: no field-by-field setattr and no pre/post_init signals (the project connects none;
    test_lifecycle checks it), which cost more than the statement for a receipt batch. The JSON columns
    arrive as text (Django's psycopg loader) and is parsed as the ORM would."""
    message = Message.__new__(Message)
    values = message.__dict__
    values.update(zip(_NAMES, row, strict=True))
    if isinstance(values["metadata"], str):
        values["metadata"] = json.loads(values["metadata"])
    if isinstance(values["sender_substituted"], str):
        values["sender_substituted"] = json.loads(values["sender_substituted"])
    state = ModelState()
    state.adding, state.db = False, alias
    values["_state"] = state
    return message


def _assigned_portable(message_ids: list[int], assign: dict[str, dict[int, object]]) -> None:
    """`assign` where one statement cannot do it: the rows locked in id order (as every batch transition
    locks them), then their values."""
    ids = sorted(set(message_ids))
    # unscoped: messages by their ids, as _moved_portable
    list(Message.unscoped.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))
    rows_update(model=Message, values={pk: {name: values[pk] for name, values in assign.items()} for pk in ids})


@dataclass(frozen=True)
class _EventView:
    """What a message event's webhook payload reads of the event (message_payload_data)."""

    status: str
    sequence: int
    created_at: datetime
    error_code: str


def _moved_portable(*, message_ids: list[int], to: str, source: str, detail: str, error_code: str,
                    error_message: str, carrier_error_code: str, expected, fields: dict | None,
                    increment_attempts: bool, now: datetime) -> tuple[list[Message], list[MessageEvent]]:
    """The same through the ORM (SQLite: `make run`, the default `make test`): a locking SELECT, one
    UPDATE, one INSERT of the events."""
    # unscoped: messages by their ids, from dispatch, receipts and sweeps (any tenant's)
    rows = list(Message.unscoped.select_for_update().filter(pk__in=message_ids).order_by("pk"))
    moved = [m for m in rows if can_transition(m.status, to) and (expected is None or m.status in expected)]
    if not moved:
        return [], []
    changes: dict = {"status": to, "sequence": F("sequence") + 1, "status_changed_at": now, **(fields or {})}
    if error_code:
        changes.update(error_code=error_code, error_message=error_message[:500])
    if to == Status.SENT:
        changes["sent_at"] = Coalesce(F("sent_at"), now)
    if to == Status.DELIVERED:
        changes["delivered_at"] = now
    if increment_attempts:
        changes["attempts"] = F("attempts") + 1
    # unscoped: the rows locked above
    Message.unscoped.filter(pk__in=[m.pk for m in moved]).update(**changes)
    for message in moved:
        _moved_in_memory(message, to=to, now=now, changes=changes, increment_attempts=increment_attempts)
    events = MessageEvent.unscoped.bulk_create([
        MessageEvent(tenant_id=m.tenant_id, message=m, sequence=m.sequence, status=to, source=source,
                     detail=detail[:500], error_code=error_code, carrier_error_code=carrier_error_code, created_at=now)
        for m in moved])
    return moved, events


def _moved_in_memory(message: Message, *, to: str, now: datetime, changes: dict, increment_attempts: bool) -> None:
    """The row as the UPDATE left it (the lock held since the SELECT makes that exact)."""
    message.status, message.status_changed_at = to, now
    message.sequence += 1
    if "error_code" in changes:
        message.error_code, message.error_message = changes["error_code"], changes["error_message"]
    if to == Status.SENT and message.sent_at is None:
        message.sent_at = now
    if to == Status.DELIVERED:
        message.delivered_at = now
    if increment_attempts:
        message.attempts += 1
    for name, value in changes.items():
        if name not in _COMPUTED:
            setattr(message, name, value)


_COMPUTED = frozenset({"status", "sequence", "status_changed_at", "sent_at", "delivered_at", "attempts",
                       "error_code", "error_message"})
