"""Fraud and pumping defence (issue 12, section 8): velocity rules with evidence, shadow mode, allow-listing,
the OTP dedupe and the per-number OTP limit. Each runs on this process's counters and, with REDIS_URL, on Redis."""
from datetime import UTC, datetime, timedelta
from numbers.tests.factories import shared_senders

import pytest
import time_machine

from accounts.models import Tenant
from accounts.services import SYSTEM
from accounts.tests.api_assertions import assert_error
from compliance import fraud, geo, services
from compliance.models import FraudAllowance, FraudRule, FraudSignal, GeoPermission, SenderId
from messaging.models import Message

pytestmark = pytest.mark.django_db

START = datetime(2030, 1, 8, 15, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def shared(world) -> dict[str, str]:
    """Where this module's "Acme" goes: approved for Nigeria and India (which take only registered sender IDs), and
    shared sender numbers where none is taken (the US, Canada, China, Brazil): compliance/tests/test_sender_ids.py."""
    for side in (world.a, world.b):
        SenderId.unscoped.create(tenant=side.tenant, value="Acme", countries=["NG", "IN"], use_case="codes",
                                 status=SenderId.Status.APPROVED)
    return shared_senders("US", "CA", "CN", "BR")


@pytest.fixture(autouse=True)
def _setup(world, settings, time_machine):
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""
    Tenant.objects.filter(pk__in=[world.a.tenant.pk, world.b.tenant.pk]).update(messages_per_second=10_000)
    FraudRule.objects.update(mode=FraudRule.Mode.OFF)
    fraud.rules_cache_clear()  # (update() sends no signal)
    # Nigeria (+234, the pumping-prone destination these tests send to) is high-risk and needs approval
    for side in (world.a, world.b):
        GeoPermission.unscoped.create(tenant=side.tenant, country="NG", enabled=True, approved_at=START)
    geo.geo_cache_clear()
    time_machine.move_to(START, tick=False)


def _rule(code: str, **changes) -> FraudRule:
    """Change a rule as admin does (save: its signal clears the process cache)."""
    rule = FraudRule.objects.get(code=code)
    for name, value in changes.items():
        setattr(rule, name, value)
    rule.save()
    return rule


def _numbers(count: int, *, start: int = 0, step: int = 1) -> list[str]:
    return [f"+234803{1000000 + start + i * step}" for i in range(count)]


def _batch(api, side, numbers, **fields):
    body = {"defaults": {"from": "Acme", "text": "Your code is 1234", "message_type": "otp", **fields},
            "messages": [{"to": n} for n in numbers]}
    return api.post("/v1/messages/batch", body, format="json", **side.auth)


def _send(api, side, to, **fields):
    return api.post("/v1/messages", {"to": to, "from": "Acme", "text": "Your code is 1234", "message_type": "otp",
                                     **fields}, format="json", **side.auth)


def test_it_blocks_a_burst_to_one_prefix_with_its_evidence(world, api, backend):
    # given the prefix rule blocking at 20 messages a minute (and 5x the baseline, at least 3 a minute)
    _rule("prefix_burst", mode="block", min_count=20, baseline_multiplier=5, prefix_digits=5)
    # when A sends 19 messages to +23480... in one batch, then one more (every number different, spread out)
    first = _batch(api, world.a, _numbers(19, step=37, start=0))
    refused = _send(api, world.a, _numbers(1, start=90_001)[0])
    # then the batch went, and the 20th is refused with the rule's reason and the evidence
    assert first.status_code == 202 and first.json()["accepted"] == 19
    error = assert_error(refused, 422, "fraud_suspected", field="to")
    assert error["reason"] == "prefix_burst"
    assert "+23480: 20 messages in 60 s to 20 distinct numbers, baseline 3/min" in error["message"]
    # and it is recorded once as a signal to review, and nothing was stored for it
    signal = FraudSignal.unscoped.get(tenant=world.a.tenant)
    assert (signal.rule.code, signal.subject, signal.action, signal.review) == ("prefix_burst", "+23480", "blocked", "open")
    assert signal.figures["count"] == 20 and signal.evidence in error["message"]
    assert Message.unscoped.filter(tenant=world.a.tenant, to__startswith="+23480").count() == 19
    # a further send in the same window is refused too, without a second signal; B is not affected
    assert _send(api, world.a, _numbers(1, start=90_002)[0]).status_code == 422
    assert FraudSignal.unscoped.filter(tenant=world.a.tenant).count() == 1
    assert _send(api, world.b, _numbers(1, start=90_003)[0]).status_code == 202


def test_it_blocks_a_run_of_sequential_numbers(world, api, backend):
    # given the sequential rule: 10 messages, 5x baseline, most numbers next to another of the window
    _rule("sequential_run", mode="block", min_count=10, baseline_multiplier=1, baseline_floor=2, prefix_digits=8)
    # when A sends to ten consecutive numbers, one request each
    statuses = [_send(api, world.a, number).status_code for number in _numbers(10, start=5000)]
    # then the tenth is refused: a run, not the same volume spread over the range
    assert statuses == [202] * 9 + [422]
    assert "next to another number of the run" in FraudSignal.unscoped.get(tenant=world.a.tenant).evidence
    spread = [_send(api, world.b, number).status_code for number in _numbers(10, start=10, step=97)]
    assert spread == [202] * 10


def test_a_shadow_rule_records_the_signal_and_sends(world, api, backend):
    _rule("prefix_burst", mode="shadow", min_count=5, baseline_multiplier=1, baseline_floor=1)
    response = _batch(api, world.a, _numbers(6, step=11))
    assert response.status_code == 202 and response.json()["accepted"] == 6
    assert FraudSignal.unscoped.get(tenant=world.a.tenant).action == "shadow"


def test_the_quote_says_would_be_blocked_and_counts_nothing(world, api, backend):
    _rule("prefix_burst", mode="block", min_count=3, baseline_multiplier=1, baseline_floor=1)
    assert _batch(api, world.a, _numbers(2, step=13)).status_code == 202
    # when A quotes a third one (twice)
    body = {"to": _numbers(1, start=77_777)[0], "from": "Acme", "text": "Your code is 1", "message_type": "otp"}
    quotes = [api.post("/v1/messages/quote", body, format="json", **world.a.auth) for _ in range(2)]
    # then each says fraud_suspected, records no signal and counts nothing: a quote is not a send
    for quote in quotes:
        assert_error(quote, 422, "fraud_suspected", field="to")
    assert not FraudSignal.unscoped.exists()
    assert _send(api, world.a, _numbers(1, start=88_888)[0]).status_code == 422  # the third real one


def test_an_allow_listed_case_is_sent_and_suspending_stops_the_tenant(world, api, backend):
    _rule("prefix_burst", mode="block", min_count=3, baseline_multiplier=1, baseline_floor=1)
    assert _batch(api, world.a, _numbers(3, step=7)).json()["rejected"] == 3
    signal = FraudSignal.unscoped.get(tenant=world.a.tenant)
    # when an account manager allow-lists the case
    services.fraud_signal_allowlist(signal=signal, actor=SYSTEM)
    # then the same traffic goes, and the review is on the signal
    assert _batch(api, world.a, _numbers(3, step=7, start=500)).json()["accepted"] == 3
    assert FraudAllowance.unscoped.filter(tenant=world.a.tenant, subject="+23480").exists()
    signal.refresh_from_db()
    assert signal.review == "allowlisted"
    # and suspending the tenant from a signal refuses its API
    services.fraud_signal_tenant_suspend(signal=signal, actor=SYSTEM)
    assert Tenant.objects.get(pk=world.a.tenant.pk).status == "suspended"
    assert _send(api, world.a, _numbers(1, start=900)[0]).status_code == 403


def test_it_answers_a_duplicate_otp_with_the_first_message(world, api, backend):
    # given an OTP sent to a number
    first = _send(api, world.a, "+14155550123", text="Your code is 555111")
    # when the same code to the same number comes again within 30 s
    with time_machine.travel(START + timedelta(seconds=10), tick=False):
        again = _send(api, world.a, "+14155550123", text="Your code is 555111")
        other_text = _send(api, world.a, "+14155550123", text="Your code is 999000")
        other_tenant = _send(api, world.b, "+14155550123", text="Your code is 555111")
    # then the answer is the first message, marked deduplicated, and it is stored once
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["deduplicated"] is True
    assert "deduplicated" not in first.json()
    assert Message.unscoped.filter(tenant=world.a.tenant, text="Your code is 555111").count() == 1
    # another text, or another tenant, is a new message
    assert other_text.json()["id"] != first.json()["id"] and other_tenant.json()["id"] != first.json()["id"]


def test_a_duplicate_in_a_batch_is_deduplicated_too(world, api, backend):
    first = _send(api, world.a, "+14155550124", text="Code 1")
    response = _batch(api, world.a, ["+14155550124", "+14155550125"], text="Code 1")
    results = response.json()["results"]
    assert results[0] == {"index": 0, "id": first.json()["id"], "status": "queued", "deduplicated": True}
    assert "deduplicated" not in results[1]


def test_the_dedupe_window_ends(world, api, settings):
    settings.REDIS_URL = ""  # the marker's lifetime is Redis's own clock there; here the frozen one
    first = _send(api, world.a, "+14155550126", text="Code 2").json()
    with time_machine.travel(START + timedelta(seconds=31), tick=False):
        later = _send(api, world.a, "+14155550126", text="Code 2").json()
    assert later["id"] != first["id"] and "deduplicated" not in later


def test_a_refused_otp_leaves_no_dedupe_marker(world, api, backend, settings):
    # given an OTP refused after the dedupe check (by the per-number limit, here 1 an hour)
    settings.MESSAGE_OTP_DESTINATION_RATE_LIMIT = "1/h"
    assert _send(api, world.a, "+14155550127", text="Code A").status_code == 202
    assert _send(api, world.a, "+14155550127", text="Code B").status_code == 429
    # when the same code B comes again later: it is not answered with a message that was never stored
    with time_machine.travel(START + timedelta(hours=1), tick=False):
        retry = _send(api, world.a, "+14155550127", text="Code B")
    assert retry.status_code == 202 and "deduplicated" not in retry.json()


def test_it_limits_otp_to_one_number_to_five_an_hour(world, api, backend):
    # given five OTPs (different codes) to one number
    statuses = [_send(api, world.a, "+14155550128", text=f"Your code is {n}").status_code for n in range(5)]
    # when a sixth comes in the same hour
    sixth = _send(api, world.a, "+14155550128", text="Your code is 6")
    # then it is 429 with Retry-After; other numbers, and other types, are not held back
    assert statuses == [202] * 5
    assert_error(sixth, 429, "rate_limited")
    assert int(sixth["Retry-After"]) > 60
    assert _send(api, world.a, "+14155550129", text="Your code is 6").status_code == 202
    assert _send(api, world.a, "+14155550128", text="Order shipped", message_type="transactional").status_code == 202
    assert Message.unscoped.filter(tenant=world.a.tenant, to="+14155550128", message_type="otp").count() == 5


@pytest.fixture
def script_calls(monkeypatch):
    """Every Lua script call made to Redis (a spy on redis-py's Script, which still runs them)."""
    from redis.commands.core import Script

    calls = []
    real = Script.__call__

    def counting(self, *args, **kwargs):
        calls.append(self.script)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Script, "__call__", counting)
    return calls


def test_a_send_counts_its_limits_velocity_and_dedupe_in_one_script_call(world, api, backend, script_calls):
    # given the velocity rules on (shadow) and the OTP dedupe
    _rule("prefix_burst", mode="shadow", min_count=50)
    for n in range(3):
        script_calls.clear()
        # when an OTP is sent; then one script call counted its rate limits, its velocity and set its marker
        assert _send(api, world.a, _numbers(1, start=n)[0], text=f"Your code is {n}").status_code == 202
        assert len(script_calls) == (1 if backend == "redis" else 0)


def test_a_send_refused_with_429_counts_in_no_velocity_window(world, api, backend):
    # given a block rule at 3 messages a minute to one prefix, and a tenant limited to 2 messages a second
    _rule("prefix_burst", mode="block", min_count=3, baseline_multiplier=1, baseline_floor=1)
    Tenant.objects.filter(pk=world.a.tenant.pk).update(messages_per_second=2)
    # when 5 sends come in the same instant: two pass, three are 429
    statuses = [_send(api, world.a, _numbers(1, start=10 * n)[0], text=f"Your code is {n}").status_code
                for n in range(5)]
    assert statuses == [202, 202, 429, 429, 429]
    # then the window holds the two sent only: the next second's send is the third, and the rule fires on it
    time_machine_move = START + timedelta(seconds=1)
    with time_machine.travel(time_machine_move, tick=False):
        assert _send(api, world.a, _numbers(1, start=777)[0], text="Your code is 7").status_code == 422
    assert FraudSignal.unscoped.filter(tenant=world.a.tenant).count() == 1
