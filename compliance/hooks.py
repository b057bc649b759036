"""Hooks: what the apps above compliance register in their AppConfig.ready, so retention and erasure can redact
their rows (message bodies, inbound messages) without compliance importing them (.importlinter)."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class BodiesExpire(Protocol):
    def __call__(self, *, before: datetime, tenant_id: int | None = None,
                 exclude_tenant_ids: Collection[int] = ()) -> int:
        """Redact the bodies of rows created before `before` (of `tenant_id` only, or of every tenant but
        `exclude_tenant_ids`), keeping the metadata billing needs; bounded batches, safe to run twice at once.
        Returns how many rows were redacted."""


class NumberErase(Protocol):
    def __call__(self, *, tenant_id: int, phone: str) -> int:
        """Redact the tenant's rows about `phone` (bodies, and what names the person beyond billing's needs);
        returns how many rows. Called inside the erasure's transaction."""


@dataclass(frozen=True)
class Redactor:
    name: str  # the kind of row, as an erasure request counts it: "messages", "inbound"
    expire: BodiesExpire
    erase: NumberErase


_redactors: dict[str, Redactor] = {}


def redactor_register(*, name: str, expire: BodiesExpire, erase: NumberErase) -> None:
    """Register (or replace, as a reloaded app would) the redactor of one kind of row."""
    _redactors[name] = Redactor(name=name, expire=expire, erase=erase)


def redactors() -> list[Redactor]:
    return list(_redactors.values())


class OptOutListener(Protocol):
    def __call__(self, *, tenant_id: int, phone: str, scope: str, sender: str, pool_id: str) -> int:
        """A number was opted out or suppressed in a scope: act on what is waiting for it (messaging cancels the
        tenant's scheduled and queued messages the scope covers). Called in the transaction that recorded it;
        returns how many rows it changed."""


_opt_out_listeners: list[OptOutListener] = []


def opt_out_listener_register(listener: OptOutListener) -> None:
    """Register (once) a listener of opt-outs and suppressions."""
    if listener not in _opt_out_listeners:
        _opt_out_listeners.append(listener)


def opt_out_notify(*, tenant_id: int, phone: str, scope: str, sender: str, pool_id: str) -> int:
    return sum(listener(tenant_id=tenant_id, phone=phone, scope=scope, sender=sender, pool_id=pool_id)
               for listener in _opt_out_listeners)
