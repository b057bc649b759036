"""Hooks: what the apps above numbers register in their AppConfig.ready, so numbers can call up without
importing them (the dependency direction import-linter enforces: .importlinter)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class HelpReplySender(Protocol):
    """Sends the answer to a HELP (a transactional message) and returns it; raises a DomainError when the
    send is refused. Registered by messaging (messaging/apps.py)."""

    def __call__(self, *, tenant, mode: str, to: str, sender: str, text: str, metadata: dict) -> object: ...


_help_reply_sender: list[HelpReplySender] = []


def help_reply_sender_register(sender: HelpReplySender) -> None:
    """Set the HELP reply sender (one: registering again replaces it, as a reloaded app would)."""
    _help_reply_sender[:] = [sender]


def help_reply_sender() -> HelpReplySender:
    if not _help_reply_sender:
        raise RuntimeError("no HELP reply sender registered: messaging registers one in MessagingConfig.ready")
    return _help_reply_sender[0]


@dataclass(frozen=True)
class NumberPriceShown:
    """What a number costs the tenant, as the numbers pages and API show it (billing's number prices): string
    decimals, as billing shows money ("1.1500")."""

    monthly_rental: str
    lease_per_hour: str
    currency: str


class NumberPrices(Protocol):
    """The tenant's number prices in force today: {(number type, country): price}, in one query. Registered
    by billing (billing/apps.py), which numbers may not import."""

    def __call__(self, *, tenant) -> dict[tuple[str, str], NumberPriceShown]: ...


_number_prices: list[NumberPrices] = []


def number_prices_register(prices: NumberPrices) -> None:
    """Set the number price lookup (one: registering again replaces it)."""
    _number_prices[:] = [prices]


def number_prices(*, tenant) -> dict[tuple[str, str], NumberPriceShown]:
    if not _number_prices:
        raise RuntimeError("no number price lookup registered: billing registers one in BillingConfig.ready")
    return _number_prices[0](tenant=tenant)


__all__: list[str] = ["HelpReplySender", "NumberPriceShown", "NumberPrices", "help_reply_sender",
                      "help_reply_sender_register", "number_prices", "number_prices_register"]
