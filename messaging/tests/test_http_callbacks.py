"""Carrier callbacks: submit on loopback, the fake carrier posts a signed receipt to our sink, we verify and parse it."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twilio.request_validator import RequestValidator

from messaging.carriers.config import CarrierInbound, CarrierReceipt
from messaging.carriers.http import (
    CallbackRefused,
    connector_from_config,
    inbound_from_callback,
    receipts_from_callback,
)
from messaging.tests.fake_carriers import (
    CallbackSink,
    FakeCarriers,
    Recorded,
    message,
    partner_config,
    telnyx_config,
    twilio_config,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def fake():
    with FakeCarriers() as carriers:
        yield carriers


@pytest.fixture
def sink():
    with CallbackSink() as callbacks:
        yield callbacks


def receipts_of(config, request: Recorded, sink: CallbackSink, **overrides) -> list[CarrierReceipt]:
    """What the view would do with a request the sink recorded."""
    arguments = {"method": request.method, "url": sink.base_url + request.path, "headers": request.headers,
                 "body": request.body, "client_ip": request.client_ip, **overrides}
    return receipts_from_callback(config, **arguments)


def inbound_of(config, request: Recorded, sink: CallbackSink, **overrides) -> list[CarrierInbound]:
    arguments = {"method": request.method, "url": sink.base_url + request.path, "headers": request.headers,
                 "body": request.body, "client_ip": request.client_ip, **overrides}
    return inbound_from_callback(config, **arguments)


def refusal(call, *args, **kwargs) -> str:
    with pytest.raises(CallbackRefused) as caught:
        call(*args, **kwargs)
    return caught.value.reason


# --- end to end: submit -> signed callback -> receipt -------------------------------------------------------


@pytest.mark.parametrize(("status", "error_code", "ours", "detail"), [
    ("delivered", "", "delivered", "delivered"),
    ("undelivered", "30003", "undelivered", "undelivered: the handset is unreachable (off or out of coverage)"),
    ("failed", "30008", "failed", "failed: the carrier gave no reason"),
    ("undelivered", "39999", "undelivered", "undelivered"),  # a code we have no words for: the status alone
    ("sent", "", "enroute", "sent"), ("queued", "", "accepted", "queued"), ("partially_delivered", "", "unknown",
                                                                          "partially_delivered"),
])
def test_a_twilio_status_callback_becomes_a_receipt(fake, sink, status, error_code, ours, detail):
    config = twilio_config(fake, public_base_url=sink.base_url)
    submitted = connector_from_config(config).submit(message())

    posted = fake.twilio_status(fake.accepted[0], status, error_code=error_code)

    assert posted.status == 204 and sink.requests[0].path == "/carriers/twilio-main/receipts"
    assert receipts_of(config, sink.requests[0], sink) == [CarrierReceipt(
        carrier_message_id=submitted.carrier_message_id, status=ours, carrier_error_code=error_code, detail=detail)]


@pytest.mark.parametrize(("event_type", "status", "errors", "ours", "code"), [
    ("message.finalized", "delivered", [], "delivered", ""),
    ("message.finalized", "delivery_failed", [{"code": "40008", "title": "Undeliverable"}], "undelivered", "40008"),
    ("message.finalized", "sending_failed", [{"code": "40001", "title": "Not routable"}], "failed", "40001"),
    ("message.sent", "sent", [], "enroute", ""),
    ("message.finalized", "delivery_unconfirmed", [], "unknown", ""),
])
def test_a_telnyx_webhook_becomes_a_receipt(fake, sink, event_type, status, errors, ours, code):
    config = telnyx_config(fake, public_base_url=sink.base_url)
    submitted = connector_from_config(config).submit(message())

    fake.telnyx_status(fake.accepted[0], status, event_type=event_type, errors=errors)

    [receipt] = receipts_of(config, sink.requests[0], sink)
    assert (receipt.carrier_message_id, receipt.status, receipt.carrier_error_code) == (
        submitted.carrier_message_id, ours, code)
    assert receipt.done_at is not None and receipt.done_at.tzinfo is not None


@pytest.mark.parametrize(("state", "ours"), [("DELIVERED", "delivered"), ("FAILED", "undelivered"),
                                             ("BOUNCED_BY_MOON", "unknown")])
def test_a_generic_partner_receipt_becomes_a_receipt(fake, sink, state, ours):
    config = partner_config(fake, public_base_url=sink.base_url)
    submitted = connector_from_config(config).submit(message())

    fake.partner_status(fake.accepted[0], state)

    assert receipts_of(config, sink.requests[0], sink) == [
        CarrierReceipt(carrier_message_id=submitted.carrier_message_id, status=ours, detail=state)]


def test_a_telnyx_event_that_is_not_a_receipt_gives_none(fake, sink):
    config = telnyx_config(fake, public_base_url=sink.base_url)
    connector_from_config(config).submit(message())

    fake.telnyx_status(fake.accepted[0], "webhook_delivered", event_type="message.received")

    assert receipts_of(config, sink.requests[0], sink) == []


# --- refused -----------------------------------------------------------------------------------------------


@pytest.fixture
def posted(fake, sink):
    """One signed status callback per preset, as the sink recorded it: (config, request)."""
    found = {}
    for preset, build, post in [("twilio", twilio_config, lambda sent: fake.twilio_status(sent, "delivered")),
                                ("telnyx", telnyx_config, lambda sent: fake.telnyx_status(sent, "delivered")),
                                ("generic", partner_config, lambda sent: fake.partner_status(sent, "DELIVERED"))]:
        config = build(fake, public_base_url=sink.base_url)
        connector_from_config(config).submit(message())
        post(fake.accepted[-1])
        found[preset] = (config, sink.requests[-1])
    return found


SIGNATURE_HEADERS = {"twilio": ["x-twilio-signature"], "telnyx": ["telnyx-signature-ed25519", "telnyx-timestamp"],
                     "generic": ["x-signature"]}


@pytest.mark.parametrize("preset", ["twilio", "telnyx", "generic"])
def test_a_valid_signature_is_accepted_and_a_tampered_body_refused(posted, sink, preset):
    config, request = posted[preset]
    assert len(receipts_of(config, request, sink)) == 1

    tampered = request.body.replace(b"delivered", b"undelivrd").replace(b"DELIVERED", b"UNDELIVRD")

    assert tampered != request.body
    assert refusal(receipts_of, config, request, sink, body=tampered) == "signature_invalid"


@pytest.mark.parametrize("preset", ["twilio", "telnyx", "generic"])
def test_a_missing_signature_is_refused(posted, sink, preset):
    config, request = posted[preset]
    for name in SIGNATURE_HEADERS[preset]:
        headers = {key: value for key, value in request.headers.items() if key != name}

        assert refusal(receipts_of, config, request, sink, headers=headers) == "signature_missing"


@pytest.mark.parametrize("preset", ["twilio", "telnyx", "generic"])
def test_a_signature_with_another_secret_is_refused(posted, sink, preset):
    config, request = posted[preset]
    other_key = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    other = replace(config, settings={**config.settings, "public_key": other_key},
                    credentials={"auth_token": "another-token", "receipt_secret": "another-secret"})

    assert refusal(receipts_of, other, request, sink) == "signature_invalid"


@pytest.mark.parametrize("preset", ["twilio", "telnyx", "generic"])
def test_an_unconfigured_secret_refuses_every_callback(posted, sink, preset):
    config, request = posted[preset]
    bare = replace(config, settings={**config.settings, "public_key": ""}, credentials={})

    assert refusal(receipts_of, bare, request, sink) == "not_configured"


def test_a_twilio_signature_for_another_url_is_refused(posted, sink):
    config, request = posted["twilio"]

    assert refusal(receipts_of, config, request, sink,
                   url=sink.base_url + "/carriers/other/receipts") == "signature_invalid"


def test_a_telnyx_webhook_replayed_after_five_minutes_is_refused(posted, sink):
    config, request = posted["telnyx"]
    signed_at = datetime.fromtimestamp(int(request.headers["telnyx-timestamp"]), UTC)

    assert len(receipts_of(config, request, sink, now=signed_at.replace(microsecond=0))) == 1
    late = datetime.fromtimestamp(signed_at.timestamp() + 301, UTC)
    early = datetime.fromtimestamp(signed_at.timestamp() - 301, UTC)
    assert refusal(receipts_of, config, request, sink, now=late) == "timestamp_stale"
    assert refusal(receipts_of, config, request, sink, now=early) == "timestamp_stale"
    assert len(receipts_of(config, request, sink, now=datetime.fromtimestamp(signed_at.timestamp() + 299, UTC))) == 1


def test_a_telnyx_timestamp_changed_to_look_fresh_breaks_the_signature(fake, sink):
    config = telnyx_config(fake, public_base_url=sink.base_url)
    connector_from_config(config).submit(message())
    fake.telnyx_status(fake.accepted[0], "delivered", signed_at=int(time.time()) - 3600)  # captured an hour ago
    request = sink.requests[0]

    assert refusal(receipts_of, config, request, sink) == "timestamp_stale"
    fresh = {**request.headers, "telnyx-timestamp": str(int(time.time()))}
    assert refusal(receipts_of, config, request, sink, headers=fresh) == "signature_invalid"


@pytest.mark.parametrize("preset", ["twilio", "telnyx", "generic"])
def test_the_source_address_allowlist_is_checked_first(posted, sink, preset):
    config, request = posted[preset]
    only_carrier = replace(config, settings={**config.settings, "callback_allowed_ips": ["203.0.113.0/24"]})
    loopback = replace(config, settings={**config.settings, "callback_allowed_ips": ["10.0.0.0/8", "127.0.0.0/8"]})

    assert refusal(receipts_of, only_carrier, request, sink) == "ip_not_allowed"
    assert refusal(receipts_of, loopback, request, sink, client_ip="not-an-address") == "ip_not_allowed"
    assert refusal(receipts_of, loopback, request, sink, client_ip=None) == "ip_not_allowed"
    assert len(receipts_of(loopback, request, sink)) == 1
    assert len(receipts_of(loopback, request, sink, client_ip="::ffff:127.0.0.1")) == 1


def test_a_generic_token_scheme_compares_the_shared_secret(fake):
    config = partner_config(fake, receipt={"message_id": "/ref_id", "status": "/state", "signature": "token",
                                           "map": {"OK": "delivered"}})
    body = b'[{"ref_id": "px-1", "state": "OK"}, {"ref_id": "px-2", "state": "NOPE"}]'
    call = {"method": "POST", "url": "https://portal.example/carriers/partner-x/receipts", "body": body,
            "client_ip": "127.0.0.1"}

    receipts = receipts_from_callback(config, headers={"X-Callback-Token": fake.partner_secret}, **call)

    assert [(r.carrier_message_id, r.status) for r in receipts] == [("px-1", "delivered"), ("px-2", "unknown")]
    assert refusal(receipts_from_callback, config, headers={"X-Callback-Token": "guess"}, **call) == "signature_invalid"


def test_a_signed_body_that_is_not_a_receipt_is_refused(fake):
    config = partner_config(fake)
    body = b'{"state": "DELIVERED"}'
    signature = "sha256=" + hmac.new(fake.partner_secret.encode(), body, hashlib.sha256).hexdigest()

    assert refusal(receipts_from_callback, config, method="POST", url="https://x/r", headers={"X-Signature": signature},
                   body=body, client_ip="127.0.0.1") == "payload_invalid"


# --- inbound (MO) ------------------------------------------------------------------------------------------


def test_a_twilio_incoming_message_becomes_an_inbound(fake, sink):
    config = twilio_config(fake, public_base_url=sink.base_url)
    fake.twilio_post(config.inbound_url, {"MessageSid": "SM" + "1" * 32, "AccountSid": fake.twilio_sid,
                                          "From": "+447700900777", "To": "+447700900001", "Body": "STOP",
                                          "NumMedia": "0", "SmsStatus": "received"})

    assert inbound_of(config, sink.requests[0], sink) == [CarrierInbound(
        to="+447700900001", sender="+447700900777", text="STOP", carrier_message_id="SM" + "1" * 32)]
    assert refusal(inbound_of, config, sink.requests[0], sink, body=sink.requests[0].body + b"&x=1") == \
        "signature_invalid"


def test_a_telnyx_message_received_becomes_an_inbound(fake, sink):
    config = telnyx_config(fake, public_base_url=sink.base_url)
    fake.telnyx_post(config.inbound_url, "message.received", {
        "id": "b0c7e8cb-6227-4c74-9f32-c7f80c30934b", "direction": "inbound", "type": "SMS", "text": "Hello",
        "from": {"phone_number": "+447700900777"}, "to": [{"phone_number": "+447700900001", "status": "webhook_delivered"}],
        "received_at": "2026-11-02T10:00:00.000+00:00"})

    [received] = inbound_of(config, sink.requests[0], sink)
    assert (received.to, received.sender, received.text, received.carrier_message_id) == (
        "+447700900001", "+447700900777", "Hello", "b0c7e8cb-6227-4c74-9f32-c7f80c30934b")
    assert received.received_at == datetime(2026, 11, 2, 10, tzinfo=UTC)


def test_a_generic_inbound_is_read_by_its_pointers(fake):
    config = partner_config(fake, inbound={"from": "/msisdn", "to": "/dest", "text": "/msg/text", "message_id": "/mid"})
    body = json.dumps({"msisdn": "+447700900777", "dest": "+447700900001", "msg": {"text": "hi"}, "mid": 42}).encode()
    signature = "sha256=" + hmac.new(fake.partner_secret.encode(), body, hashlib.sha256).hexdigest()

    assert inbound_from_callback(config, method="POST", url="https://x/i", headers={"x-signature": signature},
                                 body=body, client_ip="127.0.0.1") == [
        CarrierInbound(to="+447700900001", sender="+447700900777", text="hi", carrier_message_id="42")]


def test_a_twilio_json_callback_is_covered_by_its_body_hash(fake):
    config = twilio_config(fake)
    body = b'{"MessageSid": "SM1", "MessageStatus": "delivered"}'
    url = f"https://portal.example/carriers/twilio-main/receipts?bodySHA256={hashlib.sha256(body).hexdigest()}"
    signature = RequestValidator(fake.twilio_token).compute_signature(url, {})
    call = {"method": "POST", "url": url, "client_ip": "127.0.0.1"}
    headers = {"Content-Type": "application/json", "X-Twilio-Signature": signature}

    [receipt] = receipts_from_callback(config, headers=headers, body=body, **call)
    assert (receipt.carrier_message_id, receipt.status) == ("SM1", "delivered")
    assert refusal(receipts_from_callback, config, headers=headers, body=body + b" ", **call) == "signature_invalid"


def test_a_twilio_form_to_a_url_with_a_query_signs_the_whole_url(fake):
    config = twilio_config(fake)
    url = "https://portal.example:443/carriers/twilio-main/receipts?tenant=a&x=%C3%A9"
    fields = {"MessageSid": "SM9", "MessageStatus": "delivered", "Note": "ça & ok"}
    signature = RequestValidator(fake.twilio_token).compute_signature(url.replace(":443", ""), fields)

    [receipt] = receipts_from_callback(config, method="POST", url=url, headers={**FORM, "X-Twilio-Signature": signature},
                                       body=urlencode(fields).encode(), client_ip="127.0.0.1")

    assert (receipt.carrier_message_id, receipt.status) == ("SM9", "delivered")


@pytest.mark.parametrize("signed_url", [
    "https://portal.example/carriers/twilio-main/receipts#rc=5&rp=ct,rt,5xx",  # as we gave it
    "https://portal.example/carriers/twilio-main/receipts",  # as it reaches us: a fragment is never sent
])
def test_a_twilio_callback_to_our_url_with_connection_overrides_verifies_either_way_it_is_signed(fake, signed_url):
    config = twilio_config(fake)
    fields = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    signature = RequestValidator(fake.twilio_token).compute_signature(signed_url, fields)
    arguments = {"method": "POST", "url": "https://portal.example/carriers/twilio-main/receipts",
                 "headers": {**FORM, "X-Twilio-Signature": signature}, "body": urlencode(fields).encode(),
                 "client_ip": "127.0.0.1"}

    assert receipts_from_callback(config, **arguments)[0].carrier_message_id == "SM1"
    other = RequestValidator(fake.twilio_token).compute_signature(
        "https://portal.example/carriers/twilio-main/receipts#rc=1&rp=ct", fields)
    assert refusal(receipts_from_callback, config, **{**arguments, "headers": {**FORM, "X-Twilio-Signature": other}}) \
        == "signature_invalid"
