"""Hooks: what the apps above billing register in their AppConfig.ready, so billing can name their objects without
importing them (the dependency direction import-linter enforces: .importlinter)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

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
