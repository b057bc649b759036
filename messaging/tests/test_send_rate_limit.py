"""POST /v1/messages is limited per tenant (Tenant.messages_per_second), across all its keys, and per key.

The limits themselves: smsportal/tests/test_ratelimit.py; several server processes: test_ratelimit_servers.py.
"""
import logging
import os
from datetime import UTC, datetime, timedelta
from numbers.tests.factories import shared_senders

import pytest
import time_machine

from accounts.models import Tenant
from accounts.tests.api_assertions import assert_error
from accounts.tests.factories import make_api_key
from messaging.models import Message
from smsportal.api.throttling import ApiKeyRateThrottle
from smsportal.tests.ratelimit_helpers import rate_buckets_empty

pytestmark = pytest.mark.django_db

BODY = {"to": "+14155550123", "from": "Acme", "text": "hello"}
REDIS_URL = os.environ.get("REDIS_URL", "")
START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture(autouse=True)
def _fresh_buckets(settings):
    # These tests send to one number far more often than its own limit allows (test_accept_pipeline.py).
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""
    rate_buckets_empty(REDIS_URL)
    yield
    rate_buckets_empty(REDIS_URL)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="needs Redis"))])
def backend(request, settings):
    """Where the tenant's bucket lives: this process (REDIS_URL unset) or Redis."""
    settings.REDIS_URL = REDIS_URL if request.param == "redis" else ""
    return request.param


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


def _limit(side, per_second: int) -> None:
    Tenant.objects.filter(pk=side.tenant.pk).update(messages_per_second=per_second)


def _sends(api, side, n: int, **body) -> list[int]:
    return [api.post("/v1/messages", {**BODY, **body}, format="json", **side.auth).status_code for _ in range(n)]


def _stored(side) -> list[str]:
    """The message types of the side's stored messages, oldest first."""
    return list(Message.unscoped.filter(tenant=side.tenant).order_by("pk").values_list("message_type", flat=True))


def test_it_answers_429_with_retry_after_past_the_tenant_rate_and_stores_nothing_more(world, api):
    # given tenant A allows 3 sends per second, and two of its keys
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=3)
    _key, other_secret = make_api_key(world.a.tenant, scopes=["messages:send"], name="second")
    before = Message.unscoped.filter(tenant=world.a.tenant).count()
    with time_machine.travel(START, tick=False):  # after the world's own sends, which count too
        # when five sends arrive in the same second, split across the keys
        statuses = [api.post("/v1/messages", BODY, format="json", **world.a.auth).status_code for _ in range(3)]
        limited = api.post("/v1/messages", BODY, format="json", HTTP_AUTHORIZATION=f"Bearer {other_secret}")
        # then the first three are accepted and the rest refused, whichever key they use
        assert statuses == [202, 202, 202]
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited["Retry-After"]) >= 1
        # and tenant B is not affected by A's bucket
        assert api.post("/v1/messages", BODY, format="json", **world.b.auth).status_code == 202
    assert Message.unscoped.filter(tenant=world.a.tenant).count() == before + 3


def test_a_send_stamped_a_microsecond_earlier_does_not_reopen_the_burst(world, api, backend, frozen):
    # given A limited to 3 sends a second, all taken at one instant
    _limit(world.a, 3)
    before = _stored(world.a)
    assert _sends(api, world.a, 3) == [202] * 3
    # when the next sends read a clock 1 µs earlier (a thread or process that read it just before)
    frozen.move_to(START - timedelta(microseconds=1), tick=False)
    # then they are refused: the tenant's second is used, whatever clock asks
    assert _sends(api, world.a, 3) == [429] * 3
    assert _stored(world.a) == before + ["transactional"] * 3


def test_a_send_the_tenant_limit_refuses_is_not_counted_by_the_per_key_limit(world, api, backend, frozen,
                                                                             monkeypatch):
    # given A's key may make 5 requests a minute, and A may send 2 messages a second
    monkeypatch.setattr(ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "5/m"})
    _limit(world.a, 2)
    # when the key sends 5 messages in that second: the tenant's limit refuses the last three
    assert _sends(api, world.a, 5) == [202, 202, 429, 429, 429]
    # then those three were counted nowhere: the key has 3 requests of its minute left
    assert [api.get("/v1/messages", **world.a.auth).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_with_redis_down_otp_sends_fail_closed_and_other_sends_use_the_local_bucket(world, api, settings, frozen,
                                                                                   caplog):
    # given Redis configured but unreachable (nothing listens on port 1), and A limited to 2 sends a second
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    _limit(world.a, 2)
    before = _stored(world.a)
    with caplog.at_level(logging.WARNING, logger="smsportal.api.ratelimit"):
        # when A sends an OTP, then it is refused as unavailable (503, Retry-After), whatever the case
        for message_type in ("otp", " OTP "):
            refused = api.post("/v1/messages", {**BODY, "message_type": message_type}, format="json", **world.a.auth)
            assert_error(refused, 503, "service_unavailable")
            assert refused["Retry-After"] == "5"
        # and transactional sends pass, limited by this process's own bucket of 2 a second
        assert _sends(api, world.a, 3, message_type="transactional") == [202, 202, 429]
    # and no OTP was stored, and the log says once that Redis is down
    assert _stored(world.a) == before + ["transactional"] * 2
    warnings = [r for r in caplog.records if r.name == "smsportal.api.ratelimit"]
    assert len(warnings) == 1 and "Redis unavailable" in warnings[0].getMessage()
