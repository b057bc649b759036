"""Inbound messages: the one service every connector (and the carrier simulator) calls.

A message is stored for the tenant that held the number when it arrived: the assignment or lease
active at `received_at`, so a message arriving after a release never reaches the former holder.
Messages to numbers nobody held are stored with no tenant (for account managers). The unique
(carrier, carrier_message_id) constraint stores a repeated carrier delivery once, so HELP is answered
once per message; a carrier with no id of its own (an SMPP MO) gives a dedupe key instead, and a delivery
under the key of one stored within its redelivery time is that message again.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from numbers import codecapture, hooks
from numbers import events as webhooks
from numbers.models import InboundMessage, NumberAssignment, NumberLease, NumberPoolMember, PhoneNumber
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Q

from compliance import services as compliance
from smsportal.errors import DomainError
from smsportal.ids import public_id
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

logger = logging.getLogger("smsportal.numbers")

# How long after an MO a delivery under its dedupe key is that MO again (an SMSC redelivering what we did not
# answer), where the carrier does not set its own (SMPP: the carrier setting `mo_redelivery_seconds`).
REDELIVERY_SECONDS = 86_400.0

# The answer to HELP when the tenant has not written its own (Tenant.help_reply).
DEFAULT_HELP_REPLY = "{name}: reply STOP to opt out. For help contact your sender."

# The whole message, trimmed, any case, runs of spaces as one. The opt-outs are the CTIA/carrier set
# plus REVOKE, OPTOUT and OPT OUT (FCC 2024 revocation rule) and the French ARRET/ARRÊT.
KEYWORDS: dict[str, tuple[str, str]] = {
    **{word: (InboundMessage.Keyword.STOP, compliance.KeywordKind.OPT_OUT)
       for word in ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT",
                    "ARRET", "ARRÊT")},
    **{word: (InboundMessage.Keyword.START, compliance.KeywordKind.OPT_IN) for word in ("START", "UNSTOP", "YES")},
    "HELP": (InboundMessage.Keyword.HELP, compliance.KeywordKind.HELP),
}


def keyword_of(text: str) -> tuple[str, str] | None:
    """(InboundMessage keyword, compliance.KeywordKind) when the whole message is a keyword."""
    return KEYWORDS.get(" ".join(text.split()).upper())


def holding_at(*, number: PhoneNumber, at: datetime) -> tuple[Tenant | None, NumberLease | None]:
    """The tenant holding `number` at `at` (and the lease, when it is a lease); (None, None) when nobody did."""
    # unscoped: an inbound message finds its tenant from the number's holding
    lease = (NumberLease.unscoped.select_related("tenant")
             .filter(number=number, started_at__lte=at, expires_at__gt=at)
             .filter(Q(released_at=None) | Q(released_at__gt=at)).order_by("-started_at").first())
    if lease is not None:
        return lease.tenant, lease
    assignment = (NumberAssignment.unscoped.select_related("tenant")
                  .filter(number=number, started_at__lte=at)
                  .filter(Q(ended_at=None) | Q(ended_at__gt=at)).order_by("-started_at").first())
    if assignment is not None:
        return assignment.tenant, None
    return None, None


def inbound_receive(
    *, to: str, sender: str, text: str, carrier: str, carrier_message_id: str, received_at: datetime,
    dedupe_key: str = "", redelivery_seconds: float = REDELIVERY_SECONDS,
) -> InboundMessage:
    """Stores one inbound message for the tenant that held `to` at `received_at`; idempotent: a repeat returns
    the stored row and records nothing again. A repeat is one with the same (carrier, carrier_message_id), or,
    with a `dedupe_key` (an SMPP MO, known by the MO itself: messaging/carriers/smpp/inbound.py), one whose
    key is that of the latest message stored under it if that one arrived at most `redelivery_seconds` before
    `received_at`; a later one is a new message and becomes the latest. No window boundary: the time is
    measured from the stored message. Two deliveries stored at once store one: the partial unique
    `inbound_dedupe_latest` fails the second insert (it waits for the first to commit), which then returns the
    first's row; one that finds the latest too old demotes only a row older than its own cutoff, so it never
    demotes the row a concurrent delivery of the same MO just stored."""
    carrier_message_id = carrier_message_id or public_id("cmi")
    since = received_at - timedelta(seconds=redelivery_seconds)
    existing = _stored(carrier=carrier, carrier_message_id=carrier_message_id, dedupe_key=dedupe_key, since=since)
    if existing is not None:
        return existing
    number = PhoneNumber.objects.filter(number=to).first()
    tenant, lease = holding_at(number=number, at=received_at) if number is not None else (None, None)
    captured = codecapture.capture(text or "")
    keyword = keyword_of(text or "") if tenant is not None else None
    try:
        with transaction.atomic():
            if dedupe_key:
                # unscoped: carrier inbound, as above; the latest under this key is too old to be this message
                InboundMessage.unscoped.filter(carrier=carrier, dedupe_key=dedupe_key, dedupe_latest=True,
                                               received_at__lt=since).update(dedupe_latest=False)
            message = InboundMessage.unscoped.create(
                tenant=tenant, number=number, lease=lease, to=to, sender=sender, text=text or "", carrier=carrier,
                carrier_message_id=carrier_message_id, dedupe_key=dedupe_key, dedupe_latest=bool(dedupe_key),
                received_at=received_at,
                code=captured.code if captured else "", service=(captured.service or "") if captured else "",
                keyword=keyword[0] if keyword else "",
            )
            if keyword is not None:
                compliance.keyword_record(tenant=tenant, number=to, sender=sender, kind=keyword[1], word=text,
                                          pool_ids=_pools_of(tenant=tenant, number=number))
            webhooks.inbound_received_emit(inbound=message)
            if message.keyword == InboundMessage.Keyword.HELP:
                help_reply_send(inbound=message)
    except IntegrityError:
        existing = _stored(carrier=carrier, carrier_message_id=carrier_message_id, dedupe_key=dedupe_key, since=since)
        if existing is None:
            raise
        return existing
    return message


@tenant_scoped
def _pools_of(*, tenant: Tenant, number: PhoneNumber) -> list[str]:
    """The public ids of the tenant's pools `number` is in: a STOP to it opts out of them too (issue 12)."""
    return list(NumberPoolMember.objects.filter(tenant=tenant, number=number).values_list("pool__public_id", flat=True))


def _stored(*, carrier: str, carrier_message_id: str, dedupe_key: str, since: datetime) -> InboundMessage | None:
    """The message a delivery repeats: by carrier id, or the latest under its dedupe key received since `since`."""
    repeat = Q(carrier_message_id=carrier_message_id)
    if dedupe_key:
        repeat |= Q(dedupe_key=dedupe_key, dedupe_latest=True, received_at__gte=since)
    # unscoped: carrier inbound: idempotent by carrier id or dedupe key; the tenant is not known yet
    return InboundMessage.unscoped.filter(repeat, carrier=carrier).first()


def help_reply_send(*, inbound: InboundMessage):
    """Answers HELP from the number it was sent to: the tenant's help reply, or DEFAULT_HELP_REPLY.

    Called inside the transaction that stores the inbound message, so the reply (a transactional
    message, `metadata.help_reply_to` = the inbound id, sent by the hook messaging registers) commits with it and exactly once per stored
    message; the accept pipeline (messaging/accept) limits its rate like any send's and hands it to
    dispatch after commit. Test mode when the carrier simulator delivered the HELP, live otherwise. The send checks the sender like any other (docs/senders.md): a
    reply it refuses (a late HELP to a number the tenant no longer holds, `sender_not_allowed`) is
    logged and dropped in a savepoint: it must not lose the inbound message. Returns the Message or None.
    """
    tenant = inbound.tenant
    text = tenant.help_reply.strip() or DEFAULT_HELP_REPLY.format(name=tenant.name)
    mode = "test" if inbound.carrier == "simulator" else "live"
    try:
        with transaction.atomic():
            return hooks.help_reply_sender()(tenant=tenant, mode=mode, to=inbound.sender, sender=inbound.to,
                                             text=text, metadata={"help_reply_to": inbound.public_id})
    except DomainError as error:
        logger.warning("HELP reply to inbound %s not sent: %s (%s)", inbound.public_id, error.message, error.code)
        return None
