"""Long MO over SMPP: each part stored before it is answered, the whole stored once every part is in.

A part answered ESME_ROK is the SMSC's no longer: it delivers only what we did not answer. So a part is
committed (InboundPartial) before its deliver_sm_resp, and a crash or restart between parts loses nothing:
the session that gets the last part, on this connector or another, finds the others in the database. A part
whose store fails raises, and the session answers it ESME_RX_T_APPN: the SMSC delivers it again.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from functools import reduce
from numbers.inbound import inbound_receive
from operator import or_

from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from messaging.carriers.smpp.codec import decode_text
from messaging.carriers.smpp.inbound import MoPart, mo_inbound
from messaging.carriers.smpp.settings import SessionSettings
from messaging.models import InboundPartial
from messaging.routing.models import Carrier

logger = logging.getLogger("messaging.connector")

KEY = ("sender", "to", "reference", "total")
SWEEP_BATCH = 500  # incomplete MOs per sweep


def mo_part_receive(*, carrier: str, part: MoPart, settings: SessionSettings):
    """Stores `part` of a long MO, then, if every part of it is stored, the whole MO: reassembled from the
    stored parts, handed to the inbound service and its parts deleted, in one transaction. Returns the
    InboundMessage once the MO is whole, None before. A part delivered again is stored once (the unique key).
    Raises when the part could not be stored (the caller answers ESME_RX_T_APPN).

    Two sessions that store an MO's last two parts at once complete it once: each looks for the whole only
    after its own part is committed, so the later of the two sees every part; the completion locks the
    parts, and the one that waited for the lock then finds them deleted."""
    concatenation = part.concatenation
    InboundPartial.objects.bulk_create([InboundPartial(
        carrier=carrier, sender=part.sender, to=part.to, reference=concatenation.reference, total=concatenation.total,
        number=concatenation.number, payload=part.payload, data_coding=part.data_coding, received_at=timezone.now(),
    )], ignore_conflicts=True)
    with transaction.atomic():
        parts = list(InboundPartial.objects.select_for_update().filter(
            carrier=carrier, sender=part.sender, to=part.to, reference=concatenation.reference,
            total=concatenation.total).order_by("number"))
        if len(parts) < concatenation.total:  # numbers are unique and within 1..total (the constraints)
            return None
        text = decode_text(b"".join(bytes(p.payload) for p in parts), parts[0].data_coding)
        inbound = mo_inbound(sender=part.sender, to=part.to, text=text, received_at=timezone.now(),
                             reference=part.reference, concatenation=concatenation)
        message = inbound_receive(to=inbound.to, sender=inbound.sender, text=inbound.text, carrier=carrier,
                                  carrier_message_id=inbound.carrier_message_id, dedupe_key=inbound.dedupe_key,
                                  redelivery_seconds=settings.mo_redelivery_seconds, received_at=inbound.received_at)
        InboundPartial.objects.filter(pk__in=[p.pk for p in parts]).delete()
    return message


def mo_parts_sweep() -> int:
    """Drops the parts of long MOs still incomplete `mo_reassembly_seconds` (the carrier's setting) after
    their first part was stored, logging each MO dropped; returns how many. Bounded and safe to run twice at
    once (skip_locked: a part being completed or swept elsewhere is left to that)."""
    now = timezone.now()
    dropped = 0
    for carrier in InboundPartial.objects.values_list("carrier", flat=True).distinct().order_by("carrier"):
        seconds = _reassembly_seconds(carrier)
        stale = list(InboundPartial.objects.filter(carrier=carrier).values(*KEY)
                     .annotate(first=Min("received_at"), parts=Count("id"))
                     .filter(first__lte=now - timedelta(seconds=seconds)).order_by("first")[:SWEEP_BATCH])
        if not stale:
            continue
        with transaction.atomic():
            locked = list(InboundPartial.objects.select_for_update(skip_locked=True).filter(carrier=carrier).filter(
                reduce(or_, (Q(**{name: mo[name] for name in KEY}) for mo in stale))).values_list("pk", *KEY))
            InboundPartial.objects.filter(pk__in=[row[0] for row in locked]).delete()
        gone = {row[1:] for row in locked}
        for mo in stale:
            if tuple(mo[name] for name in KEY) in gone:
                logger.warning("connector %s: long MO ref %s incomplete after %g s (%d of %d parts), dropped",
                               carrier, mo["reference"], seconds, mo["parts"], mo["total"])
                dropped += 1
    return dropped


def _reassembly_seconds(carrier: str) -> float:
    settings = Carrier.objects.filter(name=carrier).values_list("settings", flat=True).first() or {}
    return float(settings.get("mo_reassembly_seconds") or SessionSettings.mo_reassembly_seconds)
