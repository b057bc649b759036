"""Hooks: what the apps above numbers register in their AppConfig.ready, so numbers can call up without
importing them (the dependency direction import-linter enforces: .importlinter)."""
from __future__ import annotations

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


__all__: list[str] = ["HelpReplySender", "help_reply_sender", "help_reply_sender_register"]
