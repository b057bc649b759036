"""The accept pipeline's registries: policy checks (step 2) and pricing (step 4).

Other apps plug into accept here without messaging importing them: compliance registers its
consent, suppression, content, sender-ID, geo and quiet-hour checks with `policy_check`, billing
its rating and reserve with `price_step` (docs/send-pipeline.md). Registration happens at import,
from the registering app's `AppConfig.ready()`; the order of registration is the order of running.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from messaging.accept.steps import AcceptContext
    from messaging.services import PreparedMessage


class PolicyCheckFunction(Protocol):
    def __call__(self, *, context: AcceptContext, message: PreparedMessage) -> PreparedMessage | None:
        """Refuse with a DomainError (its code, field and message), or pass: None, or the message as changed."""


class PriceFunction(Protocol):
    def __call__(self, *, context: AcceptContext, message: PreparedMessage, reserve: bool) -> Decimal | None:
        """The message's price (None: not priced); with `reserve` (a send, not a quote) also hold the amount."""


@dataclass(frozen=True)
class PolicyCheck:
    """A registered check: `codes` are the stable error codes it may answer (documented, tested)."""

    name: str
    codes: tuple[str, ...]
    function: PolicyCheckFunction


POLICY_CHECKS: list[PolicyCheck] = []
PRICE_STEPS: list[PriceFunction] = []


def policy_check(name: str, *, codes: tuple[str, ...]) -> Callable[[PolicyCheckFunction], PolicyCheckFunction]:
    """Register a policy check under `name` (a second registration of the name replaces the first)."""

    def register(function: PolicyCheckFunction) -> PolicyCheckFunction:
        check = PolicyCheck(name=name, codes=codes, function=function)
        index = next((i for i, known in enumerate(POLICY_CHECKS) if known.name == name), None)
        if index is None:
            POLICY_CHECKS.append(check)
        else:
            POLICY_CHECKS[index] = check
        return function

    return register


def price_step(function: PriceFunction) -> PriceFunction:
    """Register a pricing function; the last one that returns a price sets it."""
    if function not in PRICE_STEPS:
        PRICE_STEPS.append(function)
    return function
