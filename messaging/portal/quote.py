"""The quote panel of the send page: a body's encoding and segments, as shown live and after "Check length"."""
from __future__ import annotations

from typing import TYPE_CHECKING

from billing.money import money_text
from messaging import accept, encoding, services
from messaging.portal.forms import QuoteForm
from smsportal.errors import DomainError

if TYPE_CHECKING:
    from accounts.models import Tenant

# encoding -> (units in a single SMS, units per part of a multipart one)
LIMITS = {
    encoding.GSM7: (encoding.GSM7_SINGLE_SEGMENT_SEPTETS, encoding.GSM7_MULTIPART_SEPTETS),
    encoding.UCS2: (encoding.UCS2_SINGLE_SEGMENT_UNITS, encoding.UCS2_MULTIPART_UNITS),
}
UNIT_NAMES = {encoding.GSM7: "septets", encoding.UCS2: "UTF-16 units"}


def quote_panel(*, tenant: Tenant, form: QuoteForm) -> dict:
    """The panel's context: `quote` and its figures, or `error` ({code, message, field}), or neither (no body yet)."""
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        return {"error": {"code": "invalid", "message": errors[0], "field": field}}
    if form.is_empty:
        return {}
    try:
        quote = services.message_quote_text(tenant=tenant, **form.body(), sender=form.cleaned_data["sender"])
    except DomainError as exc:
        return {"error": {"code": exc.code, "message": exc.message, "field": exc.field}}
    analysis = quote.analysis
    single, multipart = LIMITS[analysis.encoding]
    return {
        "quote": analysis,
        "summary": summary(analysis),
        "unit_name": UNIT_NAMES[analysis.encoding],
        "single_limit": single,
        "multipart_limit": multipart,
        "room_left": _room_left(analysis),
        "max_segments": tenant.max_message_segments,
        "too_long": analysis.segment_count > tenant.max_message_segments,
        "segments_saved": analysis.original_segment_count - analysis.segment_count,
        "marked_body": _marked(quote.body, analysis.ucs2_characters),
        "smart_encoding": form.cleaned_data["smart_encoding"],
        "from_template": form.body()["template"] is not None,
        **_price(tenant=tenant, form=form),
    }


def _price(*, tenant: Tenant, form: QuoteForm) -> dict:
    """The price of a send of this message, as the pipeline's steps up to pricing make it (the API's quote):
    `price` ({amount, currency, billed}), or `price_error` (the recipient, the sender or the destination
    refused), or `price_hint` while the recipient or sender is missing. None of them with billing off."""
    fields = form.price_fields()
    if fields is None:
        return {"price_hint": "Enter the recipient and the sender to see the price."}
    (draft,) = accept.messages_quote(tenant=tenant, api_key=None, items=[fields])
    if draft.error is not None:
        return {"price_error": getattr(draft.error, "message", None) or str(draft.error)}
    if draft.price is None:
        return {}
    return {"price": {"amount": draft.price, "currency": draft.currency, "billed": draft.billed}}


def quote_json(panel: dict) -> dict:
    """The figures of a panel under the names POST /v1/messages/quote uses."""
    analysis = panel.get("quote")
    if analysis is None:
        return {"error": panel["error"]} if "error" in panel else {}
    return {
        "encoding": analysis.encoding, "segments": analysis.segment_count, "characters": analysis.characters,
        "units": analysis.units, "text": analysis.text, "smart_encoded": analysis.smart_encoded,
        "segments_without_smart_encoding": analysis.original_segment_count,
        "ucs2_characters": analysis.ucs2_characters, "max_segments": panel["max_segments"],
        "summary": panel["summary"],
        "price": money_text(panel["price"]["amount"]) if "price" in panel else None,
        "currency": panel["price"]["currency"] if "price" in panel else None,
        "billed": panel["price"]["billed"] if "price" in panel else None,
    }


def summary(analysis: encoding.EncodingResult) -> str:
    """"161 characters · 2 segments · GSM-7"."""
    chars, segments = analysis.characters, analysis.segment_count
    return (f"{chars} character{'' if chars == 1 else 's'} · {segments} segment{'' if segments == 1 else 's'}"
            f" · {analysis.encoding}")


def _room_left(analysis: encoding.EncodingResult) -> int:
    """Units the last segment can still take before the message needs another one."""
    single, multipart = LIMITS[analysis.encoding]
    if analysis.segment_count == 1:
        return single - analysis.units
    return multipart - _units(analysis.segments[-1], analysis.encoding)


def _units(text: str, kind: str) -> int:
    # Escaped GSM-7 characters take two septets; characters beyond the BMP take two UTF-16 units.
    if kind == encoding.GSM7:
        return len(text) + sum(char in encoding.GSM7_EXTENSION_TABLE for char in text)
    return len(text.encode("utf-16-le")) // 2


def _marked(body: str, ucs2_characters: list[encoding.UCS2Character]) -> list[dict]:
    """`body` in runs of plain text and single characters that force UCS-2 (to highlight them)."""
    forcing = {c["position"]: c for c in ucs2_characters}
    parts: list[dict] = []
    for position, char in enumerate(body):
        if position in forcing:
            parts.append({"text": char, "ucs2": forcing[position]})
        elif parts and not parts[-1]["ucs2"]:
            parts[-1]["text"] += char
        else:
            parts.append({"text": char, "ucs2": None})
    return parts
