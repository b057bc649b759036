"""A generic HTTP partner: the request, its auth and the answer described in the carriers file; signed receipts.

Settings (as in the carriers file):

    "url": "https://partner.example/send", "method": "POST",          # POST, PUT, or GET (fields in the query)
    "auth": {"type": "bearer"},                                          # none | bearer | basic | header
    "body": {"format": "json", "fields": {"to": "{to}", "text": "{text}", "ref": "{id}", "dlr": "{receipt_url}"}},
    "response": {"message_id": "/id", "error_code": "/error/code"},   # JSON pointers into the answer
    "receipt": {"message_id": "/ref_id", "status": "/state", "error_code": "/err",
                "map": {"DELIVERED": "delivered", "FAILED": "undelivered"},
                "signature": "hmac-sha256", "signature_header": "X-Signature"},
    "inbound": {"from": "/from", "to": "/to", "text": "/text", "message_id": "/id"}

Templates in field values: {to} {from} {text} {id} (our reference) {receipt_url} {inbound_url}; nothing
else is interpreted. Auth: bearer sends `Authorization: Bearer <token>`; basic sends `auth.username` and the
`password` credential; header sends `auth.name: <token>`. Secrets come from the credentials `token`,
`password` and `receipt_secret`.

| answer | error |
| --- | --- |
| 2xx with the id at `response.message_id` | (Submitted; a JSON array there gives one id per part) |
| 2xx without it | RouteError carrier_answer_invalid |
| 429 | CarrierThrottled (Retry-After honoured) |
| 401, 403, 407 (our credentials) | RouteError carrier_auth_failed |
| 3xx (never followed), 404, 405, 408 | RouteError carrier_route_refused |
| 5xx | RouteError carrier_server_error |
| any other 4xx | PermanentError carrier_rejected |

Receipts and inbound messages are JSON (an object, or an array of them) or a form, signed with the shared
secret `receipt_secret`: by default `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`; with
`"signature": "token"` the secret itself in `X-Callback-Token` (header name: `signature_header`). There is no
timestamp, so a captured receipt can be replayed: harmless, as applying a receipt is idempotent. A status
missing from `map` becomes "unknown".
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from messaging.carriers.base import CarrierError, PermanentError, RouteError
from messaging.carriers.config import CarrierConfig, CarrierInbound, CarrierReceipt, OutboundMessage, Submitted
from messaging.carriers.http.transport import (
    HttpConnector,
    HttpRequest,
    answer_invalid,
    auth_refused,
    json_of,
    server_error,
    throttled,
)
from messaging.carriers.http.verify import Callback, CallbackRefused, equal, json_body, secret_of
from smsportal import outbound

STATUSES = frozenset({"accepted", "enroute", "delivered", "undelivered", "expired", "rejected", "failed", "unknown"})
_PLACEHOLDER = re.compile(r"\{(to|from|text|id|receipt_url|inbound_url)\}")
_ROUTE_STATUSES = frozenset({404, 405, 408})
_AUTH_STATUSES = frozenset({401, 403, 407})


class GenericConnector(HttpConnector):
    preset = "generic"

    def __init__(self, config: CarrierConfig) -> None:
        super().__init__(config)
        self.url = str(config.setting("url") or "")
        self.method = str(config.setting("method") or "POST").upper()
        body = config.setting("body") or {}
        self.format = str(body.get("format") or "json")
        self.fields = body.get("fields") or {}
        self.response_settings = config.setting("response") or {}
        if self.method not in ("POST", "PUT", "GET") or self.format not in ("json", "form"):
            raise ValueError(f"{config.name}: method must be POST, PUT or GET and body.format json or form.")
        self._headers = auth_headers(config)

    def request_for(self, message: OutboundMessage) -> HttpRequest:
        values = {"to": message.to, "from": message.sender, "text": message.text, "id": message.reference,
                  "receipt_url": self.config.receipt_url, "inbound_url": self.config.inbound_url}
        fields = fill(self.fields, values)
        if self.method == "GET":
            return HttpRequest("GET", _with_query(self.url, fields), self._headers)
        if self.format == "form":
            body = urlencode({name: _text(value) for name, value in fields.items()}).encode()
            return HttpRequest(self.method, self.url, {**self._headers, "Content-Type": "application/x-www-form-urlencoded"},
                               body)
        return HttpRequest(self.method, self.url, {**self._headers, "Content-Type": "application/json"},
                           json.dumps(fields).encode())

    def outcome_of(self, response: outbound.Response) -> Submitted:
        answer = json_of(response)
        if 200 <= response.status_code < 300:
            found = pointer_get(answer, str(self.response_settings.get("message_id") or "/id"))
            ids = tuple(_text(item) for item in (found if isinstance(found, list) else [found]) if item not in (None, ""))
            if not ids:
                raise answer_invalid(self.name, response, "a message id")
            return Submitted(ids)
        code = pointer_get(answer, str(self.response_settings.get("error_code") or "")) if answer is not None else None
        raise error_for(self.name, response, "" if code is None or isinstance(code, dict | list) else _text(code))


def error_for(name: str, response: outbound.Response, code: str) -> CarrierError:
    """The error a partner's answer that is not 2xx means (see the table above)."""
    status = response.status_code
    if status == 429:
        return throttled(name, response, carrier_error_code=code)
    if status in _AUTH_STATUSES:
        return auth_refused(name, response, carrier_error_code=code)
    if status < 400 or status in _ROUTE_STATUSES:
        return RouteError("carrier_route_refused", f"{name} refused the route (HTTP {status}).",
                          carrier_error_code=code)
    if status >= 500:
        return server_error(name, response, carrier_error_code=code)
    return PermanentError("carrier_rejected", f"{name} rejected the message (HTTP {status}).", carrier_error_code=code)


def auth_headers(config: CarrierConfig) -> dict[str, str]:
    auth = config.setting("auth") or {}
    kind, token = str(auth.get("type") or "none"), config.credentials.get("token", "")
    if kind == "none":
        return {}
    if kind == "bearer":
        return {"Authorization": f"Bearer {token}"}
    if kind == "basic":
        pair = f"{auth.get('username', '')}:{config.credentials.get('password', '')}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    if kind == "header" and auth.get("name"):
        return {str(auth["name"]): token}
    raise ValueError(f"{config.name}: auth.type must be none, bearer, basic or header (with a name).")


def fill(template: Any, values: dict[str, str]) -> Any:
    """The template with {placeholders} replaced in every string, inside objects and arrays too."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)
    if isinstance(template, dict):
        return {name: fill(value, values) for name, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    return template


def _with_query(url: str, fields: dict) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode({name: _text(value) for name, value in fields.items()})]))
    return urlunsplit(parts._replace(query=query))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def pointer_get(document: Any, pointer: str) -> Any:
    """The value at a JSON pointer (RFC 6901), or None where there is none."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        return None
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            return None
    return document


# --- callbacks --------------------------------------------------------------------------------------------


def verified_items(config: CarrierConfig, callback: Callback) -> list[dict]:
    """The callback's records (a JSON object or array, or a form) once its signature checks out."""
    secret = secret_of(config, "receipt_secret")
    settings = config.setting("receipt") or {}
    if str(settings.get("signature") or "hmac-sha256") == "token":
        name = str(settings.get("signature_header") or "X-Callback-Token")
        expected = secret.decode()
    else:
        name = str(settings.get("signature_header") or "X-Signature")
        expected = "sha256=" + hmac.new(secret, callback.body, hashlib.sha256).hexdigest()
    given = callback.header(name).strip()
    if not given:
        raise CallbackRefused("signature_missing", f"The callback has no {name}.")
    if not equal(expected, given):
        raise CallbackRefused("signature_invalid", f"The callback's {name} does not match.")
    return _items(callback)


def _items(callback: Callback) -> list[dict]:
    content_type = callback.header("Content-Type").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            return [dict(parse_qsl(callback.body.decode("utf-8"), keep_blank_values=True))]
        except UnicodeDecodeError:
            raise CallbackRefused("payload_invalid", "The callback body is not UTF-8.") from None
    document = json_body(callback.body)
    items = document if isinstance(document, list) else [document]
    if not all(isinstance(item, dict) for item in items):
        raise CallbackRefused("payload_invalid", "The callback body is not a JSON object or an array of them.")
    return items


def receipts(config: CarrierConfig, callback: Callback) -> list[CarrierReceipt]:
    settings = config.setting("receipt") or {}
    mapping = {str(raw): ours for raw, ours in (settings.get("map") or {}).items() if ours in STATUSES}
    found = []
    for item in verified_items(config, callback):
        message_id = _scalar(item, settings.get("message_id") or "/message_id")
        if not message_id:
            raise CallbackRefused("payload_invalid", "A receipt has no message id.")
        raw = _scalar(item, settings.get("status") or "/status")
        found.append(CarrierReceipt(carrier_message_id=message_id, status=mapping.get(raw, "unknown"),
                                    carrier_error_code=_scalar(item, settings.get("error_code") or ""), detail=raw))
    return found


def inbound(config: CarrierConfig, callback: Callback) -> list[CarrierInbound]:
    settings = config.setting("inbound") or {}
    found = []
    for item in verified_items(config, callback):
        values = {name: _scalar(item, settings.get(name) or f"/{name}") for name in ("from", "to", "text", "message_id")}
        if not (values["from"] and values["to"] and values["message_id"]):
            raise CallbackRefused("payload_invalid", "An inbound message lacks from, to or message_id.")
        found.append(CarrierInbound(to=values["to"], sender=values["from"], text=values["text"],
                                    carrier_message_id=values["message_id"]))
    return found


def _scalar(item: dict, pointer: str) -> str:
    """The text at `pointer` in a record ('' when absent or not a scalar); an empty pointer gives ''."""
    if not pointer:
        return ""
    value = pointer_get(item, str(pointer))
    if value is None or isinstance(value, dict | list):
        return ""
    return value if isinstance(value, str) else json.dumps(value)
