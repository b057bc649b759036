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

from messaging.models import MessagePart


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
