"""Rate limits (smsportal/api/ratelimit.py, throttling.py): exact counts under a frozen clock, in-process and in Redis.

The Redis cases run when REDIS_URL is set (CI; locally redis://127.0.0.1:6379/7) and are skipped otherwise.
Several processes on real clocks: test_ratelimit_servers.py; the send route: messaging/tests/test_send_rate_limit.py.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import UTC, datetime, timedelta
from numbers.tests.factories import shared_senders

import pytest

from accounts.models import IdempotencyRecord
from accounts.tests.api_assertions import assert_error
from smsportal.api.ratelimit import Limit, RateLimiterUnavailable, local_buckets_clear, rate_limits_hit
from smsportal.tests.ratelimit_helpers import rate_buckets_empty

REDIS_URL = os.environ.get("REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL=redis://127.0.0.1:6379/7")
URL = "/v1/test/limited"
START = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _shared_senders(db):
    """Shared sender numbers of the US and Canada: this module's alphanumeric senders to US numbers go from one
    (sender substitution: the US takes none; docs/compliance.md "Sender IDs")."""
    shared_senders("US", "CA")


@pytest.fixture(autouse=True)
def _fresh_buckets(settings):
    settings.MESSAGE_DESTINATION_RATE_LIMIT = ""  # every send goes to one number (its limit: test_accept_pipeline.py)
    local_buckets_clear()
    yield
    local_buckets_clear()


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def backend(request, settings):
    """The limiter's store: this process's memory (REDIS_URL unset) or Redis, emptied of rate-limit keys."""
    settings.REDIS_URL = REDIS_URL if request.param == "redis" else ""
    rate_buckets_empty(settings.REDIS_URL)
    return request.param


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(START, tick=False)
    return time_machine


def _limit(side, per_second: int) -> None:
    side.tenant.messages_per_second = per_second
    side.tenant.save(update_fields=["messages_per_second"])


def _send(api, side, n: int, **extra) -> list[int]:
    return [api.post(URL, {"to": "+14155550123"}, format="json", **side.auth, **extra).status_code for _ in range(n)]


def _hit(*limits: Limit, fail_closed: bool = False):
    return rate_limits_hit(limits, fail_closed=fail_closed)


pytestmark = [pytest.mark.django_db, pytest.mark.urls("smsportal.tests.ratelimit_urls")]


def test_it_allows_exactly_the_tenants_rate_per_second(world, api, backend, frozen):
    # given tenant A limited to 5 requests a second, and a frozen clock
    _limit(world.a, 5)
    # when A sends 7 at once
    # then 5 pass and the rest get 429
    assert _send(api, world.a, 7) == [201] * 5 + [429] * 2
    # when a full second passes, exactly 5 more pass
    frozen.shift(timedelta(seconds=1))
    assert _send(api, world.a, 6) == [201] * 5 + [429]
    # and the bucket refills smoothly: 0.4 s gives back two slots (one per 0.2 s)
    frozen.shift(timedelta(seconds=0.4))
    assert _send(api, world.a, 3) == [201, 201, 429]


def test_it_answers_429_rate_limited_with_a_whole_retry_after(world, api, backend, frozen):
    # given tenant A limited to 1 request a second, which it has used
    _limit(world.a, 1)
    assert _send(api, world.a, 1) == [201]
    # when it sends again
    refused = api.post(URL, {}, format="json", **world.a.auth)
    # then 429 rate_limited with an integer Retry-After of at least 1
    assert_error(refused, 429, "rate_limited")
    assert refused["Retry-After"] == "1"
    # and half a second later, still 1 (never 0), and after the second the request passes
    frozen.shift(timedelta(seconds=0.5))
    assert api.post(URL, {}, format="json", **world.a.auth)["Retry-After"] == "1"
    frozen.shift(timedelta(seconds=0.5))
    assert _send(api, world.a, 1) == [201]


def test_it_gives_a_retry_after_of_several_seconds_when_the_wait_is_longer(backend, frozen):
    # given a bucket of rate 1 and burst 1 that is used; then the wait reported is the full second
    assert _hit(Limit("slow", 1, rate=1)).allowed
    refused = _hit(Limit("slow", 1, rate=1))
    assert not refused.allowed and refused.retry_after == pytest.approx(1.0)
    # and a rate of 0 refuses everything
    assert not _hit(Limit("off", 1, rate=0)).allowed


def test_it_keeps_each_tenants_bucket_apart(world, api, backend, frozen):
    # given tenants A and B, both limited to 3 a second, and A's bucket empty
    _limit(world.a, 3)
    _limit(world.b, 3)
    assert _send(api, world.a, 4) == [201] * 3 + [429]
    # when B sends, then B has its own full bucket, and A is still refused
    assert _send(api, world.b, 4) == [201] * 3 + [429]
    assert _send(api, world.a, 1) == [429]


def test_it_shares_one_bucket_between_the_keys_of_a_tenant(world, api, backend, frozen):
    # given A limited to 4 a second and a second key of A
    from accounts.tests.factories import bearer, make_api_key

    _limit(world.a, 4)
    _, other = make_api_key(world.a.tenant, name="second")
    # when each key sends 2; then the tenant's bucket is empty for both
    assert _send(api, world.a, 2) == [201, 201]
    assert [api.post(URL, {}, format="json", **bearer(other)).status_code for _ in range(3)] == [201, 201, 429]


def test_it_counts_only_posts(world, api, backend, frozen):
    # given A limited to 2 a second; when it lists 10 times, then its sends are untouched
    _limit(world.a, 2)
    assert {api.get(URL, **world.a.auth).status_code for _ in range(10)} == {200}
    assert _send(api, world.a, 3) == [201, 201, 429]


def test_it_follows_a_change_of_the_tenants_rate(world, api, backend, frozen):
    # given A used up its second at a rate of 2
    _limit(world.a, 2)
    assert _send(api, world.a, 3) == [201, 201, 429]
    # when its account manager raises the rate to 6: the used second stays used (GCRA keeps time, not counts)
    _limit(world.a, 6)
    assert _send(api, world.a, 1) == [429]
    # then from the next second on, 6 pass each second
    frozen.shift(timedelta(seconds=1))
    assert _send(api, world.a, 7) == [201] * 6 + [429]


def test_it_never_stores_a_429_as_the_answer_to_an_idempotency_key(world, api, backend, frozen):
    # given A's bucket is empty
    _limit(world.a, 1)
    assert _send(api, world.a, 1) == [201]
    # when a request with an Idempotency-Key is refused
    assert _send(api, world.a, 1, HTTP_IDEMPOTENCY_KEY="send-1") == [429]
    # then no answer is kept for the key, and the retry after the wait runs
    assert not IdempotencyRecord.unscoped.exists()
    frozen.shift(timedelta(seconds=1))
    ok = api.post(URL, {"to": "+14155550123"}, format="json", HTTP_IDEMPOTENCY_KEY="send-1", **world.a.auth)
    assert ok.status_code == 201 and "Idempotent-Replayed" not in ok


def test_it_takes_exactly_the_burst_when_threads_race(backend, frozen):
    # given a limit of 20 a second and a frozen clock; when 8 threads each try 10 times at once
    barrier, results = threading.Barrier(8), []

    def hit():
        barrier.wait(timeout=10)
        results.extend(_hit(Limit("race", 7, rate=20)).allowed for _ in range(10))

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then exactly 20 of the 80 were allowed (the read-decide-write is atomic)
    assert len(results) == 80 and results.count(True) == 20


def test_it_fails_open_to_the_in_process_bucket_when_redis_is_down(world, api, settings, frozen, caplog):
    # given Redis configured but unreachable (nothing listens on port 1)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    _limit(world.a, 3)
    # when A sends 5
    with caplog.at_level(logging.WARNING, logger="smsportal.api.ratelimit"):
        statuses = _send(api, world.a, 5)
    # then no request fails with a 5xx: this process's bucket limits A instead, and a warning says so
    assert statuses == [201] * 3 + [429] * 2
    warnings = [r for r in caplog.records if r.name == "smsportal.api.ratelimit"]
    assert len(warnings) == 1 and "Redis unavailable" in warnings[0].getMessage()


def test_it_never_reopens_the_burst_for_a_call_stamped_a_microsecond_earlier(backend, frozen):
    # given a limit of 10 a second whose burst was taken at one instant
    limit = Limit("skew", 3, rate=10)
    assert [_hit(limit).allowed for _ in range(10)] == [True] * 10
    # when the next calls read a clock 1 µs behind (another thread or process read it just before)
    frozen.move_to(START - timedelta(microseconds=1), tick=False)
    # then they are refused like the rest of that second: a TAT in the future is never reset to now
    assert [_hit(limit).allowed for _ in range(10)] == [False] * 10
    # and the bucket refills at the rate from where it was: one slot per 0.1 s, not a new burst
    frozen.move_to(START + timedelta(seconds=0.25), tick=False)
    assert [_hit(limit).allowed for _ in range(4)] == [True, True, False, False]


def test_it_allows_only_when_every_limit_allows_and_counts_a_refusal_in_none(backend, frozen):
    # given a strict limit of 2 a second and a loose one of 5 a second, decided together
    strict, loose = Limit("strict", 4, rate=2), Limit("loose", 4, rate=5, subject="key-1")
    # when 4 requests count against both; then the strict one refuses the last two
    decisions = [_hit(strict, loose) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, False, False]
    # and says when to come back: the strict limit's next slot, half a second on
    assert decisions[-1].retry_after == pytest.approx(0.5)
    # and the refused two were not counted by the loose limit: 3 of its 5 are left
    assert [_hit(loose).allowed for _ in range(4)] == [True, True, True, False]


def test_it_counts_per_period_and_keeps_each_subject_apart(backend, frozen):
    # given 3 a minute for key 1 of tenant 5; when key 1 makes 4 requests, then the fourth waits 20 s
    key_1, key_2 = (Limit("api_key", 5, rate=3, period=60, subject=s) for s in ("1", "2"))
    decisions = [_hit(key_1) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].retry_after == pytest.approx(20)
    # and key 2 of the same tenant has its own bucket
    assert _hit(key_2).allowed


def test_it_fails_closed_when_asked_and_redis_is_down(settings, frozen):
    # given Redis configured but unreachable
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    limit = Limit("otp", 6, rate=5)
    # when a fail-closed limit is hit, then it is refused as unavailable: 503 with Retry-After
    with pytest.raises(RateLimiterUnavailable) as refused:
        _hit(limit, fail_closed=True)
    assert (refused.value.status, refused.value.code, refused.value.retry_after) == (503, "service_unavailable", 5)
    # and the same limit, not fail-closed, falls back to this process's bucket, untouched by the refusal
    assert [_hit(limit).allowed for _ in range(6)] == [True] * 5 + [False]


def test_it_does_not_ask_a_failing_redis_again_for_a_second(settings, frozen):
    # given a "Redis" that accepts connections and closes them at once
    accepted = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            connection.close()

    threading.Thread(target=serve, daemon=True).start()
    settings.REDIS_URL = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    try:
        # when a request is limited, then the limiter tried Redis (and once more) and fell back
        assert _hit(Limit("hung", 8, rate=5)).allowed
        tried = len(accepted)
        assert tried >= 1
        # and the next requests, within the second, do not wait on Redis again
        assert [_hit(Limit("hung", 8, rate=5)).allowed for _ in range(5)] == [True] * 4 + [False]
        with pytest.raises(RateLimiterUnavailable):
            _hit(Limit("hung", 8, rate=5), fail_closed=True)
        assert len(accepted) == tried
    finally:
        listener.close()


# --- the first-use marker (an Idempotency-Key seen in the same decision) ----------------------------


def test_a_repeat_of_a_first_use_marker_is_counted_in_no_bucket(backend):
    from smsportal.api.ratelimit import FirstUse

    limit = Limit(name="messages", tenant_id=9101, rate=2)
    marker = FirstUse(tenant_id=9101, subject="test:key-1", seconds=60)
    first = rate_limits_hit([limit], first_use=marker)
    repeat = rate_limits_hit([limit], first_use=marker)
    assert first.allowed and not first.repeated
    assert repeat.repeated and not repeat.allowed
    # the repeat took nothing: the bucket still has its second slot, and then none
    assert rate_limits_hit([limit]).allowed
    assert not rate_limits_hit([limit]).allowed


def test_a_refused_request_sets_no_marker(backend):
    from smsportal.api.ratelimit import FirstUse

    limit = Limit(name="messages", tenant_id=9102, rate=1)
    assert rate_limits_hit([limit]).allowed
    marker = FirstUse(tenant_id=9102, subject="test:key-2", seconds=60)
    refused = rate_limits_hit([limit], first_use=marker)
    assert not refused.allowed and not refused.repeated
    # so its retry is decided afresh, not taken for a repeat
    assert not rate_limits_hit([limit], first_use=marker).repeated


# --- riders: another counting script in the same call ----------------------------------------------------

# A rider that counts its one key and answers the count; its in-process twin does the same in a dict.
_COUNTER_LUA = "return redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))"
_local_counts: dict[str, int] = {}


def _local_counter(keys: list, args: list) -> int:
    _local_counts[keys[0]] = _local_counts.get(keys[0], 0) + int(args[0])
    return _local_counts[keys[0]]


def _counter(tenant_id: int, by: int = 1):
    from smsportal.api.ratelimit import Rider, key_prefix

    return Rider(source=_COUNTER_LUA, keys=[f"{key_prefix()}:ridertest:{{t{tenant_id}}}"], args=[by],
                 local=_local_counter)


@pytest.fixture
def counters(backend):
    _local_counts.clear()
    if backend == "redis":
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match="*:ridertest:*"):
            client.delete(key)
    yield
    _local_counts.clear()


def test_a_rider_runs_in_the_same_call_only_when_every_limit_allows(backend, frozen, counters):
    limit = Limit(name="messages", tenant_id=9201, rate=2)
    # when three requests carry a counting rider against a limit of 2 a second
    decisions = [rate_limits_hit([limit], riders=[_counter(9201), _counter(9201, by=10)]) for _ in range(3)]
    # then the two allowed ones ran both riders, in order, and answered their counts
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.riders for d in decisions] == [(1, 11), (12, 22), ()]
    # and the refused one counted nothing in them: the next allowed request sees 23
    frozen.move_to(START + timedelta(seconds=1), tick=False)
    assert rate_limits_hit([limit], riders=[_counter(9201)]).riders == (23,)


def test_a_repeat_runs_no_rider(backend, frozen, counters):
    from smsportal.api.ratelimit import FirstUse

    marker = FirstUse(tenant_id=9202, subject="test:key-3", seconds=60)
    first = rate_limits_hit([Limit(name="messages", tenant_id=9202, rate=5)], first_use=marker,
                            riders=[_counter(9202)])
    repeat = rate_limits_hit([Limit(name="messages", tenant_id=9202, rate=5)], first_use=marker,
                             riders=[_counter(9202)])
    assert first.riders == (1,) and repeat.repeated and repeat.riders == ()
    assert rate_limits_hit([], riders=[_counter(9202)]).riders == (2,)  # no limits at all: the rider still runs


def test_a_rider_falls_back_to_this_process_when_redis_is_down(settings, frozen, counters):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    decision = rate_limits_hit([Limit(name="messages", tenant_id=9203, rate=5)], riders=[_counter(9203)])
    assert decision.allowed and decision.riders == (1,)
    assert _local_counts == {_counter(9203).keys[0]: 1}
