"""POST /carriers/{name}/receipts and /inbound: verified per carrier, 403 and no change otherwise
(messaging/carriers/views.py); in-process, and through the shipped web command (PostgreSQL)."""
from __future__ import annotations

import base64
import json
import time
from numbers.models import InboundMessage
from numbers.tests.factories import shared_senders
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twilio.request_validator import RequestValidator

from accounts.tests.factories import TenantFactory, make_api_key
from messaging.accept import message_send
from messaging.models import Carrier, Message, Status
from messaging.routing.cache import routing_cache_clear
from messaging.routing.credentials import credentials_encrypt
from messaging.tests import history
from messaging.tests.fake_carriers import FakeCarriers
from smsportal.tests.servers import WebServer

TOKEN = "twilio-auth-token-1"
TELNYX_KEY = Ed25519PrivateKey.generate()


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


def _telnyx_public() -> str:
    raw = TELNYX_KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.fixture
def carriers(db):
    Carrier.objects.create(name="twilio-main", kind="http", settings={
        "preset": "twilio", "base_url": "http://127.0.0.1:9", "account_sid": "AC1"},
        credentials_encrypted=credentials_encrypt({"auth_token": TOKEN}))
    Carrier.objects.create(name="telnyx-main", kind="http", settings={
        "preset": "telnyx", "base_url": "http://127.0.0.1:9", "public_key": _telnyx_public()},
        credentials_encrypted=credentials_encrypt({"api_key": "KEY1"}))
    routing_cache_clear()


@pytest.fixture
def sent(carriers):
    """A live message with Twilio, waiting for its receipt."""
    tenant = TenantFactory()
    api_key, _ = make_api_key(tenant, mode="live")
    message = message_send(tenant=tenant, api_key=api_key, to="+14155550123", sender="Acme", text="hi")
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENT, carrier="twilio-main", carrier_message_id="SM1",
                                                  sequence=2)
    return message


def _twilio(client, fields: dict, *, signature: str | None = None, path="/carriers/twilio-main/receipts"):
    url = f"http://testserver{path}"
    signed = RequestValidator(TOKEN).compute_signature(url, fields) if signature is None else signature
    return client.post(path, urlencode(fields), content_type="application/x-www-form-urlencoded",
                       HTTP_X_TWILIO_SIGNATURE=signed)


STATUS = {"MessageSid": "SM1", "AccountSid": "AC1", "MessageStatus": "delivered", "To": "+14155550123"}


def test_a_signed_twilio_receipt_delivers_the_message_once(client, sent):
    for _ in range(3):  # the same receipt three times: one transition
        assert _twilio(client, STATUS).status_code == 204
    sent.refresh_from_db()
    assert sent.status == Status.DELIVERED
    assert history.statuses(sent).count("delivered") == 1


@pytest.mark.parametrize("signature", ["", "bm9wZQ==", RequestValidator("another").compute_signature(
    "http://testserver/carriers/twilio-main/receipts", STATUS)])
def test_a_bad_or_missing_signature_is_403_and_changes_nothing(client, sent, signature):
    response = _twilio(client, STATUS, signature=signature)
    assert response.status_code == 403 and response.json()["error"]["code"].startswith("signature_")
    sent.refresh_from_db()
    assert sent.status == Status.SENT


def test_a_receipt_for_another_carrier_name_is_not_found_and_get_is_not_allowed(client, carriers):
    assert _twilio(client, STATUS, path="/carriers/nobody/receipts").status_code == 404
    assert client.get("/carriers/twilio-main/receipts").status_code == 405


def test_a_signed_telnyx_inbound_message_reaches_the_inbound_service(client, carriers):
    body = json.dumps({"data": {"record_type": "event", "id": "e1", "event_type": "message.received",
                                "payload": {"id": "tx-in-1", "from": {"phone_number": "+447700900123"},
                                            "to": [{"phone_number": "+14155550999"}], "text": "code 482913"}}}).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(TELNYX_KEY.sign(stamp.encode() + b"|" + body)).decode()
    response = client.post("/carriers/telnyx-main/inbound", body, content_type="application/json",
                           HTTP_TELNYX_SIGNATURE_ED25519=signature, HTTP_TELNYX_TIMESTAMP=stamp)
    assert response.status_code == 204
    inbound = InboundMessage.unscoped.get(carrier="telnyx-main", carrier_message_id="tx-in-1")
    assert (inbound.sender, inbound.to, inbound.code) == ("+447700900123", "+14155550999", "482913")
    # the same body signed an hour ago is a replay: refused
    old = str(int(time.time()) - 3600)
    replay = base64.b64encode(TELNYX_KEY.sign(old.encode() + b"|" + body)).decode()
    response = client.post("/carriers/telnyx-main/inbound", body, content_type="application/json",
                           HTTP_TELNYX_SIGNATURE_ED25519=replay, HTTP_TELNYX_TIMESTAMP=old)
    assert response.status_code == 403 and response.json()["error"]["code"] == "timestamp_stale"


@pytest.mark.django_db(transaction=True)
def test_through_the_shipped_server_a_twilio_callback_is_verified_on_the_url_it_was_sent_to(tmp_path, sent):
    with WebServer.from_procfile(tmp_path) as web, FakeCarriers() as fake:
        fake.twilio_token = TOKEN
        url = f"{web.url}/carriers/twilio-main/receipts"
        assert fake.twilio_post(url, {**STATUS, "MessageStatus": "undelivered", "ErrorCode": "30003"}).status == 204
        assert fake.twilio_post(url, STATUS, token="wrong").status == 403
    sent.refresh_from_db()
    assert sent.status == Status.UNDELIVERED and history.timeline(sent)[-1].carrier_error_code == "30003"


def test_a_disabled_carrier_still_reports_on_the_messages_it_has(client, sent):
    Carrier.objects.filter(name="twilio-main").update(enabled=False)
    routing_cache_clear()
    assert _twilio(client, STATUS).status_code == 204
    sent.refresh_from_db()
    assert sent.status == Status.DELIVERED


def test_a_source_address_allowlist_is_checked_on_the_address_the_view_trusts(client, sent):
    carrier = Carrier.objects.get(name="twilio-main")
    carrier.settings = {**carrier.settings, "callback_allowed_ips": ["10.0.0.0/8"]}
    carrier.save()
    response = _twilio(client, STATUS)  # the test client's peer is 127.0.0.1
    assert response.status_code == 403 and response.json()["error"]["code"] == "ip_not_allowed"
    carrier.settings = {**carrier.settings, "callback_allowed_ips": ["127.0.0.0/8"]}
    carrier.save()
    assert _twilio(client, STATUS).status_code == 204
    sent.refresh_from_db()
    assert sent.status == Status.DELIVERED


# --- a receipt that overtook its carrier id (messaging/carriers/unmatched.py) --------------------------------


@pytest.fixture
def sending(carriers):
    """A live message being dispatched to Twilio: its carrier id not stored yet."""
    tenant = TenantFactory()
    api_key, _ = make_api_key(tenant, mode="live")
    message = message_send(tenant=tenant, api_key=api_key, to="+14155550123", sender="Acme", text="hi")
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENDING, sequence=2)
    return message


def _ids_stored(message, carrier_message_id="SM1", carrier="twilio-main"):
    Message.unscoped.filter(pk=message.pk).update(status=Status.SENT, carrier=carrier,
                                                  carrier_message_id=carrier_message_id)


def test_a_receipt_before_its_carrier_id_is_stored_is_503_and_applied_when_sent_again(client, sending):
    response = _twilio(client, STATUS)

    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "receipt_unmatched"
    sending.refresh_from_db()
    assert sending.status == Status.SENDING
    _ids_stored(sending)
    assert _twilio(client, STATUS).status_code == 204
    sending.refresh_from_db()
    assert sending.status == Status.DELIVERED and history.statuses(sending).count("delivered") == 1


def test_an_unmatched_receipt_is_given_up_ten_minutes_after_its_id_was_first_seen(client, sending, caplog):
    import time_machine

    start = time.time()
    assert _twilio(client, STATUS).status_code == 503
    with time_machine.travel(start + 590, tick=False):
        assert _twilio(client, STATUS).status_code == 503  # the window runs from the first sighting
        assert _twilio(client, {**STATUS, "MessageSid": "SM2"}).status_code == 503  # another id: its own window
    with time_machine.travel(start + 601, tick=False), caplog.at_level("WARNING", "smsportal.carriers"):
        assert _twilio(client, STATUS).status_code == 204
        assert _twilio(client, {**STATUS, "MessageSid": "SM2"}).status_code == 503
    assert [r.carrier_message_id for r in caplog.records if getattr(r, "event", "") == "receipt.unmatched"] == ["SM1"]
    sending.refresh_from_db()
    assert sending.status == Status.SENDING


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signs_fragment", [True, False])
def test_through_the_shipped_server_twilio_retries_a_503_receipt_until_its_id_is_stored(
        tmp_path, sending, signs_fragment):
    import threading

    from messaging.carriers.http.twilio import CALLBACK_OVERRIDES
    from messaging.tests.fake_carriers import Accepted

    with WebServer.from_procfile(tmp_path) as web, FakeCarriers(callback_retry_seconds=1.0) as fake:
        fake.twilio_token, fake.twilio_sid, fake.twilio_signs_fragment = TOKEN, "AC1", signs_fragment
        accepted = Accepted("twilio", "SM1", "+14155550123", "Acme", "hi",
                            f"{web.url}/carriers/twilio-main/receipts#{CALLBACK_OVERRIDES}")
        answers = []
        poster = threading.Thread(target=lambda: answers.append(fake.twilio_status(accepted, "delivered")))
        poster.start()
        _wait_for(lambda: fake.callback_statuses[:1] == [503])
        _ids_stored(sending)
        poster.join(timeout=30)
    assert answers[0].status == 204 and fake.callback_statuses[0] == 503 and fake.callback_statuses[-1] == 204
    sending.refresh_from_db()
    assert sending.status == Status.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_through_the_shipped_server_telnyx_sends_a_503_receipt_to_its_failover_url_too(tmp_path, sending):
    import threading

    from messaging.tests.fake_carriers import Accepted

    with WebServer.from_procfile(tmp_path) as web, FakeCarriers(callback_retry_seconds=0.3,
                                                                telnyx_key=TELNYX_KEY) as fake:
        url = f"{web.url}/carriers/telnyx-main/receipts"
        accepted = Accepted("telnyx", "tx-1", "+14155550123", "Acme", "hi", url, url)
        answers = []
        poster = threading.Thread(target=lambda: answers.append(fake.telnyx_status(accepted, "delivered")))
        poster.start()
        _wait_for(lambda: fake.callback_statuses[:3] == [503, 503, 503])  # the primary URL's three tries
        _ids_stored(sending, "tx-1", "telnyx-main")
        poster.join(timeout=30)
    assert answers[0].status == 204 and fake.callback_statuses[3:] == [204]
    sending.refresh_from_db()
    assert sending.status == Status.DELIVERED


def _wait_for(condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
