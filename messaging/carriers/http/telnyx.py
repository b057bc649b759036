"""Telnyx's v2 Messaging API: send, the answer and its errors, and Ed25519-signed message webhooks.

From Telnyx's public docs: a message is `POST {base_url}/v2/messages` with `Authorization: Bearer {api_key}`
and JSON {from, to, text, webhook_url, use_profile_webhooks}; the answer's `data.id` is the carrier id; an
error is `{"errors": [{"code", "title", "detail"}]}`.

| answer | error | why |
| --- | --- | --- |
| 2xx with `data.id` | (Submitted) | |
| 2xx without it | RouteError carrier_answer_invalid | we could not match its receipts |
| 429, or code 10011 | CarrierThrottled | try again later |
| 401 / 403, code 10009 (authentication) / 10010 (authorization) | RouteError carrier_auth_failed | our credentials |
| 404, code 10005; 3xx (never followed) | RouteError carrier_route_refused | the base_url is wrong |
| 5xx, code 10007 (unexpected error) | RouteError carrier_server_error | |
| any other 4xx (40310 invalid to, 40305 invalid from, 10002 invalid number, ...) | PermanentError carrier_rejected | the destination, sender or text |

Webhooks carry `telnyx-signature-ed25519` (base64) over `f"{telnyx-timestamp}|{raw body}"`, checked with the
account's public key (setting `public_key`, base64 of the 32-byte key). A timestamp more than
`callback_tolerance_seconds` (default 300) away from now is refused, so a captured webhook cannot be
replayed later.
"""
from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from messaging.carriers.base import CarrierError, PermanentError, RouteError
from messaging.carriers.config import CarrierConfig, CarrierInbound, CarrierReceipt, OutboundMessage, Submitted
from messaging.carriers.http.transport import (
    HttpConnector,
    HttpRequest,
    answer_invalid,
    auth_refused,
    detail,
    json_of,
    server_error,
    throttled,
)
from messaging.carriers.http.verify import Callback, CallbackRefused, json_body
from smsportal import outbound

DEFAULT_BASE_URL = "https://api.telnyx.com"
DEFAULT_TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
RECEIPT_EVENTS = frozenset({"message.sent", "message.finalized"})

# Telnyx's per-recipient status in our vocabulary.
STATUSES = {
    "queued": "accepted", "sending": "enroute", "sent": "enroute",
    "delivered": "delivered", "delivery_failed": "undelivered", "sending_failed": "failed",
    "expired": "expired", "delivery_unconfirmed": "unknown",
}


class TelnyxConnector(HttpConnector):
    """Settings: `base_url`, optional `messaging_profile_id`, `public_key` (for webhooks); credential `api_key`."""

    preset = "telnyx"

    def __init__(self, config: CarrierConfig) -> None:
        super().__init__(config)
        base_url = str(config.setting("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.url = f"{base_url}/v2/messages"
        self._headers = {"Authorization": f"Bearer {config.credentials.get('api_key', '')}",
                         "Content-Type": "application/json", "Accept": "application/json"}

    def request_for(self, message: OutboundMessage) -> HttpRequest:
        fields: dict[str, Any] = {"from": message.sender, "to": message.to, "text": message.text}
        if self.config.public_base_url:
            # Receipts for this message to our URL, not to the messaging profile's. Telnyx tries a URL up to 3
            # times on a failure (our 503 `receipt_unmatched`), then the failover URL: ours again, 3 more tries.
            fields.update(webhook_url=self.config.receipt_url, webhook_failover_url=self.config.receipt_url,
                          use_profile_webhooks=False)
        if self.config.setting("messaging_profile_id"):
            fields["messaging_profile_id"] = self.config.setting("messaging_profile_id")
        return HttpRequest("POST", self.url, self._headers, json.dumps(fields).encode())

    def outcome_of(self, response: outbound.Response) -> Submitted:
        answer = json_of(response)
        answer = answer if isinstance(answer, dict) else {}
        if 200 <= response.status_code < 300:
            data = answer.get("data")
            message_id = data.get("id") if isinstance(data, dict) else None
            if not isinstance(message_id, str) or not message_id:
                raise answer_invalid(self.name, response, "data.id")
            return Submitted((message_id,))
        first = _first_error(answer)
        raise error_for(self.name, response, str(first.get("code") or ""),
                        detail(first.get("detail") or first.get("title")))


def _first_error(answer: dict) -> dict:
    errors = answer.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return {}


def error_for(name: str, response: outbound.Response, code: str, message: str) -> CarrierError:
    """The error a Telnyx answer that is not 2xx means (see the table above)."""
    status = response.status_code
    if status == 429 or code == "10011":
        return throttled(name, response, carrier_error_code=code)
    if status in (401, 403) or code in ("10009", "10010"):
        return auth_refused(name, response, carrier_error_code=code)
    if status == 404 or code == "10005" or status < 400:
        return RouteError("carrier_route_refused", f"{name} refused the route (HTTP {status}): {message}",
                          carrier_error_code=code)
    if status >= 500 or code == "10007":
        return server_error(name, response, carrier_error_code=code)
    return PermanentError("carrier_rejected", f"{name} rejected the message: {message}", carrier_error_code=code)


# --- webhooks ---------------------------------------------------------------------------------------------


def public_key_of(config: CarrierConfig) -> Ed25519PublicKey:
    text = config.setting("public_key") or ""
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise CallbackRefused("not_configured", f"{config.name} has no valid Telnyx public_key.") from None


def verified_event(config: CarrierConfig, callback: Callback) -> dict:
    """The webhook's `data` once its signature and timestamp check out; raises CallbackRefused."""
    key = public_key_of(config)
    given, timestamp = callback.header(SIGNATURE_HEADER), callback.header(TIMESTAMP_HEADER).strip()
    if not given or not timestamp:
        raise CallbackRefused("signature_missing", f"The webhook lacks {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}.")
    try:
        key.verify(base64.b64decode(given, validate=True), timestamp.encode() + b"|" + callback.body)
        signed_at = int(timestamp)
    except (binascii.Error, ValueError, InvalidSignature):
        raise CallbackRefused("signature_invalid", "The Telnyx webhook signature does not verify.") from None
    now = (callback.now or datetime.now(UTC)).timestamp()
    tolerance = float(config.setting("callback_tolerance_seconds", DEFAULT_TOLERANCE_SECONDS))
    if abs(now - signed_at) > tolerance:
        raise CallbackRefused("timestamp_stale", f"The webhook was signed {now - signed_at:.0f} s from now.")
    document = json_body(callback.body)
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("payload"), dict):
        raise CallbackRefused("payload_invalid", "The webhook has no data.payload.")
    return data


def receipts(config: CarrierConfig, callback: Callback) -> list[CarrierReceipt]:
    """message.sent / message.finalized as one receipt (the status of the first recipient); other events: none."""
    data = verified_event(config, callback)
    if data.get("event_type") not in RECEIPT_EVENTS:
        return []
    payload = data["payload"]
    message_id, recipient, error = payload.get("id"), _first(payload.get("to")), _first(payload.get("errors"))
    if not isinstance(message_id, str) or not message_id:
        raise CallbackRefused("payload_invalid", "The webhook's payload has no id.")
    raw = str(recipient.get("status") or "")
    return [CarrierReceipt(carrier_message_id=message_id, status=STATUSES.get(raw, "unknown"),
                           carrier_error_code=str(error.get("code") or ""), detail=raw,
                           done_at=_time(payload.get("completed_at")))]


def inbound(config: CarrierConfig, callback: Callback) -> list[CarrierInbound]:
    """message.received as one inbound message; other events: none."""
    data = verified_event(config, callback)
    if data.get("event_type") != "message.received":
        return []
    payload = data["payload"]
    sender, to = _first([payload.get("from")]).get("phone_number"), _first(payload.get("to")).get("phone_number")
    message_id = payload.get("id")
    if not all(isinstance(value, str) and value for value in (sender, to, message_id)):
        raise CallbackRefused("payload_invalid", "The inbound webhook lacks id, from or to.")
    return [CarrierInbound(to=to, sender=sender, text=str(payload.get("text") or ""), carrier_message_id=message_id,
                           received_at=_time(payload.get("received_at")))]


def _first(items: Any) -> dict:
    return items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}


def _time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
