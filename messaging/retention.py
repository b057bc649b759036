"""Messaging's part of retention and erasure (compliance/retention.py): message bodies redacted, the rest kept.

A redacted message keeps what billing and the invoices need (recipient, price, parts, encoding, status, times):
only `text` is emptied (and `error_message`, which can quote it). An erasure also masks the recipient to its
leading digits. Registered in MessagingConfig.ready."""
from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from django.db import transaction

from compliance import consent
from messaging.models import Message

BATCH = 1000


def _redact_batches(rows) -> int:
    """Empty the bodies of `rows` in batches of BATCH, skipping rows another sweep holds: safe to run twice."""
    total = 0
    while True:
        with transaction.atomic():
            ids = list(rows.exclude(text="").order_by().select_for_update(skip_locked=True)
                       .values_list("pk", flat=True)[:BATCH])
            if not ids:
                return total
            total += Message.objects.filter(pk__in=ids).update(text="", error_message="")


def message_bodies_expire(*, before: datetime, tenant_id: int | None = None,
                          exclude_tenant_ids: Collection[int] = ()) -> int:
    """Bodies of messages accepted before `before` (beat's retention sweep, run across tenants)."""
    rows = Message.objects.filter(created_at__lt=before)
    rows = rows.filter(tenant_id=tenant_id) if tenant_id is not None else rows.exclude(tenant_id__in=exclude_tenant_ids)
    return _redact_batches(rows)


def message_bodies_erase(*, tenant_id: int, phone: str) -> int:
    """The tenant's messages to `phone` (an erasure request, in its transaction): bodies emptied and the recipient
    masked to its leading digits (compliance.consent.number_masked), which is all billing reads of it."""
    return Message.objects.filter(tenant_id=tenant_id, to=phone).update(text="", error_message="",
                                                                        to=consent.number_masked(phone))
