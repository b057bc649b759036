"""HTTP carrier connectors against loopback fakes of Twilio, Telnyx and a generic partner: submit, errors, limits."""
from __future__ import annotations

import base64
import logging
import socket
import time

import pytest

from messaging.carriers.base import PermanentError, RouteError
from messaging.carriers.config import CarrierConfig, Submitted
from messaging.carriers.http import CarrierThrottled, connector_from_config
from messaging.tests.fake_carriers import (
    CONFIGS,
    PARTNER_FIELDS,
    FakeCarriers,
    message,
    partner_config,
    telnyx_config,
    twilio_config,
)
from smsportal.tests.http_receiver import Receiver


@pytest.fixture
def fake():
    with FakeCarriers() as carriers:
        yield carriers


# --- success -----------------------------------------------------------------------------------------------


def test_it_submits_to_twilio_as_a_form_with_basic_auth(fake):
    config = twilio_config(fake)

    submitted = connector_from_config(config).submit(message())

    assert submitted == Submitted((fake.accepted[0].carrier_id,)) and submitted.carrier_message_id.startswith("SM")
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{fake.twilio_sid}/Messages.json")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert base64.b64decode(request.headers["authorization"].removeprefix("Basic ")).decode() == \
        f"{fake.twilio_sid}:{fake.twilio_token}"
    sent = fake.accepted[0]
    assert (sent.to, sent.sender, sent.text) == ("+447700900123", "+447700900001", "Your code is 1234")
    # with Twilio's connection overrides: it retries a status callback we answer 5xx (receipt_unmatched)
    assert sent.callback_url == "https://portal.example/carriers/twilio-main/receipts#rc=5&rp=ct,rt,5xx"
    assert sent.callback_url.split("#")[0] == config.receipt_url


def test_it_submits_to_telnyx_as_json_with_a_bearer_key_and_our_webhook(fake):
    import json

    submitted = connector_from_config(telnyx_config(fake)).submit(message())

    assert submitted.carrier_message_id == fake.accepted[0].carrier_id
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", "/v2/messages")
    assert request.headers["authorization"] == f"Bearer {fake.telnyx_api_key}"
    assert json.loads(request.body) == {"from": "+447700900001", "to": "+447700900123", "text": "Your code is 1234",
                                        "webhook_url": "https://portal.example/carriers/telnyx-main/receipts",
                                        "webhook_failover_url": "https://portal.example/carriers/telnyx-main/receipts",
                                        "use_profile_webhooks": False}


@pytest.mark.parametrize("body_format", ["json", "form"])
def test_it_submits_to_a_generic_partner_with_the_templates_filled(fake, body_format):
    import json
    from urllib.parse import parse_qsl

    submitted = connector_from_config(partner_config(fake, body_format=body_format)).submit(message())

    assert submitted == Submitted(("px-1",))
    request = fake.requests[0]
    fields = json.loads(request.body) if body_format == "json" else dict(parse_qsl(request.body.decode()))
    assert fields == {"to": "+447700900123", "from": "+447700900001", "text": "Your code is 1234", "ref": "msg_abc",
                      "dlr": "https://portal.example/carriers/partner-x/receipts"}
    assert request.headers["authorization"] == f"Bearer {fake.partner_token}"


@pytest.mark.parametrize(("auth", "credentials", "expected"), [
    ({"type": "none"}, {}, None),
    ({"type": "basic", "username": "acme"}, {"password": "s3cret-pw"}, "Basic " + base64.b64encode(b"acme:s3cret-pw").decode()),
    ({"type": "header", "name": "X-Api-Key"}, {"token": "hdr-token"}, "hdr-token"),
])
def test_it_sends_each_generic_auth_type_and_a_refusal_is_the_routes(fake, auth, credentials, expected):
    connector = connector_from_config(partner_config(fake, auth=auth, credentials=credentials))

    with pytest.raises(RouteError) as caught:
        connector.submit(message())  # the fake partner only takes its bearer token

    assert caught.value.code == "carrier_auth_failed" and caught.value.carrier_error_code == "unauthorized"
    headers = fake.requests[0].headers
    if auth["type"] == "header":
        assert headers["x-api-key"] == expected
    else:
        assert headers.get("authorization") == expected


def test_a_generic_get_sends_the_fields_in_the_query(fake):
    connector_from_config(partner_config(fake, method="GET")).submit(message())

    assert fake.requests[0].method == "GET" and "to=%2B447700900123" in fake.requests[0].path


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "to", "error", "code", "carrier_code"), [
    ("twilio", "+447700900400", PermanentError, "carrier_rejected", "21211"),
    ("twilio", "+447700900614", PermanentError, "carrier_rejected", "21614"),
    ("twilio", "+447700900429", CarrierThrottled, "carrier_throttled", "20429"),
    ("twilio", "+447700900500", RouteError, "carrier_server_error", "20500"),
    ("telnyx", "+447700900400", PermanentError, "carrier_rejected", "40310"),
    ("telnyx", "+447700900429", CarrierThrottled, "carrier_throttled", "10011"),
    ("telnyx", "+447700900500", RouteError, "carrier_server_error", "10007"),
    ("generic", "+447700900400", PermanentError, "carrier_rejected", "bad_number"),
    ("generic", "+447700900429", CarrierThrottled, "carrier_throttled", "throttled"),
    ("generic", "+447700900500", RouteError, "carrier_server_error", "internal"),
])
def test_each_carrier_answer_is_its_error_class(fake, preset, to, error, code, carrier_code):
    with pytest.raises(error) as caught:
        connector_from_config(CONFIGS[preset](fake)).submit(message(to=to))

    assert type(caught.value) is error
    assert (caught.value.code, caught.value.carrier_error_code) == (code, carrier_code)
    if error is CarrierThrottled:
        assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(("preset", "carrier_code"), [("twilio", "20003"), ("telnyx", "10009"),
                                                      ("generic", "unauthorized")])
def test_our_credentials_refused_is_a_route_error(fake, preset, carrier_code):
    config = CONFIGS[preset](fake)
    config = CarrierConfig(config.name, config.kind, config.settings, {"auth_token": "wrong", "api_key": "wrong",
                                                                       "token": "wrong"}, config.public_base_url)

    with pytest.raises(RouteError) as caught:
        connector_from_config(config).submit(message())

    assert (caught.value.code, caught.value.carrier_error_code) == ("carrier_auth_failed", carrier_code)


@pytest.mark.parametrize("preset", ["twilio", "telnyx", "generic"])
def test_a_carrier_that_never_answers_times_out_as_a_route_error(fake, preset):
    connector = connector_from_config(CONFIGS[preset](fake, timeout_seconds=0.5))

    started = time.monotonic()
    with pytest.raises(RouteError) as caught:
        connector.submit(message(to="+447700900408"))

    assert caught.value.code == "carrier_timeout" and time.monotonic() - started < 2
    assert len(fake.requests) == 1  # it was sent, and the wait for the answer cut short


def test_a_refused_connection_is_a_route_error(fake):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    with pytest.raises(RouteError) as caught:
        connector_from_config(twilio_config(fake, base_url=f"http://127.0.0.1:{closed_port}")).submit(message())

    assert caught.value.code == "carrier_unreachable"


def test_a_private_carrier_url_is_refused_unless_allowed(fake):
    with pytest.raises(RouteError) as caught:
        connector_from_config(twilio_config(fake, allow_private_network=False)).submit(message())

    assert caught.value.code == "carrier_url_blocked" and fake.requests == []


@pytest.mark.parametrize("preset", ["twilio", "generic"])
def test_an_endless_answer_is_read_only_to_the_cap(fake, preset):
    connector = connector_from_config(CONFIGS[preset](fake, timeout_seconds=5))

    started = time.monotonic()
    with pytest.raises(RouteError) as caught:
        connector.submit(message(to="+447700900413"))

    # The first 64 KiB are not a whole JSON document: no id, and we stopped reading long before the deadline.
    assert caught.value.code == "carrier_answer_invalid" and time.monotonic() - started < 2
    time.sleep(0.2)  # let the fake notice the closed connection
    assert fake.endless_bytes_sent < 32 * 1024 * 1024


def test_a_redirect_is_not_followed(fake):
    with Receiver() as redirector:
        redirector.answer(302, headers={"Location": f"{fake.base_url}/2010-04-01/Accounts/x/Messages.json"})

        with pytest.raises(RouteError) as caught:
            connector_from_config(twilio_config(fake, base_url=redirector.url(""))).submit(message())

    assert caught.value.code == "carrier_route_refused" and fake.requests == []


def test_a_2xx_without_an_id_is_a_route_error():
    with Receiver() as partner:
        partner.answer(200, body=b'{"status": "ok"}')
        config = CarrierConfig("partner-x", "http", {"preset": "generic", "url": partner.url("/send"),
                                                     "allow_private_network": True, "body": {"fields": PARTNER_FIELDS}})

        with pytest.raises(RouteError) as caught:
            connector_from_config(config).submit(message())

    assert caught.value.code == "carrier_answer_invalid"


# --- secrets -----------------------------------------------------------------------------------------------


def test_credentials_are_never_in_logs_reprs_or_errors(fake, caplog):
    caplog.set_level(logging.DEBUG)
    configs = [twilio_config(fake), telnyx_config(fake), partner_config(fake)]
    secrets = [fake.twilio_token, fake.telnyx_api_key, fake.partner_token, fake.partner_secret,
               base64.b64encode(f"{fake.twilio_sid}:{fake.twilio_token}".encode()).decode()]
    texts = []
    for config in configs:
        connector = connector_from_config(config)
        texts += [repr(connector), repr(config), str(connector.submit(message()))]
        for to in ("+447700900400", "+447700900429", "+447700900500"):
            outcome = connector.submit_many([message(to=to)])[0]
            texts += [repr(outcome), str(outcome), outcome.message]
        connector.close()

    assert caplog.records  # outcomes were logged ...
    for secret in secrets:  # ... and no secret anywhere
        assert secret not in caplog.text
        assert all(secret not in text for text in texts)


# --- many at once ------------------------------------------------------------------------------------------


def test_submit_many_overlaps_requests_up_to_the_concurrency_setting(fake):
    fake.delay = 0.3
    connector = connector_from_config(twilio_config(fake, concurrency=4))
    messages = [message(to=f"+4477009{n:05d}", reference=f"msg_{n}") for n in range(11)] + [message(to="+447700900400")]

    started = time.monotonic()
    outcomes = connector.submit_many(messages)
    elapsed = time.monotonic() - started
    connector.close()

    assert fake.peak_in_flight == 4  # overlapped, and never more than the setting
    assert elapsed < 12 * 0.3 / 2  # one at a time would take 3.6 s
    assert [type(outcome) for outcome in outcomes] == [Submitted] * 11 + [PermanentError]
    by_id = {sent.carrier_id: sent.to for sent in fake.accepted}
    assert [by_id[outcome.carrier_message_id] for outcome in outcomes[:11]] == [m.to for m in messages[:11]]


def test_submit_many_keeps_connections_alive_between_requests(fake):
    connector = connector_from_config(telnyx_config(fake, concurrency=1))

    outcomes = connector.submit_many([message(reference=f"msg_{n}") for n in range(5)])
    connector.close()

    assert all(isinstance(outcome, Submitted) for outcome in outcomes)
    assert len({request.client_port for request in fake.requests}) == 1
