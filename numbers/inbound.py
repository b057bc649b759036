"""Inbound messages: the one service every connector (and the carrier simulator) calls.

A message is stored for the tenant that held the number when it arrived: the assignment or lease
active at `received_at`, so a message arriving after a release never reaches the former holder.
Messages to numbers nobody held are stored with no tenant (for account managers). The unique
(carrier, carrier_message_id) constraint stores a repeated carrier delivery once, so HELP is answered
once per message.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from numbers import codecapture, hooks
from numbers import events as webhooks
from numbers.models import InboundMessage, NumberAssignment, NumberLease, PhoneNumber
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction
from django.db.models import Q

from compliance import services as compliance
from smsportal.errors import DomainError
from smsportal.ids import public_id

if TYPE_CHECKING:
    from accounts.models import Tenant

logger = logging.getLogger("smsportal.numbers")

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
    earlier_ids: Sequence[str] = (),
) -> InboundMessage:
    """Stores one inbound message for the tenant that held `to` at `received_at`; idempotent by
    (carrier, carrier_message_id): a repeat returns the stored row and records nothing again. `earlier_ids`:
    ids the same message may already be stored under (an SMPP MO with no id of its own is known by a hash
    and its arrival window: the previous window's id); a row stored under one is returned too."""
    carrier_message_id = carrier_message_id or public_id("cmi")
    # unscoped: carrier inbound: idempotent by carrier id; the tenant is not known yet
    existing = InboundMessage.unscoped.filter(carrier=carrier,
                                              carrier_message_id__in=[carrier_message_id, *earlier_ids]).first()
    if existing is not None:
        return existing
    number = PhoneNumber.objects.filter(number=to).first()
    tenant, lease = holding_at(number=number, at=received_at) if number is not None else (None, None)
    captured = codecapture.capture(text or "")
    keyword = keyword_of(text or "") if tenant is not None else None
    try:
        with transaction.atomic():
            message = InboundMessage.unscoped.create(
                tenant=tenant, number=number, lease=lease, to=to, sender=sender, text=text or "", carrier=carrier,
                carrier_message_id=carrier_message_id, received_at=received_at,
                code=captured.code if captured else "", service=(captured.service or "") if captured else "",
                keyword=keyword[0] if keyword else "",
            )
            if keyword is not None:
                compliance.keyword_record(tenant=tenant, number=to, sender=sender, kind=keyword[1])
            webhooks.inbound_received_emit(inbound=message)
            if message.keyword == InboundMessage.Keyword.HELP:
                help_reply_send(inbound=message)
    except IntegrityError:
        existing = InboundMessage.unscoped.filter(carrier=carrier, carrier_message_id=carrier_message_id).first()
        if existing is None:
            raise
        return existing
    return message


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
