"""Twilio's Programmable Messaging API: send, the answer and its errors, and signed status and inbound callbacks.

From Twilio's public docs: a message is a form POST to
`{base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with basic auth (AccountSid:AuthToken) and
To, From, Body, StatusCallback; the answer's `sid` (SM...) is the carrier id; an error is JSON
`{"code", "message", "more_info", "status"}`.

| answer | error | why |
| --- | --- | --- |
| 2xx with `sid` | (Submitted) | |
| 2xx without `sid` | RouteError carrier_answer_invalid | we could not match its receipts |
| 429, or code 20429 / 21611 (the From number's queue is full) | CarrierThrottled | try again later |
| 401 / 403, code 20003 (authenticate), 20005 (account not active) | RouteError carrier_auth_failed | our credentials |
| 404, code 20404; code 21408 (region not enabled for our account) | RouteError carrier_route_refused | this route, not the number |
| 3xx (never followed) | RouteError carrier_route_refused | the base_url is wrong |
| 5xx | RouteError carrier_server_error | |
| any other 4xx (21211 invalid To, 21614 not a mobile, 21610 unsubscribed, 21606 bad From, 21617 too long, ...) | PermanentError carrier_rejected | the destination, sender or text |

Callbacks are signed with `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + each POST parameter's
name and value, names sorted)). Like Twilio's own helper libraries we accept the URL with and without its
port (Twilio's signing is inconsistent about it), sort and deduplicate repeated values of a name, and for a
JSON body signed through the URL's `bodySHA256` parameter, check the body's SHA-256 and sign the URL alone.

Twilio does not retry a StatusCallback that fails with a 5xx unless the URL asks it to: we append Twilio's
connection overrides as a fragment (`#rc=5&rp=ct,rt,5xx`: up to 5 retries on a connect or read timeout or a
5xx, within Twilio's total-time limit of 15 s), so a receipt we answer 503 (`receipt_unmatched`, its carrier id
not stored yet) comes again. The fragment never reaches our server, and which form Twilio signs is not
documented, so a callback is checked against the URL as called and against it with our fragment.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlparse

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
from messaging.carriers.http.verify import Callback, CallbackRefused, equal, json_body, secret_of
from smsportal import outbound

DEFAULT_BASE_URL = "https://api.twilio.com"
THROTTLE_CODES = frozenset({"20429", "21611"})
AUTH_CODES = frozenset({"20003", "20005"})
ROUTE_CODES = frozenset({"20404", "21408"})
MAX_VALIDITY_SECONDS = 36000  # Twilio's ValidityPeriod range is 1..36000 s
# Twilio's webhook connection overrides: retry count (0..5) and the failures retried (ct, rt, 4xx, 5xx, all)
CALLBACK_OVERRIDES = "rc=5&rp=ct,rt,5xx"

# Twilio's MessageStatus in our vocabulary. `sent` means handed to the next carrier, not delivered.
STATUSES = {
    "accepted": "accepted", "scheduled": "accepted", "queued": "accepted",
    "sending": "enroute", "sent": "enroute",
    "delivered": "delivered", "read": "delivered",
    "undelivered": "undelivered", "failed": "failed", "canceled": "failed",
}
# The delivery ErrorCodes of a status callback (Twilio's error dictionary, 30001-30034), in words a customer
# can act on; the code itself is kept as the carrier error code. Texts name no carrier.
DELIVERY_ERRORS = {
    "30001": "the carrier's queue overflowed", "30002": "the account is suspended",
    "30003": "the handset is unreachable (off or out of coverage)", "30004": "the message was blocked",
    "30005": "the number is unknown or no longer in service", "30006": "the number is a landline or cannot receive SMS",
    "30007": "the message was filtered as spam or against the carrier's rules",
    "30008": "the carrier gave no reason", "30009": "a part of the message was lost",
    "30010": "the price asked was above the limit set", "30034": "the sender number is not registered (US A2P 10DLC)",
}
SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
FORM = "application/x-www-form-urlencoded"


class TwilioConnector(HttpConnector):
    """Settings: `base_url`, `account_sid`; credential `auth_token`."""

    preset = "twilio"

    def __init__(self, config: CarrierConfig) -> None:
        super().__init__(config)
        sid = str(config.setting("account_sid") or "")
        base_url = str(config.setting("base_url") or DEFAULT_BASE_URL).rstrip("/")
        self.url = f"{base_url}/2010-04-01/Accounts/{quote(sid, safe='')}/Messages.json"
        pair = f"{sid}:{config.credentials.get('auth_token', '')}".encode()
        self._headers = {"Authorization": "Basic " + base64.b64encode(pair).decode(), "Content-Type": FORM,
                         "Accept": "application/json"}

    def request_for(self, message: OutboundMessage) -> HttpRequest:
        fields = {"To": message.to, "From": message.sender, "Body": message.text}
        if self.config.public_base_url:
            fields["StatusCallback"] = f"{self.config.receipt_url}#{CALLBACK_OVERRIDES}"
        if message.validity_seconds:
            fields["ValidityPeriod"] = str(max(1, min(message.validity_seconds, MAX_VALIDITY_SECONDS)))
        return HttpRequest("POST", self.url, self._headers, urlencode(fields).encode())

    def outcome_of(self, response: outbound.Response) -> Submitted:
        answer = json_of(response)
        answer = answer if isinstance(answer, dict) else {}
        if 200 <= response.status_code < 300:
            sid = answer.get("sid")
            if not isinstance(sid, str) or not sid:
                raise answer_invalid(self.name, response, "a message sid")
            return Submitted((sid,))
        raise error_for(self.name, response, str(answer.get("code") or ""), detail(answer.get("message")))


def error_for(name: str, response: outbound.Response, code: str, message: str) -> CarrierError:
    """The error a Twilio answer that is not 2xx means (see the table above)."""
    status = response.status_code
    if status == 429 or code in THROTTLE_CODES:
        return throttled(name, response, carrier_error_code=code)
    if status in (401, 403) or code in AUTH_CODES:
        return auth_refused(name, response, carrier_error_code=code)
    if status == 404 or code in ROUTE_CODES or status < 400:
        return RouteError("carrier_route_refused", f"{name} refused the route (HTTP {status}): {message}",
                          carrier_error_code=code)
    if status >= 500:
        return server_error(name, response, carrier_error_code=code)
    return PermanentError("carrier_rejected", f"{name} rejected the message: {message}", carrier_error_code=code)


# --- callbacks --------------------------------------------------------------------------------------------


def signature(token: bytes, url: str, params: list[tuple[str, str]]) -> str:
    """Twilio's request signature of `url` and the POST parameters."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    return base64.b64encode(hmac.new(token, signed.encode("utf-8"), hashlib.sha1).digest()).decode()


def url_forms(url: str) -> tuple[str, str]:
    """The URL without its port and with it (the scheme's default port added when it has none), each as
    urllib re-assembles it: the forms Twilio's helper libraries try."""
    parts = urlparse(url)
    host = parts.netloc.split(":")[0]
    try:
        port = parts.port
    except ValueError:
        raise CallbackRefused("signature_invalid", "The callback URL has an invalid port.") from None
    if port:
        return parts._replace(netloc=host).geturl(), parts.geturl()
    default = 443 if parts.scheme == "https" else 80
    return parts.geturl(), parts._replace(netloc=f"{parts.netloc}:{default}").geturl()


def verified_fields(config: CarrierConfig, callback: Callback) -> dict[str, str]:
    """The callback's fields once its signature checks out: a form's parameters, or a JSON body's
    top-level values (signed through `bodySHA256`). Raises CallbackRefused."""
    params = verified_params(config, callback)
    if params or not callback.body or _is_form(callback):
        return dict(params)
    document = json_body(callback.body)
    if not isinstance(document, dict):
        raise CallbackRefused("payload_invalid", "The callback body is not a JSON object.")
    return {str(name): value if isinstance(value, str) else json.dumps(value) for name, value in document.items()
            if value is not None}


def verified_params(config: CarrierConfig, callback: Callback) -> list[tuple[str, str]]:
    """The callback's signed POST parameters once its signature checks out; raises CallbackRefused."""
    token = secret_of(config, "auth_token")
    given = callback.header(SIGNATURE_HEADER)
    if not given:
        raise CallbackRefused("signature_missing", f"The callback has no {SIGNATURE_HEADER}.")
    algorithm = _algorithm(callback.header(SIGNATURE_SETTINGS_HEADER))
    if algorithm != "HMAC_SHA1":  # a SharedKey signature: we hold only the auth token
        raise CallbackRefused("signature_invalid", f"Twilio signatures with {algorithm} are not configured.")
    params = _signed_params(callback)
    forms = url_forms(callback.url)
    if "#" not in callback.url:
        forms += url_forms(f"{callback.url}#{CALLBACK_OVERRIDES}")
    if not any(equal(signature(token, form, params), given) for form in forms):
        raise CallbackRefused("signature_invalid", f"The {SIGNATURE_HEADER} does not match.")
    return params


def _algorithm(settings_header: str) -> str:
    for part in settings_header.split(","):
        name, separator, value = part.partition("=")
        if separator and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def _signed_params(callback: Callback) -> list[tuple[str, str]]:
    """The parameters the signature covers: a form POST's fields; none for anything else, whose body must
    then be covered by `bodySHA256` in the (signed) URL."""
    try:
        text = callback.body.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackRefused("payload_invalid", "The callback body is not UTF-8.") from None
    if _is_form(callback):
        return parse_qsl(text, keep_blank_values=True)
    if not callback.body:
        return []
    body_hash = parse_qs(urlparse(callback.url).query).get("bodySHA256", [""])[0]
    if not body_hash:
        raise CallbackRefused("signature_invalid", "The callback body is not covered by the signature.")
    if not equal(hashlib.sha256(callback.body).hexdigest(), body_hash):
        raise CallbackRefused("signature_invalid", "The callback body does not match its bodySHA256.")
    return []


def _is_form(callback: Callback) -> bool:
    content_type = callback.header("Content-Type").split(";")[0].strip().lower()
    return callback.method.upper() == "POST" and content_type == FORM


def receipts(config: CarrierConfig, callback: Callback) -> list[CarrierReceipt]:
    """A status callback (MessageSid, MessageStatus, ErrorCode) as one receipt."""
    fields = verified_fields(config, callback)
    sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
    if not sid:
        raise CallbackRefused("payload_invalid", "The status callback has no MessageSid.")
    raw = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").lower()
    code = fields.get("ErrorCode", "")
    reason = DELIVERY_ERRORS.get(code)
    return [CarrierReceipt(carrier_message_id=sid, status=STATUSES.get(raw, "unknown"), carrier_error_code=code,
                           detail=f"{raw}: {reason}" if reason else raw)]


def inbound(config: CarrierConfig, callback: Callback) -> list[CarrierInbound]:
    """An incoming-message webhook (From, To, Body, MessageSid) as one inbound message."""
    fields = verified_fields(config, callback)
    sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
    if not (sid and fields.get("From") and fields.get("To")):
        raise CallbackRefused("payload_invalid", "The inbound webhook lacks MessageSid, From or To.")
    return [CarrierInbound(to=fields["To"], sender=fields["From"], text=fields.get("Body", ""),
                           carrier_message_id=sid)]
