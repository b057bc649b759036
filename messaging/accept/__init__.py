"""The accept pipeline: every front door's messages through the same named steps (docs/send-pipeline.md).

    1 validate -> 2 policy checks -> 3 rate limits -> 4 price and reserve -> 5 insert -> 6 dispatch (after commit)

`messages_accept` takes a list (a single send is a batch of one) and answers one Draft per item,
by index: an id and status, or an error. `messages_quote` runs steps 1 to 4 and stores nothing.
The API's single and batch sends, the portal's send and HELP replies all come through here.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from numbers import pools
from typing import TYPE_CHECKING

from django.db import connection, transaction

from accounts.services import ApiKeyMode
from messaging.accept import (
    checks,  # noqa: F401 - registers today's policy checks
    policies,  # noqa: F401 - registers compliance's policy checks (after today's)
    pricing,  # noqa: F401 - registers billing's rating and hold
    registry,
    steps,
)
from messaging.accept.steps import AcceptContext, Draft
from messaging.models import Message
from smsportal.api.idempotency import AnsweredClaim
from smsportal.api.ratelimit import Limit
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import ApiKey, Tenant

__all__ = ["AcceptContext", "Draft", "message_send", "messages_accept", "messages_quote"]


def _drafts(items: Sequence[dict | Exception]) -> list[Draft]:
    """A parser's error (an item the API could not read) enters as a draft that already failed."""
    return [Draft(index=i, fields={}, error=item) if isinstance(item, Exception) else Draft(index=i, fields=item)
            for i, item in enumerate(items)]


def _context(tenant: Tenant, api_key: ApiKey | None, mode: str | None) -> AcceptContext:
    return AcceptContext(tenant=tenant, api_key=api_key, mode=mode or (api_key.mode if api_key else ApiKeyMode.TEST))


@tenant_scoped
def messages_accept(
    *, tenant: Tenant, api_key: ApiKey | None, items: Sequence[dict | Exception], mode: str | None = None,
    request_limits: Sequence[Limit] = (), claim: AnsweredClaim | None = None, limits_counted: bool = False,
) -> list[Draft]:
    """Accept the valid items in one transaction; the others keep their error. Returns a draft per item.

    `items` are message_prepare's keyword arguments (or a parse error); `request_limits` are the
    caller's own (an API key's request limit), decided with the message limits in one round trip.
    `claim` (a single send): its Idempotency-Key record, written completed by the insert itself.
    `limits_counted`: step 3 already counted this request (the plain single send handed it over).
    Raises for the whole request: RateLimited (429), BatchTooLarge, RateLimiterUnavailable (503), and
    with `claim` KeyTaken (nothing written). The hand-off to dispatch happens after the outermost
    transaction commits; none on rollback.

    A single send on PostgreSQL whose steps before the insert write nothing beside it (no pool to pick a
    number from; a reserve only if it folds into the insert, as billing's hold does) opens no transaction: its
    insert is one statement, atomic by itself, and BEGIN and COMMIT were two of its round trips."""
    context, drafts = _context(tenant, api_key, mode), _drafts(items)
    context.one_statement = _one_statement(context, items)
    context.counted = limits_counted
    try:
        with contextlib.nullcontext() if context.one_statement else transaction.atomic():
            steps.validate(context, drafts, record=True)
            steps.policy(context, drafts)
            if not limits_counted:
                steps.rate_limit(context, drafts, request_limits=request_limits, claim=claim)
            steps.price(context, drafts, reserve=True)
            steps.insert(context, drafts, claim=claim)
            steps.dispatch(drafts)
    except BaseException:
        steps.unstored_notify(context, drafts, failed=True)
        raise
    steps.unstored_notify(context, drafts, failed=False)
    return drafts


def _one_statement(context: AcceptContext, items: Sequence[dict | Exception]) -> bool:
    """Whether accepting `items` writes in one statement: one message, on PostgreSQL, not from a pool (the
    pick records its number first) and with no price or reserve step that writes for this send beside the
    insert (billing's rating and a test key's price write nothing; a live send's hold is CTEs of the insert,
    unless the key has a daily spend cap, whose count is a row of its own)."""
    if len(items) != 1 or isinstance(items[0], Exception) or connection.vendor != "postgresql":
        return False
    sender = items[0].get("sender")
    return not (isinstance(sender, str) and pools.pool_name_from_sender(sender)) and not registry.price_writes(context, single=True)


@tenant_scoped
def messages_quote(*, tenant: Tenant, api_key: ApiKey | None, items: Sequence[dict | Exception]) -> list[Draft]:
    """Steps 1, 2 and 4 with nothing written: what a send would make of the items, and their price.

    Rate limits are not counted: a quote sends nothing."""
    context, drafts = _context(tenant, api_key, None), _drafts(items)
    context.quote = True
    steps.validate(context, drafts, record=False)
    steps.policy(context, drafts)
    steps.price(context, drafts, reserve=False)
    return drafts


@tenant_scoped
def message_send(*, tenant: Tenant, api_key: ApiKey | None, mode: str | None = None, **fields) -> Message:
    """One message through the pipeline, for callers that want the stored Message (portal, HELP replies).

    Raises the message's DomainError when it is refused; a deduplicated OTP answers the earlier Message."""
    (draft,) = messages_accept(tenant=tenant, api_key=api_key, mode=mode, items=[fields])
    if draft.error is not None:
        raise draft.error
    if draft.duplicate is not None:
        return draft.duplicate
    return Message.objects.get(pk=draft.id)
