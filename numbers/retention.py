"""Numbers' part of retention and erasure (compliance/retention.py): inbound message bodies redacted.

A redacted inbound message keeps who it came from and when (the number's usage); its `text` and the code captured
from it are emptied. Registered in NumbersConfig.ready."""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from numbers.models import InboundMessage

from django.db import transaction

from compliance import consent

BATCH = 1000


def inbound_bodies_expire(*, before: datetime, tenant_id: int | None = None,
                          exclude_tenant_ids: Collection[int] = ()) -> int:
    """Bodies of inbound messages received before `before` (beat's retention sweep, run across tenants); in
    batches, skipping rows another sweep holds."""
    rows = InboundMessage.objects.filter(received_at__lt=before).exclude(text="", code="")
    rows = rows.filter(tenant_id=tenant_id) if tenant_id is not None else rows.exclude(tenant_id__in=exclude_tenant_ids)
    total = 0
    while True:
        with transaction.atomic():
            ids = list(rows.order_by().select_for_update(skip_locked=True).values_list("pk", flat=True)[:BATCH])
            if not ids:
                return total
            total += InboundMessage.objects.filter(pk__in=ids).update(text="", code="")


def inbound_bodies_erase(*, tenant_id: int, phone: str) -> int:
    """The tenant's inbound messages from `phone` (an erasure request, in its transaction): bodies and codes
    emptied, the sender masked to its leading digits (compliance.consent.number_masked)."""
    return (InboundMessage.objects.filter(tenant_id=tenant_id, sender=phone)
            .update(text="", code="", sender=consent.number_masked(phone)))
