"""Our Twilio callback verifier agrees with the `twilio` package's RequestValidator on 500 generated requests."""
from __future__ import annotations

import hashlib
import json
import random
from urllib.parse import quote, urlencode, urlparse

from django.http import QueryDict
from twilio.request_validator import RequestValidator, add_port, remove_port

from messaging.carriers.config import CarrierConfig
from messaging.carriers.http import twilio
from messaging.carriers.http.verify import Callback, CallbackRefused

TOKEN = "12345678901234567890123456789012"
KEYS = ["MessageSid", "MessageStatus", "ErrorCode", "From", "To", "Body", "AccountSid", "a", "A", "b_", "Zé", "ß", "x y"]
VALUES = ["", "delivered", "+447700900123", "30003", "ça va", "a&b=c", "1+1", "émoji 🙂", " lead", "%41", "AA", "aa"]
HOSTS = ["portal.example", "Portal.Example.com", "127.0.0.1", "sms.example.org"]


def _url(rng: random.Random) -> str:
    scheme = rng.choice(["http", "https"])
    port = rng.choice(["", "", f":{443 if scheme == 'https' else 80}", f":{rng.randint(1024, 65535)}"])
    path = "/carriers/" + quote(rng.choice(["twilio-main", "tw ilio", "twílio", "x"]), safe="") + "/receipts"
    query = urlencode([(rng.choice(KEYS), rng.choice(VALUES)) for _ in range(rng.randint(0, 3))])
    return f"{scheme}://{rng.choice(HOSTS)}{port}{path}" + (f"?{query}" if query or rng.random() < 0.1 else "")


def _signature(rng: random.Random, url: str, params, signer: RequestValidator) -> str:
    """Mostly what Twilio would send (for the URL with or without its port); otherwise one of many wrong ones."""
    parsed = urlparse(url)
    choice = rng.random()
    if choice < 0.55:
        return signer.compute_signature(rng.choice([url, add_port(parsed), remove_port(parsed)]), params)
    if choice < 0.65:
        return RequestValidator("another-token-another-token-xx").compute_signature(url, params)
    if choice < 0.75:
        return signer.compute_signature(url + "x", params)
    if choice < 0.85:
        good = signer.compute_signature(url, params)
        return rng.choice([good[:-1], good + "=", good.lower(), "", " " + good, good[:-2] + "é"])
    tampered = params.copy() if isinstance(params, QueryDict) else {}  # a parameter the request does not have
    tampered["Extra"] = "1"
    return signer.compute_signature(url, tampered)


def _case(rng: random.Random, signer: RequestValidator):
    """(url, content type, body, what the oracle is given, signature)."""
    url = _url(rng)
    if rng.random() < 0.8:  # a form POST, as Messaging status and inbound callbacks are
        body = urlencode([(rng.choice(KEYS), rng.choice(VALUES)) for _ in range(rng.randint(0, 8))]).encode()
        params = QueryDict(body, mutable=False)  # what a Django view would hand the validator
        return url, "application/x-www-form-urlencoded", body, params, _signature(rng, url, params, signer)
    # A JSON body signed through bodySHA256 in the URL (sometimes a wrong hash, or the hash of another body).
    body = json.dumps({"MessageSid": f"SM{rng.randint(1, 99)}", "MessageStatus": rng.choice(VALUES)}).encode()
    digest = hashlib.sha256(body if rng.random() < 0.8 else body + b"!").hexdigest()
    url += ("&" if "?" in url else "?") + f"bodySHA256={digest}"
    return url, "application/json", body, body.decode(), _signature(rng, url, {}, signer)


def _ours(config: CarrierConfig, url: str, content_type: str, body: bytes, signature: str) -> bool:
    callback = Callback("POST", url, {"Content-Type": content_type, "X-Twilio-Signature": signature}, body)
    try:
        twilio.verified_params(config, callback)
    except CallbackRefused:
        return False
    return True


def test_it_agrees_with_twilios_request_validator_on_500_generated_requests():
    rng = random.Random(20261102)
    oracle = RequestValidator(TOKEN)
    config = CarrierConfig("twilio-main", "http", {"preset": "twilio"}, {"auth_token": TOKEN})
    verdicts = []
    disagreements = []
    for _ in range(500):
        url, content_type, body, oracle_params, signature = _case(rng, oracle)
        expected = oracle.validate(url, oracle_params, signature)
        ours = _ours(config, url, content_type, body, signature)
        verdicts.append(expected)
        if ours != expected:
            disagreements.append((url, body, signature, expected))

    assert disagreements == []
    assert 150 <= sum(verdicts) <= 350  # both verdicts well represented: the cases test something
