"""Standard Webhooks signatures checked by the reference library (`standardwebhooks`), rotation windows,
secret hygiene and encryption at rest (RELIABILITY WH-1, WH-2)."""
from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from accounts.services import SYSTEM
from accounts.tests.factories import TenantFactory
from smsportal.events import services, signing
from smsportal.events.models import WebhookCallbackSecret, WebhookEndpoint

SECRET = signing.secret_generate()
OTHER = signing.secret_generate()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=200),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5),
    max_leaves=20,
)


def _signed(payload: dict, secrets=(SECRET,), msg_id: str = "evt_test") -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return body, signing.headers(secrets=list(secrets), msg_id=msg_id, timestamp=int(time.time()), body=body)


def _flip(text: str, index: int) -> str:
    """Replace one ASCII character with another, keeping the text valid (base64, UTF-8, digits)."""
    index %= len(text)
    replacement = "B" if text[index] != "B" else "C"
    if text[index].isdigit():
        replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1:]


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values, msg_id=st.from_regex(r"evt_[A-Za-z0-9]{1,30}", fullmatch=True), index=st.integers(0, 10_000))
def test_every_signed_payload_verifies_and_any_tampering_fails(data, msg_id, index):
    # given a payload (any JSON, any Unicode) signed as we send it
    body, headers = _signed({"type": "message.delivered", "data": data}, msg_id=msg_id)
    webhook = Webhook(SECRET)
    # then the reference library verifies it and gives back the payload
    assert webhook.verify(body, headers) == {"type": "message.delivered", "data": data}
    assert headers["webhook-timestamp"].isdigit()
    # and a change to the body, the id, the timestamp or the signature fails verification
    text = body.decode()
    tampered = [
        (_flip(text, index).encode() if _flip(text, index) != text else body + b" ", headers),
        (body, {**headers, "webhook-id": msg_id + "x"}),
        (body, {**headers, "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1)}),
        (body, {**headers, "webhook-signature": "v1," + _flip(headers["webhook-signature"][3:], 0)}),
    ]
    for tampered_body, tampered_headers in tampered:
        with pytest.raises(WebhookVerificationError):
            webhook.verify(tampered_body, tampered_headers)


def test_a_signature_is_the_spec_hmac_of_id_timestamp_and_body():
    # given the spec's construction: base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
    import hashlib
    import hmac

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, b"evt_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert signing.signature(secret=SECRET, msg_id="evt_1", timestamp=1700000000, body=b"{}") == f"v1,{expected}"


def test_two_secrets_sign_side_by_side_and_each_verifies():
    body, headers = _signed({"a": 1}, secrets=(SECRET, OTHER))
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(SECRET).verify(body, headers) == Webhook(OTHER).verify(body, headers) == {"a": 1}
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.secret_generate()).verify(body, headers)


def test_a_stale_timestamp_is_refused_by_the_library():
    body = b'{"a":1}'
    headers = signing.headers(secrets=[SECRET], msg_id="evt_1", timestamp=int(time.time()) - 600, body=body)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_secrets_are_random_whsec_base64_of_32_bytes():
    secrets = {signing.secret_generate() for _ in range(500)}
    assert len(secrets) == 500
    for secret in list(secrets)[:50]:
        assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:], validate=True)) == 32


@pytest.mark.django_db
def test_an_endpoint_secret_is_stored_encrypted_and_shown_only_by_its_prefix():
    # given a new endpoint and the secret handed back once
    endpoint, secret = services.webhook_endpoint_create(tenant=TenantFactory(), url="https://hooks.example.com/x",
                                                        actor=SYSTEM)
    row = WebhookEndpoint.unscoped.filter(pk=endpoint.pk).values().get()
    # then no column holds the secret or its key bytes; the prefix tells it apart; decryption gives it back
    assert secret not in repr(row) and secret[6:] not in repr(row)
    assert row["secret_prefix"] == secret[:10] and row["secret_encrypted"].startswith("gAAAA")
    assert signing.secret_decrypt(row["secret_encrypted"]) == secret


@pytest.mark.django_db
def test_a_rotation_signs_with_both_secrets_for_24_hours_then_with_the_new_one_only(time_machine):
    # given an endpoint whose secret is rotated
    time_machine.move_to(timezone.now(), tick=False)
    tenant = TenantFactory()
    endpoint, old = services.webhook_endpoint_create(tenant=tenant, url="https://hooks.example.com/x", actor=SYSTEM)
    endpoint, new = services.webhook_endpoint_rotate_secret(tenant=tenant, endpoint=endpoint, actor=SYSTEM)
    # then both sign during the window, and receivers holding either verify
    now = timezone.now()
    assert signing.signing_secrets(endpoint, now=now) == [new, old]
    body, headers = _signed({"a": 1}, secrets=signing.signing_secrets(endpoint, now=now))
    assert Webhook(old).verify(body, headers) and Webhook(new).verify(body, headers)
    # and after the window only the new one
    later = now + services.ROTATION_WINDOW + timedelta(seconds=1)
    assert signing.signing_secrets(endpoint, now=later) == [new]
    # and a second rotation keeps at most two: the newest and the one it replaced
    endpoint, newest = services.webhook_endpoint_rotate_secret(tenant=tenant, endpoint=endpoint, actor=SYSTEM)
    assert signing.signing_secrets(endpoint, now=timezone.now()) == [newest, new]


@pytest.mark.django_db
def test_the_callback_secret_is_one_row_per_tenant_made_or_rotated():
    tenant = TenantFactory()
    row, first = services.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    assert row.previous_secret_encrypted == "" and signing.signing_secrets(row, now=timezone.now()) == [first]
    row, second = services.webhook_callback_secret_rotate(tenant=tenant, actor=SYSTEM)
    assert WebhookCallbackSecret.unscoped.filter(tenant=tenant).count() == 1
    assert signing.signing_secrets(row, now=timezone.now()) == [second, first]


def test_the_encryption_key_can_be_rotated_and_a_wrong_key_is_a_clear_error(settings):
    # given a secret encrypted under the key derived from SECRET_KEY
    token = signing.secret_encrypt(SECRET)
    # when WEBHOOK_SECRETS_KEY lists a new key first and the old material after it; then it still decrypts
    settings.WEBHOOK_SECRETS_KEY = f"a brand new key, {settings.SECRET_KEY}"
    assert signing.secret_decrypt(token) == SECRET
    assert signing.secret_decrypt(signing.secret_encrypt(OTHER)) == OTHER
    # when only an unrelated key is configured; then decryption fails with SecretUnavailable
    settings.WEBHOOK_SECRETS_KEY = "some other key"
    with pytest.raises(signing.SecretUnavailable):
        signing.secret_decrypt(token)
