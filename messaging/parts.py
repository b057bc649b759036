"""Long messages a carrier took in parts: every part's carrier id, each part's receipt, and the message's outcome
from its parts (docs/carriers.md, "Long messages: one id and one receipt per part").

A message the carrier took whole keeps its one id on the message row (`carrier_message_id`). One it took in
two or more parts with distinct ids (SMPP: a submit_sm per part) also gets a MessagePart row per part, written
under the message row's lock in the transaction that records its carrier id (dispatch._carrier_ids_record).
Receipts find a part by (carrier, carrier_message_id), a whole message by its own id: one query for a batch.
The message is delivered once every part is, and undelivered or failed as soon as one part is; the first final
receipt of a part is that part's, and the lifecycle's first final status the message's, so its
`message.delivered` (or `.undelivered`) webhook fires once.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count, IntegerField, Q, Value

from messaging.lifecycle import messages_transition
from messaging.models import Message, MessageEvent, MessagePart, Status

CARRIER = MessageEvent.Source.CARRIER
FAILURES = (Status.UNDELIVERED, Status.FAILED)


def parts_record(*, carrier: str, tenants: Mapping[int, int], part_ids: Mapping[int, Sequence[str]]) -> None:
    """The parts of these messages ({message pk: every part's id, in order}; `tenants`: {message pk: tenant
    id}), called with the message rows locked. A part the carrier gave no id, or the id of an earlier part
    (some SMSCs give every part the message's one id, and send one receipt), has no row of its own; a message
    left with fewer than two ids has none. Recorded again (a journal's recovery, a resubmission): a part
    whose id is unchanged keeps its row and its receipt, the others are replaced."""
    wanted: dict[tuple[int, int], str] = {}
    for message_id, ids in part_ids.items():
        distinct = _distinct(ids)
        if len(distinct) > 1:
            wanted.update({(message_id, number): cid for number, cid in distinct})
    if not wanted:
        return
    message_ids = sorted({message_id for message_id, _ in wanted})
    # unscoped: the parts of a dispatch batch's messages, by their ids
    held = MessagePart.unscoped.filter(message_id__in=message_ids).values_list(
        "pk", "message_id", "number", "carrier", "carrier_message_id")
    stale = []
    for pk, message_id, number, held_carrier, cid in held:
        if held_carrier == carrier and wanted.get((message_id, number)) == cid:
            del wanted[(message_id, number)]
        else:
            stale.append(pk)
    if stale:
        # unscoped: as above
        MessagePart.unscoped.filter(pk__in=stale).delete()
    MessagePart.unscoped.bulk_create([
        MessagePart(tenant_id=tenants[message_id], message_id=message_id, number=number, carrier=carrier,
                    carrier_message_id=cid) for (message_id, number), cid in wanted.items()])


def _distinct(ids: Sequence[str]) -> list[tuple[int, str]]:
    seen: set[str] = set()
    distinct = []
    for number, cid in enumerate(ids, start=1):
        if cid and cid not in seen:
            seen.add(cid)
            distinct.append((number, cid))
    return distinct


@dataclass(frozen=True)
class Match:
    """What a carrier id names: a message, and its part when the id is a part's (part 0: the message's own)."""

    message_id: int
    part_id: int = 0
    number: int = 0


def receipts_match(*, carrier: str, carrier_ids: Sequence[str]) -> dict[str, Match]:
    """{carrier id: Match} for the ids of a receipt batch, in one query over the parts and the messages. A part
    wins over a message with the same id (a part's first id is also its message's), and the newest row over
    older ones (a carrier that recycles its ids means its latest message)."""
    ids = sorted({cid for cid in carrier_ids if cid})
    if not ids:
        return {}
    found: dict[str, Match] = {}
    for cid, message_id, part_id, number in _matches(carrier, ids):
        match = Match(message_id, part_id, number)
        held = found.get(cid)
        if held is None or (match.part_id, match.message_id) > (held.part_id, held.message_id):
            found[cid] = match
    return found


def _matches(carrier: str, ids: list[str]):
    """(carrier id, message id, part id, part number) rows of parts and messages with these ids (part 0: a
    message's own). On PostgreSQL one statement with the ids as one array: a receipt batch's query text is
    then the same whatever its size, and is neither compiled by the ORM nor converted by psycopg each time."""
    if connection.vendor == "postgresql":
        # unscoped (raw SQL): as below
        statement = (
            "SELECT carrier_message_id, message_id, id, number FROM messaging_messagepart "
            "WHERE carrier = %s AND carrier_message_id = ANY(%s::text[]) "
            "UNION ALL SELECT carrier_message_id, id, 0, 0 FROM messaging_message "
            "WHERE carrier = %s AND carrier_message_id = ANY(%s::text[]) AND carrier_message_id <> ''")
        with connection.cursor() as cursor:
            cursor.execute(statement, [carrier, ids, carrier, ids])
            return cursor.fetchall()
    zero = Value(0, output_field=IntegerField())
    # unscoped: carrier receipt matching: the carrier's ids name parts and messages of any tenant.
    # carrier_message_id != "" spelled out on messages: the partial index `message_carrier_id` then serves it.
    parts = (MessagePart.unscoped.filter(carrier=carrier, carrier_message_id__in=ids).order_by()
             .values_list("carrier_message_id", "message_id", "pk", "number"))
    whole = (Message.unscoped.filter(carrier=carrier, carrier_message_id__in=ids).exclude(carrier_message_id="")
             .order_by().values_list("carrier_message_id", "pk", zero, zero))
    return parts.union(whole, all=True)


@dataclass(frozen=True)
class PartReceipt:
    """A final receipt (delivered, undelivered or failed: `status` in ours) for one part."""

    match: Match
    status: str
    detail: str
    carrier_error_code: str = ""


def part_receipts_apply(receipts: Sequence[PartReceipt]) -> list[Message]:
    """Each part's first final receipt onto its row, then what that makes of each message: failed or
    undelivered at the first part that is, delivered with its last part. Returns the messages that moved.

    The message rows are locked first, in id order as every batch transition locks them: two batches with
    receipts for different parts of one message then run one after the other, and the second sees the
    first's parts, so the last part's receipt always finds the others delivered."""
    if not receipts:
        return []
    with transaction.atomic():
        message_ids = sorted({r.match.message_id for r in receipts})
        # unscoped: the messages the receipts' parts belong to, by their ids
        list(Message.unscoped.select_for_update().filter(pk__in=message_ids).order_by("pk").values_list("pk"))
        first: dict[int, PartReceipt] = {}
        for receipt in receipts:
            first.setdefault(receipt.match.part_id, receipt)
        by_status: dict[str, list[int]] = {}
        for part_id, receipt in first.items():
            by_status.setdefault(receipt.status, []).append(part_id)
        for status, part_ids in by_status.items():
            # unscoped: the parts the receipts name, by their ids
            MessagePart.unscoped.filter(pk__in=part_ids, status="").update(status=status)
        return _failed(first.values()) + _delivered(first.values())


def _failed(receipts) -> list[Message]:
    groups: dict[tuple[str, str, str], list[int]] = {}
    for receipt in receipts:
        if receipt.status in FAILURES:
            key = (receipt.status, f"part {receipt.match.number}: {receipt.detail}", receipt.carrier_error_code)
            groups.setdefault(key, []).append(receipt.match.message_id)
    moved = []
    for (status, detail, carrier_code), ids in groups.items():
        moved += messages_transition(message_ids=ids, to=status, source=CARRIER, detail=detail,
                                     carrier_error_code=carrier_code, error_code="carrier_" + status,
                                     error_message=detail)
    return moved


def _delivered(receipts) -> list[Message]:
    candidates = {r.match.message_id for r in receipts if r.status == Status.DELIVERED}
    if not candidates:
        return []
    # unscoped: the parts of the messages a receipt batch names, by message ids
    counts = (MessagePart.unscoped.filter(message_id__in=candidates).order_by().values("message_id")
              .annotate(parts=Count("pk"), delivered=Count("pk", filter=Q(status=Status.DELIVERED))))
    groups: dict[int, list[int]] = {}
    for row in counts:
        if row["parts"] == row["delivered"]:
            groups.setdefault(row["parts"], []).append(row["message_id"])
    moved = []
    for parts, ids in groups.items():
        moved += messages_transition(message_ids=ids, to=Status.DELIVERED, source=CARRIER,
                                     detail=f"receipt: delivered (all {parts} parts)")
    return moved
