"""What messaging does when a number opts out (compliance/hooks.py): the tenant's messages to it that are still
waiting (scheduled, or queued and not yet claimed by dispatch) in a scope the opt-out covers are canceled, so
nothing accepted before a STOP goes out after it. A message dispatch already claimed (`sending`) is on its way."""
from __future__ import annotations

from messaging.lifecycle import messages_transition
from messaging.models import Message, MessageEvent, Status

WAITING = frozenset({Status.SCHEDULED, Status.QUEUED})


def messages_cancel_opted_out(*, tenant_id: int, phone: str, scope: str, sender: str, pool_id: str) -> int:
    """Cancel the tenant's waiting messages to `phone` from the scope's senders (every sender for `tenant`); row
    locks in messages_transition decide a race with dispatch's claim: canceled, or claimed, never both."""
    rows = Message.objects.filter(tenant_id=tenant_id, to=phone, status__in=WAITING)
    if scope == "sender":
        rows = rows.filter(sender=sender)
    elif scope == "pool":
        rows = rows.filter(pool__public_id=pool_id)
    ids = list(rows.values_list("pk", flat=True))
    if not ids:
        return 0
    return len(messages_transition(message_ids=ids, to=Status.CANCELED, source=MessageEvent.Source.API,
                                   detail="recipient opted out", error_code="recipient_opted_out",
                                   expected=WAITING))
