"""The accept pipeline's registries: policy checks (step 2) and pricing (step 4).

Other apps plug into accept here without messaging importing them: compliance registers its
consent, suppression, content, sender-ID, geo and quiet-hour checks with `policy_check`, billing
its rating with `price_step` and its hold with `reserve_step` (docs/send-pipeline.md). Registration happens at import,
from the registering app's `AppConfig.ready()`; the order of registration is the order of running.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from messaging.accept.steps import AcceptContext, Draft
    from messaging.services import PreparedMessage


class PolicyCheckFunction(Protocol):
    def __call__(self, *, context: AcceptContext, message: PreparedMessage) -> PreparedMessage | None:
        """Refuse with a DomainError (its code, field and message), or pass: None, or the message as changed."""


class PriceFunction(Protocol):
    def __call__(self, *, context: AcceptContext, message: PreparedMessage, reserve: bool) -> Decimal | Price | None:
        """The message's price (None: not priced); with `reserve` (a send, not a quote) also hold the amount.

        Raise a DomainError to refuse the message (billing: `no_price_for_destination`)."""


class ReserveFunction(Protocol):
    def __call__(self, *, context: AcceptContext, drafts: Sequence[Draft]) -> None:
        """Hold the price of the priced `drafts` of a send, in the accept's transaction, or raise a DomainError
        that refuses the whole request (billing: `insufficient_balance`, 402); the transaction then rolls back."""


class ReserveStatementFunction(Protocol):
    def __call__(self, *, context: AcceptContext, drafts: Sequence[Draft]) -> Any | None:
        """The same hold as CTEs of a single send's insert statement (billing.services.HoldStatement), or None
        when there is nothing to hold. Called instead of the ReserveFunction when the send is one statement."""


@dataclass(frozen=True)
class Price:
    """A price with its currency; `billed` false: shown, never charged (test keys)."""

    amount: Decimal
    currency: str
    billed: bool = True


@dataclass(frozen=True)
class ReserveStep:
    """A registered reserve: `writes(context)` says whether it writes for this send (a live one), so the
    pipeline knows whether the single send may stay one statement without a transaction; `statement`, when
    `folds(context)`, gives its writes as CTEs of that one statement instead (billing's hold)."""

    function: ReserveFunction
    writes: Callable[[AcceptContext], bool]
    statement: ReserveStatementFunction | None = None
    folds: Callable[[AcceptContext], bool] = lambda context: False


class PolicyPrepareFunction(Protocol):
    def __call__(self, *, context: AcceptContext, drafts: Sequence[Draft]) -> None:
        """See the request's live drafts at once before the check runs per message (one lookup for a batch,
        kept in context.memo)."""


@dataclass(frozen=True)
class PolicyCheck:
    """A registered check: `codes` are the stable error codes it may answer (documented, tested)."""

    name: str
    codes: tuple[str, ...]
    function: PolicyCheckFunction
    prepare: PolicyPrepareFunction | None = None


POLICY_CHECKS: list[PolicyCheck] = []
PRICE_STEPS: list[PriceFunction] = []
# Price steps registered with writes=False (rating from memory): they do not make the pipeline open a transaction.
PURE_PRICE_STEPS: list[PriceFunction] = []
RESERVE_STEPS: list[ReserveStep] = []


def policy_check(name: str, *, codes: tuple[str, ...], prepare: PolicyPrepareFunction | None = None,
                 ) -> Callable[[PolicyCheckFunction], PolicyCheckFunction]:
    """Register a policy check under `name` (a second registration of the name replaces the first); `prepare`,
    when given, runs once per request over its live drafts before the check's per-message calls."""

    def register(function: PolicyCheckFunction) -> PolicyCheckFunction:
        check = PolicyCheck(name=name, codes=codes, function=function, prepare=prepare)
        index = next((i for i, known in enumerate(POLICY_CHECKS) if known.name == name), None)
        if index is None:
            POLICY_CHECKS.append(check)
        else:
            POLICY_CHECKS[index] = check
        return function

    return register


def price_step(function: PriceFunction, *, writes: bool = True) -> PriceFunction:
    """Register a pricing function; the last one that returns a price sets it. `writes=False`: it never
    writes (it may read), so a single send it prices can still be one statement."""
    if function not in PRICE_STEPS:
        PRICE_STEPS.append(function)
    if not writes and function not in PURE_PRICE_STEPS:
        PURE_PRICE_STEPS.append(function)
    return function


def reserve_step(*, writes: Callable[[AcceptContext], bool], statement: ReserveStatementFunction | None = None,
                 folds: Callable[[AcceptContext], bool] | None = None,
                 ) -> Callable[[ReserveFunction], ReserveFunction]:
    """Register a reserve, run once per send over its priced drafts after every price step. With `statement`
    and `folds`: a single send for which `folds(context)` holds takes the reserve in its insert's statement."""

    def register(function: ReserveFunction) -> ReserveFunction:
        if all(step.function is not function for step in RESERVE_STEPS):
            RESERVE_STEPS.append(ReserveStep(function=function, writes=writes, statement=statement,
                                             folds=folds or (lambda context: False)))
        return function

    return register


def price_writes(context: AcceptContext, *, single: bool = False) -> bool:
    """Whether step 4 may write for this send, beside the insert: a price step that writes, or a reserve that
    does for it (for a `single` send, one whose writes cannot fold into the insert's statement). At most one
    reserve folds: the insert statement has room for one."""
    if any(step not in PURE_PRICE_STEPS for step in PRICE_STEPS):
        return True
    writing = [step for step in RESERVE_STEPS if step.writes(context)]
    if not single:
        return bool(writing)
    return len(writing) > 1 or any(step.statement is None or not step.folds(context) for step in writing)
