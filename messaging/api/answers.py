"""The JSON answers of the send endpoints, built by hand from the pipeline's drafts.

The same fields as MessageSerializer (which documents them in the schema), without a serializer
and a database read on the hot path.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from rest_framework.exceptions import ValidationError

from billing.money import money_text
from messaging.accept import Draft
from messaging.api.serializers import MessageSerializer
from smsportal.api.exceptions import error_body, validation_error_body


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


def message_answer(draft: Draft) -> dict:
    """An accepted message, as GET /v1/messages/{id} shows it right after the send; a deduplicated OTP: the
    earlier message, with `deduplicated: true`."""
    if draft.duplicate is not None:
        return {**MessageSerializer(draft.duplicate).data, "deduplicated": True}
    prepared, analysis = draft.message, draft.message.analysis
    return {
        "id": draft.public_id, "status": draft.status, "to": prepared.to, "from": prepared.sender,
        "pool": prepared.pool.name if prepared.pool else None, "text": analysis.text, "encoding": analysis.encoding,
        "segments": analysis.segment_count, "characters": analysis.characters,
        "message_type": prepared.message_type, "created_at": _iso(draft.created_at),
        "scheduled_at": _iso(prepared.scheduled_at), "scheduled_reason": prepared.scheduled_reason or None,
        "expires_at": _iso(draft.expires_at),
        "client_reference": prepared.client_reference, "metadata": prepared.metadata,
        "price": money_text(draft.price), "currency": draft.currency or None, "billed": draft.billed,
        "sender_substituted": prepared.sender_substituted,
    }



def error_of(exc: Exception) -> dict:
    """The `error` object of a refused item, shaped like the error answer of a single send."""
    if isinstance(exc, ValidationError):
        return validation_error_body(exc.detail)["error"]
    error = error_body(exc.code, exc.message, exc.field)["error"]
    if getattr(exc, "reason", None):
        error["reason"] = exc.reason
    return error


def batch_answer(drafts: Sequence[Draft]) -> dict:
    """{"accepted", "rejected", "results": [{"index", "id", "status"} | {"index", "error"}]}, by index."""
    results = [_accepted(d) if d.error is None else {"index": d.index, "error": error_of(d.error)} for d in drafts]
    rejected = sum(1 for d in drafts if d.error is not None)
    answer = {"accepted": len(drafts) - rejected, "rejected": rejected, "results": results}
    if rejected == len(drafts):  # answered 400: the error shape of every other refusal, beside the results
        answer |= error_body("batch_rejected", "No message of the batch was accepted; see `results`.")
    return answer


def _accepted(draft: Draft) -> dict:
    if draft.duplicate is not None:
        return {"index": draft.index, "id": draft.duplicate.public_id, "status": draft.duplicate.status,
                "deduplicated": True}
    result = {"index": draft.index, "id": draft.public_id, "status": draft.status}
    if draft.message.scheduled_reason:
        result["scheduled_reason"] = draft.message.scheduled_reason
    if draft.message.sender_substituted:
        result["sender_substituted"] = draft.message.sender_substituted
    if draft.price is not None:
        result |= {"price": money_text(draft.price), "currency": draft.currency, "billed": draft.billed}
    return result
