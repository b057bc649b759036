"""Hooks: what the apps above billing register in their AppConfig.ready, so billing can name their objects without
importing them (the dependency direction import-linter enforces: .importlinter)."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

# (tenant, message primary keys) -> their public ids (`msg_…`): the ledger stores the key only.
MessagePublicIds = Callable[..., dict[int, str]]

_message_public_ids: list[MessagePublicIds] = []


def message_public_ids_register(lookup: MessagePublicIds) -> None:
    """Set the lookup (one: registering again replaces it). Registered by messaging (messaging/hooks.py)."""
    _message_public_ids[:] = [lookup]


def message_public_ids(*, tenant, keys: Iterable[int]) -> dict[int, str]:
    """The public ids of the tenant's messages among `keys` (one query; none when no key is given)."""
    keys = [key for key in keys if key is not None]
    if not keys:
        return {}
    if not _message_public_ids:
        raise RuntimeError("no message id lookup registered: messaging registers one in MessagingConfig.ready")
    return _message_public_ids[0](tenant=tenant, keys=keys)


# --- usage by country (the portal's Billing pages and the savings calculator) ---------------------------------
# (tenant, first day, last day, both included, UTC) -> the tenant's billed messages less those never charged, one
# row per recipient country and message type: {"country", "message_type", "messages", "segments", "amount"}.
MessageUsage = Callable[..., list[dict]]

_message_usage: list[MessageUsage] = []


def message_usage_register(lookup: MessageUsage) -> None:
    """Set the lookup (one: registering again replaces it). Registered by messaging (messaging/hooks.py)."""
    _message_usage[:] = [lookup]


def message_usage(*, tenant, start, end) -> list[dict]:
    """The tenant's usage by country and type from day `start` to day `end` (see MessageUsage)."""
    if not _message_usage:
        raise RuntimeError("no message usage lookup registered: messaging registers one in MessagingConfig.ready")
    return _message_usage[0](tenant=tenant, start=start, end=end)


# --- captured usage (invoice lines) ---------------------------------------------------------------------------
# (tenant, start, end, currency) -> the billed messages whose hold was captured in [start, end) (whenever they were
# accepted), per country and message type, `amount` what their captures charged:
# [{"country", "message_type", "messages", "segments", "amount"}].
_message_usage_captured: list[MessageUsage] = []


def message_usage_captured_register(lookup: MessageUsage) -> None:
    """Set the lookup (one: registering again replaces it). Registered by messaging (messaging/hooks.py)."""
    _message_usage_captured[:] = [lookup]


def message_usage_captured(*, tenant, start: datetime, end: datetime, currency: str) -> list[dict]:
    """What the tenant's messages captured from `start` (included) to `end` (excluded) were charged, in
    `currency`, by (country, message_type), sorted; `amount` is a Decimal, unrounded."""
    if not _message_usage_captured:
        raise RuntimeError("no captured usage lookup registered: messaging registers one in MessagingConfig.ready")
    return _message_usage_captured[0](tenant=tenant, start=start, end=end, currency=currency)


# --- operators (repricing a capture by an operator's price) ---------------------------------------------------
# (E.164 numbers) -> {number: "MCC-MNC" or ""}: the destination's mobile operator as routing knows it (a cached
# number-portability or HLR lookup, ROUTING_OPERATOR_LOOKUP); {} when the deployment has none.
OperatorsOf = Callable[[Iterable[str]], dict[str, str]]

_operators_of: list[OperatorsOf] = []


def operators_of_register(lookup: OperatorsOf) -> None:
    """Set the lookup (one: registering again replaces it). Registered by messaging (messaging/hooks.py)."""
    _operators_of[:] = [lookup]


def operators_of(numbers: Iterable[str]) -> dict[str, str]:
    """Each number's operator ("MCC-MNC", or "" / missing when not known); {} without a registered lookup."""
    return _operators_of[0](numbers) if _operators_of else {}
