"""The consent check (issue 12, section 2; docs/compliance.md "Consent and suppression").

A recipient opted out (or suppressed) in a scope that covers the send (the tenant, the sender number, the pool it
goes through) is refused, 422 `recipient_opted_out` (field `to`), whatever the message type; a marketing message
also needs the recipient's latest applicable record to be `opted_in`, else 422 `consent_required`. OTP and
transactional messages need no opt-in: they answer something the recipient asked for.

`prepare` reads every record of the request's numbers in ONE query; a tenant with no records and no
suppressions costs no query at all (compliance.consent.ledger_empty, kept in process memory).
"""
from __future__ import annotations

from collections.abc import Sequence

from compliance import consent
from compliance.errors import ConsentRequired, RecipientOptedOut
from messaging.accept.registry import policy_check
from messaging.accept.steps import AcceptContext, Draft
from messaging.models import MessageType
from messaging.services import PreparedMessage

_MEMO = "consent"


def _prepare(*, context: AcceptContext, drafts: Sequence[Draft]) -> None:
    """The request's numbers' entries (one query), or none when the tenant's ledger is empty (no query)."""
    if not drafts or consent.ledger_empty(context.tenant.pk):
        context.memo[_MEMO] = {}
        return
    context.memo[_MEMO] = consent.consent_entries(tenant_id=context.tenant.pk,
                                                  phones=[draft.message.to for draft in drafts])


@policy_check("consent", codes=("recipient_opted_out", "consent_required"), prepare=_prepare)
def consent_check(*, context: AcceptContext, message: PreparedMessage) -> None:
    entries = context.memo.get(_MEMO, {}).get(message.to, ())
    pool_id = message.pool.public_id if message.pool is not None else ""
    state = consent.state_for(entries, sender=message.sender, pool_id=pool_id) if entries else None
    if state in (consent.OPTED_OUT, consent.SUPPRESSED):
        raise RecipientOptedOut(f"{message.to} opted out of messages from {message.sender}"
                                + (" (suppressed)." if state == consent.SUPPRESSED else "."), field="to")
    if message.message_type == MessageType.MARKETING and state != consent.OPTED_IN:
        raise ConsentRequired(f"Marketing to {message.to} needs its opt-in: record it with POST /v1/consents "
                              "(status opted_in) first. OTP and transactional messages need none.", field="to")
