"""Loopback fakes of Twilio's and Telnyx's messages APIs and of a generic partner, and a sink for their callbacks.

Built from the carriers' public API docs, for connector tests: one threaded HTTP server on 127.0.0.1 that

- answers `POST /2010-04-01/Accounts/{sid}/Messages.json` as Twilio (basic auth sid:token, form fields,
  201 with a `sid`, errors as {code, message, more_info, status}),
- answers `POST /v2/messages` as Telnyx (Bearer api key, JSON, 200 with `data.id`, errors as {"errors": [...]}),
- answers `/partner/send` as the generic partner of the carriers-file example (Bearer token, `{"id": ...}`,
  and `parts`: an id per segment),
- records every request, and the messages it accepted with the callback URL each asked for,
- then posts signed status callbacks to those URLs (Twilio-signed forms, Telnyx Ed25519-signed JSON,
  the partner's HMAC-SHA256-signed JSON), retried as each carrier documents it: Twilio only as the URL's
  connection overrides ask (`#rc=..&rp=..`; none without them), Telnyx up to 3 times per URL, then its
  `webhook_failover_url` (`callback_retry_seconds` apart; every answer in `callback_statuses`).

Failures are scripted by the destination's last four digits:

| ends in | answer |
| --- | --- |
| 0500 | 500 in the carrier's error shape |
| 0429 | 429 with `Retry-After: 7` (Twilio 20429, Telnyx 10011) |
| 0400 | the carrier's invalid-number error (Twilio 400/21211, Telnyx 400/40310, partner 400) |
| 0614 | Twilio 400/21614 (not a mobile number) |
| 0408 | no answer at all, until the fake stops |
| 0303 | the normal answer, `slow_seconds` (3) late |
| 0413 | 200 with a body that never ends |
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twilio.request_validator import RequestValidator

from messaging.carriers.config import CarrierConfig, OutboundMessage
from messaging.encoding import analyze

TWILIO_ERRORS = {
    "0400": (400, 21211, "The 'To' number is not a valid phone number."),
    "0614": (400, 21614, "'To' number is not a valid mobile number"),
    "0429": (429, 20429, "Too Many Requests"),
    "0500": (500, 20500, "An internal server error has occurred"),
}
TELNYX_ERRORS = {
    "0400": (400, "40310", "Invalid 'to' address", "The 'to' address should be a single valid number."),
    "0429": (429, "10011", "Too many requests", "You have exceeded the maximum number of allowed requests."),
    "0500": (500, "10007", "Unexpected error", "An unexpected error occured."),
}


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    client_ip: str
    client_port: int
    at: float  # time.monotonic() on arrival


@dataclass(frozen=True)
class Accepted:
    """A message a fake API took: its id, and where it asked for receipts."""

    api: str  # twilio | telnyx | partner
    carrier_id: str
    to: str
    sender: str
    text: str
    callback_url: str
    failover_url: str = ""  # Telnyx's webhook_failover_url


@dataclass
class FakeCarriers:
    twilio_sid: str = "AC" + "0" * 32
    twilio_token: str = "twilio-test-token"
    telnyx_api_key: str = "KEYtelnyx-test"
    telnyx_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    partner_token: str = "partner-test-token"
    partner_secret: str = "partner-receipt-secret"
    delay: float = 0.0  # every answer waits this long (to see requests overlap)
    slow_seconds: float = 3.0  # how late a destination ending in 0303 is answered
    requests: list[Recorded] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)
    peak_in_flight: int = 0
    callback_retry_seconds: float = 0.05
    callback_statuses: list[int] = field(default_factory=list)
    twilio_signs_fragment: bool = True  # whether the signed URL keeps the connection overrides
    endless_bytes_sent: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _handler_class(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------------

    def __enter__(self) -> FakeCarriers:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def telnyx_public_key(self) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = self.telnyx_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    # --- callbacks the carriers would send ------------------------------------------------------------

    def twilio_status(self, sent: Accepted, status: str, *, error_code: str = "") -> CallbackSent:
        fields = {"MessageSid": sent.carrier_id, "SmsSid": sent.carrier_id, "AccountSid": self.twilio_sid,
                  "From": sent.sender, "To": sent.to, "MessageStatus": status, "SmsStatus": status,
                  "ApiVersion": "2010-04-01"}
        if error_code:
            fields["ErrorCode"] = error_code
        overrides = dict(parse_qsl(urlsplit(sent.callback_url).fragment))
        policy = set(overrides.get("rp", "ct").split(","))
        retries = int(overrides.get("rc", "0")) if policy & {"5xx", "all"} else 0
        return self._with_retries([sent.callback_url] * (1 + retries), lambda url: self.twilio_post(url, fields))

    def twilio_post(self, url: str, fields: dict[str, str], *, token: str | None = None) -> CallbackSent:
        """A form POST signed as Twilio signs it (the `twilio` package's own signer, not ours)."""
        signed = url if self.twilio_signs_fragment else url.split("#")[0]
        signature = RequestValidator(token or self.twilio_token).compute_signature(signed, fields)
        return _post(url, urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded",
                                                       "X-Twilio-Signature": signature})

    def telnyx_status(self, sent: Accepted, status: str, *, event_type: str = "message.finalized",
                      errors: list[dict] | None = None, signed_at: int | None = None) -> CallbackSent:
        payload = {"record_type": "message", "direction": "outbound", "id": sent.carrier_id, "type": "SMS",
                   "from": {"phone_number": sent.sender}, "to": [{"phone_number": sent.to, "status": status}],
                   "text": sent.text, "errors": errors or [], "completed_at": _now_iso()}
        urls = [sent.callback_url] * 3 + ([sent.failover_url] * 3 if sent.failover_url else [])
        return self._with_retries(urls, lambda url: self.telnyx_post(url, event_type, payload, signed_at=signed_at))

    def _with_retries(self, urls: list[str], post) -> CallbackSent:
        """Post to each URL in turn until one answers 2xx (the last answer)."""
        for number, url in enumerate(urls):
            if number:
                time.sleep(self.callback_retry_seconds)
            sent = post(url)
            self.callback_statuses.append(sent.status)
            if 200 <= sent.status < 300:
                break
        return sent

    def telnyx_post(self, url: str, event_type: str, payload: dict, *, signed_at: int | None = None) -> CallbackSent:
        body = json.dumps({"data": {"record_type": "event", "id": str(uuid.uuid4()), "event_type": event_type,
                                    "occurred_at": _now_iso(), "payload": payload},
                           "meta": {"attempt": 1, "delivered_to": url}}).encode()
        timestamp = str(signed_at if signed_at is not None else int(time.time()))
        signature = base64.b64encode(self.telnyx_key.sign(timestamp.encode() + b"|" + body)).decode()
        return _post(url, body, {"Content-Type": "application/json", "telnyx-signature-ed25519": signature,
                                 "telnyx-timestamp": timestamp})

    def partner_status(self, sent: Accepted, state: str) -> CallbackSent:
        body = json.dumps({"ref_id": sent.carrier_id, "state": state}).encode()
        signature = "sha256=" + hmac.new(self.partner_secret.encode(), body, hashlib.sha256).hexdigest()
        return _post(sent.callback_url, body, {"Content-Type": "application/json", "X-Signature": signature})

    # --- the server's side ----------------------------------------------------------------------------

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)


@dataclass(frozen=True)
class CallbackSent:
    url: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiving end answered


def _post(url: str, body: bytes, headers: dict[str, str]) -> CallbackSent:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("POST", parts.path + (f"?{parts.query}" if parts.query else ""), body=body, headers=headers)
        status = connection.getresponse().status
    finally:
        connection.close()
    return CallbackSent(url, headers, body, status)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up on a hanging or endless answer


def _handler_class(fake: FakeCarriers) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fake.requests.append(Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                                          body, *self.client_address[:2], time.monotonic()))
            fake._enter()
            try:
                if fake.delay and fake._stopping.wait(fake.delay):
                    return
                self._route(body)
            finally:
                fake._leave()

        do_GET = do_POST = do_PUT = _handle

        def _route(self, body: bytes) -> None:
            path = urlsplit(self.path).path
            if path.startswith("/2010-04-01/Accounts/") and path.endswith("/Messages.json"):
                self._twilio(path, dict(parse_qsl(body.decode(), keep_blank_values=True)))
            elif path == "/v2/messages":
                self._telnyx(json.loads(body or b"{}"))
            elif path == "/partner/send":
                self._partner(body)
            else:
                self._json(404, {"error": "not found"})

        # --- Twilio --------------------------------------------------------------------------------

        def _twilio(self, path: str, fields: dict[str, str]) -> None:
            expected = "Basic " + base64.b64encode(f"{fake.twilio_sid}:{fake.twilio_token}".encode()).decode()
            if self.headers.get("Authorization") != expected or f"/Accounts/{fake.twilio_sid}/" not in path:
                return self._twilio_error(401, 20003, "Authenticate")
            to = fields.get("To", "")
            if self._special(to):
                return None
            if to[-4:] in TWILIO_ERRORS:
                return self._twilio_error(*TWILIO_ERRORS[to[-4:]])
            sid = f"SM{fake._next_id():032x}"
            fake.accepted.append(Accepted("twilio", sid, to, fields.get("From", ""), fields.get("Body", ""),
                                          fields.get("StatusCallback", "")))
            return self._json(201, {"sid": sid, "account_sid": fake.twilio_sid, "to": to, "from": fields.get("From"),
                                    "body": fields.get("Body"), "status": "queued", "num_segments": "1",
                                    "direction": "outbound-api", "api_version": "2010-04-01",
                                    "error_code": None, "error_message": None})

        def _twilio_error(self, status: int, code: int, message: str) -> None:
            headers = {"Retry-After": "7"} if status == 429 else {}
            self._json(status, {"code": code, "message": message, "status": status,
                                "more_info": f"https://www.twilio.com/docs/errors/{code}"}, headers)

        # --- Telnyx --------------------------------------------------------------------------------

        def _telnyx(self, fields: dict) -> None:
            if self.headers.get("Authorization") != f"Bearer {fake.telnyx_api_key}":
                return self._telnyx_error(401, "10009", "Authentication failed", "The required authentication "
                                          "headers were either invalid or not included in the request.")
            to = str(fields.get("to", ""))
            if self._special(to):
                return None
            if to[-4:] in TELNYX_ERRORS:
                return self._telnyx_error(*TELNYX_ERRORS[to[-4:]])
            message_id = str(uuid.UUID(int=fake._next_id()))
            fake.accepted.append(Accepted("telnyx", message_id, to, str(fields.get("from", "")),
                                          str(fields.get("text", "")), str(fields.get("webhook_url", "")),
                                          str(fields.get("webhook_failover_url", ""))))
            return self._json(200, {"data": {"record_type": "message", "direction": "outbound", "id": message_id,
                                             "type": "SMS", "from": {"phone_number": fields.get("from")},
                                             "to": [{"phone_number": to, "status": "queued"}],
                                             "text": fields.get("text"), "webhook_url": fields.get("webhook_url"),
                                             "parts": 1, "encoding": "GSM-7"}})

        def _telnyx_error(self, status: int, code: str, title: str, detail: str) -> None:
            headers = {"Retry-After": "7"} if status == 429 else {}
            self._json(status, {"errors": [{"code": code, "title": title, "detail": detail}]}, headers)

        # --- the generic partner -----------------------------------------------------------------

        def _partner(self, body: bytes) -> None:
            if self.headers.get("Authorization") != f"Bearer {fake.partner_token}":
                return self._json(401, {"error": {"code": "unauthorized"}})
            content_type = self.headers.get("Content-Type", "")
            if self.command == "GET":
                fields = dict(parse_qsl(urlsplit(self.path).query))
            elif content_type.startswith("application/x-www-form-urlencoded"):
                fields = dict(parse_qsl(body.decode()))
            else:
                fields = json.loads(body or b"{}")
            to = str(fields.get("to", ""))
            if self._special(to):
                return None
            if to[-4:] == "0429":
                return self._json(429, {"error": {"code": "throttled"}}, {"Retry-After": "7"})
            if to[-4:] == "0500":
                return self._json(500, {"error": {"code": "internal"}})
            if to[-4:] == "0400":
                return self._json(400, {"error": {"code": "bad_number"}})
            carrier_id = f"px-{fake._next_id()}"
            fake.accepted.append(Accepted("partner", carrier_id, to, str(fields.get("from", "")),
                                          str(fields.get("text", "")), str(fields.get("dlr", ""))))
            # and an id per segment, as partners that send a long message in parts report them
            parts = [f"{carrier_id}.{n}" for n in range(1, analyze(str(fields.get("text", ""))).segment_count + 1)]
            return self._json(200, {"id": carrier_id, "parts": parts, "status": "accepted"})

        # --- shared --------------------------------------------------------------------------------

        def _special(self, to: str) -> bool:
            """0408: never answer; 0413: an endless body; 0303: answered late. True when handled."""
            if to.endswith("0303"):
                fake._stopping.wait(fake.slow_seconds)
                return False
            if to.endswith("0408"):
                fake._stopping.wait(30)
                self.close_connection = True
                return True
            if to.endswith("0413"):
                self._endless()
                return True
            return False

        def _endless(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(10**12))
            self.send_header("Connection", "close")
            self.end_headers()
            chunk = b'{"sid": "SM1", "id": "px-1", "pad": "' + b"x" * 65536
            self.close_connection = True
            while not fake._stopping.is_set() and fake.endless_bytes_sent < 10**9:
                self.wfile.write(chunk)
                fake.endless_bytes_sent += len(chunk)

        def _json(self, status: int, document: dict, headers: dict[str, str] | None = None) -> None:
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@dataclass
class CallbackSink:
    """Our side of the callbacks on loopback: records what the carriers posted (with the client address), answers 204."""

    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                sink.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                              self.rfile.read(length), *self.client_address[:2], time.monotonic()))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> CallbackSink:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"


# --- configs of the three presets pointed at a fake, and a message ------------------------------------------

PARTNER_FIELDS = {"to": "{to}", "from": "{from}", "text": "{text}", "ref": "{id}", "dlr": "{receipt_url}"}



def twilio_config(fake: FakeCarriers, *, token: str | None = None, base_url: str | None = None,
                  public_base_url: str = "https://portal.example", **settings) -> CarrierConfig:
    return CarrierConfig(
        name="twilio-main", kind="http", public_base_url=public_base_url,
        settings={"preset": "twilio", "base_url": base_url or fake.base_url, "account_sid": fake.twilio_sid,
                  "allow_private_network": True, **settings},
        credentials={"auth_token": token or fake.twilio_token})


def telnyx_config(fake: FakeCarriers, *, api_key: str | None = None, public_base_url: str = "https://portal.example",
                  **settings) -> CarrierConfig:
    return CarrierConfig(
        name="telnyx-main", kind="http", public_base_url=public_base_url,
        settings={"preset": "telnyx", "base_url": fake.base_url, "public_key": fake.telnyx_public_key,
                  "allow_private_network": True, **settings},
        credentials={"api_key": api_key or fake.telnyx_api_key})


def partner_config(fake: FakeCarriers, *, auth: dict | None = None, body_format: str = "json",
                   credentials: dict | None = None, public_base_url: str = "https://portal.example",
                   **settings) -> CarrierConfig:
    return CarrierConfig(
        name="partner-x", kind="http", public_base_url=public_base_url,
        settings={"preset": "generic", "url": f"{fake.base_url}/partner/send", "method": "POST",
                  "auth": auth or {"type": "bearer"}, "body": {"format": body_format, "fields": PARTNER_FIELDS},
                  "response": {"message_id": "/id", "error_code": "/error/code"},
                  "receipt": {"message_id": "/ref_id", "status": "/state",
                              "map": {"DELIVERED": "delivered", "FAILED": "undelivered"}},
                  "allow_private_network": True, **settings},
        credentials=credentials if credentials is not None else {"token": fake.partner_token,
                                                                 "receipt_secret": fake.partner_secret})


CONFIGS = {"twilio": twilio_config, "telnyx": telnyx_config, "generic": partner_config}


def message(to: str = "+447700900123", reference: str = "msg_abc") -> OutboundMessage:
    return OutboundMessage(reference=reference, to=to, sender="+447700900001", text="Your code is 1234",
                           encoding="GSM-7")
