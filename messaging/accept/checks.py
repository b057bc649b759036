"""The policy checks that exist today, registered in step 2 of accept (messaging/accept/registry.py).

Compliance adds its own (consent, suppression, content, sender ID, geo, quiet hours) the same way.
"""
from __future__ import annotations

from dataclasses import replace

from messaging import errors, services
from messaging.accept.registry import policy_check
from messaging.accept.steps import AcceptContext
from messaging.services import PreparedMessage
from smsportal.errors import DomainError


@policy_check("segment_limit", codes=("message_too_long",))
def segment_limit(*, context: AcceptContext, message: PreparedMessage) -> None:
    """At most the tenant's `max_message_segments` segments a message."""
    allowed = context.tenant.max_message_segments
    if message.analysis.segment_count > allowed:
        raise errors.MessageTooLong(f"The message needs {message.analysis.segment_count} segments; this account "
                                    f"allows at most {allowed}.", field="text")


@policy_check("sender_allowed", codes=("sender_not_allowed", "invalid_sender", "invalid_phone_number"))
def sender_allowed(*, context: AcceptContext, message: PreparedMessage) -> PreparedMessage | None:
    """The tenant may send from `from` (issue 8; docs/senders.md): services.sender_check, asked once per
    distinct sender of the request. A pool's number was picked among the tenant's own in step 1."""
    if message.pool is not None:
        return None
    memo = context.memo.setdefault("sender_allowed", {})
    if message.sender not in memo:
        try:
            memo[message.sender] = services.sender_check(tenant=context.tenant, sender=message.sender)
        except DomainError as exc:
            memo[message.sender] = exc
    outcome = memo[message.sender]
    if isinstance(outcome, Exception):
        raise outcome
    return None if outcome == message.sender else replace(message, sender=outcome)
