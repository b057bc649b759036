"""The named steps of accept, in order, each over a list of drafts (docs/send-pipeline.md).

A draft is one message of the request, by its index. A step works on the drafts still without an
error and gives a refused one its error (code, field, message); the request-wide steps (rate
limits) refuse the whole request with an exception instead. Nothing here opens its own
transaction: messages_accept runs steps 1 to 5 in one, step 6 after it commits.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings

from messaging import handoff, services
from messaging.accept import registry, store
from messaging.models import MessageType, Status
from smsportal.api.idempotency import AnsweredClaim, KeyTaken
from smsportal.api.ratelimit import FirstUse, Limit, rate_limits_hit
from smsportal.api.throttling import rate_parse
from smsportal.errors import DomainError

if TYPE_CHECKING:
    from accounts.models import ApiKey, Tenant


@dataclass
class AcceptContext:
    """Who sends: the tenant, the API key (None from the portal and HELP replies) and the mode.

    `memo` lives for one call: a check that looks something up (a sender's ownership) asks the
    database once per batch, not once per message."""

    tenant: Tenant
    api_key: ApiKey | None
    mode: str
    memo: dict = field(default_factory=dict)
    # A single send written by one statement (messages_accept): a reserve that folds gives it `hold`, CTEs
    # of the insert (billing.services.HoldStatement), instead of writing in a transaction of its own.
    one_statement: bool = False
    hold: Any = None
    # A quote (messages_quote): checks answer what a send would meet, and count, mark or record nothing.
    quote: bool = False
    # The request was counted already (the plain single send handed it over: limits_counted): checks that
    # count (fraud velocity) only look, or the refused send would count twice.
    counted: bool = False
    # Called with the drafts a send did not store (refused after the checks, or all on a request-wide refusal):
    # a check that marked something for a message undoes it (the OTP dedupe's markers).
    unstored: list = field(default_factory=list)
    # (Rider, settle) pairs a check prepared for step 3: each rider runs in the rate limits' own Redis call, only
    # if they allow the request, and `settle(answer)` then applies its outcome to the drafts (fraud velocity).
    riders: list = field(default_factory=list)


@dataclass
class Draft:
    """One message of the request: its fields, then what the steps made of it."""

    index: int
    fields: dict
    error: Exception | None = None  # a DomainError, or the API parser's ValidationError
    message: services.PreparedMessage | None = None
    price: Decimal | None = None
    currency: str = ""
    billed: bool = False  # the price is charged (a live send), not only shown
    id: int | None = None
    # An OTP answered with an earlier identical one (the dedupe check): that stored Message; nothing is stored,
    # counted or priced for this draft.
    duplicate: Any = None
    public_id: str = ""
    status: str = ""
    created_at: datetime | None = None
    expires_at: datetime | None = None


class RateLimited(DomainError):
    """429 with Retry-After: a limit of step 3 refused the request; nothing of it was stored or counted."""

    status = 429
    code = "rate_limited"
    message = "Too many messages: slow down and retry after the number of seconds in Retry-After."

    def __init__(self, message: str | None = None, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


class BatchTooLarge(DomainError):
    code = "batch_too_large"


class Duplicate(Exception):  # noqa: N818 - an outcome, not an error: the draft is answered with `message`
    """A policy check's answer that the message was already accepted: `message`, the stored earlier one."""

    def __init__(self, message) -> None:
        super().__init__(message.public_id)
        self.message = message


def live(drafts: Sequence[Draft]) -> list[Draft]:
    """The drafts still going: not refused, not answered by an earlier message."""
    return [draft for draft in drafts if draft.error is None and draft.duplicate is None]


# --- 1. parse and validate ------------------------------------------------------------------------


def validate(context: AcceptContext, drafts: Sequence[Draft], *, record: bool) -> None:
    """E.164, body (text or template), encoding, validity, schedule, metadata; a pool picks its number
    (recorded with `record`, inside the accept transaction)."""
    for draft in live(drafts):
        try:
            draft.message = services.message_prepare(tenant=context.tenant, pool_pick=record, **draft.fields)
        except DomainError as exc:
            draft.error = exc


# --- 2. policy checks ----------------------------------------------------------------------------------


def policy(context: AcceptContext, drafts: Sequence[Draft]) -> None:
    """Every registered check (messaging/accept/registry.py), in order; the first refusal is the draft's. A check
    with a `prepare` sees the whole request first (one lookup for a batch), then each message."""
    for check in registry.POLICY_CHECKS:
        if check.prepare is not None:
            check.prepare(context=context, drafts=live(drafts))
        for draft in live(drafts):
            try:
                draft.message = check.function(context=context, message=draft.message) or draft.message
            except DomainError as exc:
                draft.error = exc
            except Duplicate as duplicate:
                draft.duplicate = duplicate.message


# --- 3. rate limits ----------------------------------------------------------------------------------


def rate_limit(context: AcceptContext, drafts: Sequence[Draft], *, request_limits: Sequence[Limit] = (),
               claim: AnsweredClaim | None = None) -> None:
    """The tenant's messages per second and the per-recipient limit, counting every message, with the
    caller's own limits (an API key's requests) in the same decision: one Redis round trip.

    With a `claim` (a single send's Idempotency-Key) the same decision asks whether the key was seen
    in the last IDEMPOTENCY_RECOVERY_SECONDS: a repeat (a retry, or a concurrent duplicate) is counted
    in no limit and raises KeyTaken, to be answered as a repeat (smsportal/api/idempotency.py).

    Raises RateLimited (429), BatchTooLarge (a batch no wait would let through) or, for OTP messages
    with Redis down, RateLimiterUnavailable (503)."""
    messages = [draft.message for draft in live(drafts)]
    limits = [*request_limits, *message_limits(tenant=context.tenant, messages=messages)]
    for limit in limits:
        if limit.exceeds_burst:
            raise BatchTooLarge(_too_large_reason(limit), field="messages")
    first_use = None if claim is None else FirstUse(tenant_id=claim.tenant_id, subject=f"{claim.mode}:{claim.key}",
                                                    seconds=settings.IDEMPOTENCY_RECOVERY_SECONDS)
    decision = rate_limits_hit(limits, fail_closed=any(m.message_type == MessageType.OTP for m in messages),
                               first_use=first_use, riders=[rider for rider, _settle in context.riders])
    if decision.repeated:
        raise KeyTaken()
    if not decision.allowed:
        raise RateLimited(retry_after=decision.retry_after)
    for (_rider, settle), answer in zip(context.riders, decision.riders, strict=True):
        settle(answer)


def message_limits(*, tenant: Tenant, messages: Sequence[services.PreparedMessage]) -> list[Limit]:
    """The limits that count messages: the tenant's `messages_per_second`, and MESSAGE_DESTINATION_RATE_LIMIT
    per recipient number (per tenant), so a loop cannot pump one number."""
    if not messages:
        return []
    limits = [Limit(name="messages", tenant_id=tenant.pk, rate=tenant.messages_per_second, cost=len(messages))]
    if settings.MESSAGE_DESTINATION_RATE_LIMIT:
        rate, period = rate_parse(settings.MESSAGE_DESTINATION_RATE_LIMIT)
        limits += [Limit(name="destination", tenant_id=tenant.pk, subject=to, rate=rate, period=period, cost=count)
                   for to, count in Counter(message.to for message in messages).items()]
    otp = Counter(message.to for message in messages if message.message_type == MessageType.OTP)
    if otp and settings.MESSAGE_OTP_DESTINATION_RATE_LIMIT:
        # OTP codes to one number (issue 12: 5 an hour by default): what a pumping script or a stuck retry
        # loop spends; the same GCRA decision as every other limit, so still one round trip.
        rate, period = rate_parse(settings.MESSAGE_OTP_DESTINATION_RATE_LIMIT)
        limits += [Limit(name="otp_destination", tenant_id=tenant.pk, subject=to, rate=rate, period=period, cost=count)
                   for to, count in otp.items()]
    return limits


def _too_large_reason(limit: Limit) -> str:
    if limit.name in ("destination", "otp_destination"):
        return (f"{limit.cost} messages to {limit.subject}: at most {limit.burst or limit.rate} messages go to one "
                "number at once. Spread them out.")
    return (f"{limit.cost} messages in one request: your account's rate allows at most {limit.burst or limit.rate} "
            "at once. Send smaller batches.")


# --- 4. price and reserve ----------------------------------------------------------------------------


def price(context: AcceptContext, drafts: Sequence[Draft], *, reserve: bool) -> None:
    """Each registered price step (billing's rating) per message, then, for a send, each reserve step once over
    the priced messages (billing's hold). Without a price step a message has no price.

    A reserve's refusal refuses the whole request: it is raised with `limits_counted` set (step 3 counted the
    request already), and the caller's transaction rolls back whatever the steps wrote."""
    for step in registry.PRICE_STEPS:
        for draft in live(drafts):
            try:
                amount = step(context=context, message=draft.message, reserve=reserve)
            except DomainError as exc:  # e.g. no price for this destination
                draft.error = exc
            else:
                if isinstance(amount, registry.Price):
                    draft.price, draft.currency, draft.billed = amount.amount, amount.currency, amount.billed
                elif amount is not None:
                    draft.price = amount
    if not reserve:
        return
    for reserve_step in registry.RESERVE_STEPS:
        priced = live(drafts)
        if not priced:
            return
        try:
            if context.one_statement and reserve_step.statement is not None and reserve_step.folds(context):
                context.hold = reserve_step.statement(context=context, drafts=priced)
            else:
                reserve_step.function(context=context, drafts=priced)
        except DomainError as exc:
            exc.limits_counted = True
            raise


# --- 5. insert -------------------------------------------------------------------------------------------


def insert(context: AcceptContext, drafts: Sequence[Draft], *, claim: AnsweredClaim | None = None) -> None:
    """The messages, and their first events and `message.queued` outbox rows (a batch: one fan-out row): a few
    set-based statements whatever the batch size (store.py); a single send's `claim` goes in its statement."""
    store.messages_insert(context=context, drafts=live(drafts), claim=claim)


def unstored_notify(context: AcceptContext, drafts: Sequence[Draft], *, failed: bool) -> None:
    """Tell the checks that asked (context.unstored) which drafts were not stored: with `failed` (the request
    raised, its transaction rolled back) every draft, else the refused ones."""
    if not context.unstored:
        return
    unstored = list(drafts) if failed else [draft for draft in drafts if draft.id is None and draft.duplicate is None]
    if unstored:
        for hook in context.unstored:
            hook(unstored)


# --- 6. hand to dispatch, after commit -----------------------------------------------------------------


def dispatch(drafts: Sequence[Draft]) -> None:
    """Queued messages go to dispatch once the transaction commits (scheduled ones wait for the sweeper)."""
    by_queue: dict[str, list[int]] = {}
    accepted = live(drafts)
    for draft in accepted:
        if draft.status == Status.QUEUED:
            by_queue.setdefault(draft.message.message_type, []).append(draft.id)
    for queue, message_ids in by_queue.items():
        handoff.dispatch_handoff(message_ids=message_ids, queue=queue, stamped=store.is_bulk(len(accepted)))
