"""Request rate limits (GCRA): every limit of one request decided at once, atomically in Redis.

`rate_limits_hit([Limit(...), ...])` counts one request (or a limit's `cost`: a batch of 1,000
messages counts 1,000) against each of its limits and returns one `Decision`. The request is allowed only if every limit allows it; a refused request is counted in
no bucket, so the per-key limit does not fill up with sends the tenant's limit refused. With Redis
it is one Lua script, one round trip, for all the limits of the request. The DRF throttles that
build the limits of a /v1 request are in smsportal/api/throttling.py.

GCRA (Brandur, "Rate limiting"; Stripe's request limiter): one number per bucket, the theoretical
arrival time (TAT) of the next request, at least now. A request is allowed when
max(TAT, now) + interval - burst * interval <= now; then TAT becomes max(TAT, now) + interval.
Time is the caller's clock in integer microseconds (hosts keep it within milliseconds by NTP; tests
freeze it, also for Redis), and a TAT in the future is never moved back: a caller whose clock is a little behind another's (another
process or host, or a thread that read the clock just before the other) sees fewer free slots,
never a fresh burst. (Until issue 8 a TAT beyond now + burst was reset to now, for a clock that
went back: under concurrency one call stamped 1 µs earlier reopened a full burst.) Over any window
of T seconds a bucket admits at most burst + rate * (T + skew), where skew is how far the fastest
admitting clock leads; a clock that jumps ahead by D refuses the bucket's other callers for D.
Every key carries the tenant, as a Redis hash tag, so all the buckets of a request share a slot.

When Redis is down (REDIS_URL set, Redis unreachable or failing), the decision depends on the limit:
- `fail_closed=True` (OTP sends): `RateLimiterUnavailable`, answered 503 `service_unavailable` with
  `Retry-After`. Not 429: the client has not exceeded anything and should not slow its own rate,
  but retry once we can count again. SMS pumping (OWASP API4/API6) goes for exactly the moment
  limits fail open, and an OTP is the message it pumps.
- otherwise: this process's own in-process bucket (each process then allows the full rate) with a
  warning at most once a minute; a Redis outage refuses no ordinary traffic wholesale. For a second
  after a failure Redis is not asked again, so a hung Redis does not add its timeout to every request.
When REDIS_URL is unset (one machine, `make run`) the in-process bucket is the limiter, for all traffic.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from smsportal.errors import ServiceUnavailable

logger = logging.getLogger("smsportal.api.ratelimit")

REDIS_TIMEOUT = 0.5  # seconds; a hung Redis must not hold a request long
REDIS_RETRY_AFTER_FAILURE = 1.0  # seconds during which a process skips a Redis that just failed
WARNING_INTERVAL = 60.0  # seconds between "Redis unavailable" warnings from one process
LOCAL_BUCKETS_MAX = 10_000  # in-process buckets kept before the expired ones are dropped

# KEYS: the buckets, then (when ARGV[2] > 0) a first-use marker; ARGV[1] now (µs), ARGV[2] the marker's
# lifetime (ms, 0 for none), then per bucket its increment (µs: interval times cost) and its tolerance
# (µs: interval times burst).
# Returns {1, 0} when every bucket allows (all move on, the marker is set), {0, wait µs} when one refuses,
# and {2, 0} when the marker is already there (a repeat of a request: nothing counted); nothing is written
# but on {1, 0}.
# A TAT behind now counts from now; a TAT ahead of now is kept as it is (see the module docstring).
# A key outlives its TAT by a minute (an expired TAT means "now" anyway), so a slow caller with a
# frozen test clock does not see its bucket vanish.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local marker_ms = tonumber(ARGV[2])
local buckets = #KEYS
if marker_ms > 0 then
  buckets = buckets - 1
  if redis.call('EXISTS', KEYS[#KEYS]) == 1 then return {2, 0} end
end
local new_tats, wait = {}, 0
for i = 1, buckets do
  local increment = tonumber(ARGV[1 + 2 * i])
  local tolerance = tonumber(ARGV[2 + 2 * i])
  local tat = math.max(tonumber(redis.call('GET', KEYS[i]) or now), now)
  new_tats[i] = tat + increment
  wait = math.max(wait, new_tats[i] - tolerance - now)
end
if wait > 0 then return {0, wait} end
for i = 1, buckets do
  redis.call('SET', KEYS[i], string.format('%.0f', new_tats[i]), 'PX', math.ceil((new_tats[i] - now) / 1000) + 60000)
end
if marker_ms > 0 then redis.call('SET', KEYS[#KEYS], 1, 'PX', marker_ms) end
return {1, 0}
"""


@dataclass(frozen=True)
class Limit:
    """One bucket: `rate` requests per `period` seconds, up to `burst` at once (default `rate`).

    `name` says which limit ("messages", "api_key"); `subject` narrows it inside the tenant
    (an API key's id, a recipient), empty for a tenant-wide bucket. `cost` is how many requests this
    one counts as (the messages of a batch). A rate of 0 refuses everything.
    """

    name: str
    tenant_id: int
    rate: int
    period: float = 1.0
    burst: int | None = None
    subject: str = ""
    cost: int = 1

    @property
    def interval(self) -> int:
        """Microseconds per request."""
        return max(1, round(self.period * 1_000_000 / self.rate))

    @property
    def increment(self) -> int:
        """Microseconds this request moves the bucket's TAT by."""
        return self.interval * self.cost

    @property
    def exceeds_burst(self) -> bool:
        """Whether this request costs more than the bucket ever holds: it can never be allowed.

        (A rate of 0 is a stop, not a size: rate_limits_hit refuses it with a Retry-After.)"""
        return 0 < (self.burst or self.rate) < self.cost

    @property
    def tolerance(self) -> int:
        """Microseconds a TAT may lead now: the burst's worth of intervals."""
        return self.interval * (self.burst or self.rate)

    @property
    def key(self) -> str:
        suffix = f":{self.subject}" if self.subject else ""
        return f"{_key_prefix()}:ratelimit:{{t{self.tenant_id}}}:{self.name}{suffix}"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a request would be allowed; 0 when allowed
    repeated: bool = False  # the first-use marker was there: a repeat, counted in no bucket
    riders: tuple = ()  # each Rider's answer, in order, when allowed (not run otherwise)


@dataclass(frozen=True)
class Rider:
    """Another counting script that rides in the same Redis call as the limits, run only when every limit allows
    (so a refused or repeated request counts in no rider either): compliance's fraud velocity and OTP dedupe.

    `source` is a Lua chunk that reads its own KEYS and ARGV (`keys`, `args`) and returns its answer; its keys
    must carry the tenant's hash tag like the buckets'. `local(keys, args)` is the same arithmetic on this
    process's state, for when there is no Redis to ask (REDIS_URL unset, or Redis failing and the limits fail
    open)."""

    source: str
    keys: Sequence[str]
    args: Sequence
    local: Callable[[list, list], list]


@dataclass(frozen=True)
class FirstUse:
    """A marker set with the counting, in the same decision: the first request that names `subject` (an
    Idempotency-Key) is counted and sets it; a repeat while it lives is counted in no bucket and told so
    (Decision.repeated). Concurrent repeats of one idempotent send thus never spend its rate."""

    tenant_id: int
    subject: str
    seconds: float

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.subject.encode()).hexdigest()[:32]  # the client's key itself is not kept
        return f"{_key_prefix()}:firstuse:{{t{self.tenant_id}}}:{digest}"


class RateLimiterUnavailable(ServiceUnavailable):
    """Redis is down and the limit fails closed (OTP sends): answered 503 with Retry-After."""

    message = "Sending OTP messages is paused for a moment: we cannot check your rate limits. Try again shortly."


def rate_limits_hit(limits: Sequence[Limit], *, fail_closed: bool = False, first_use: FirstUse | None = None,
                    riders: Sequence[Rider] = ()) -> Decision:
    """Count one request against every limit in `limits`: allowed only if all allow, counted only if allowed.

    With `first_use`, a request whose marker is already set is a repeat: counted nowhere, Decision.repeated.
    `riders` run in the same call once the request is allowed; their answers are Decision.riders.
    Raises RateLimiterUnavailable when Redis is down and `fail_closed` (see the module docstring).
    """
    if not limits and first_use is None and not riders:
        return Decision(True, 0.0)
    if any(limit.rate <= 0 for limit in limits):
        return Decision(False, 1.0)  # an account manager stopped the tenant: no need to ask Redis
    now = time.time_ns() // 1000  # integer µs: no float rounding at a slot boundary
    if settings.REDIS_URL:
        if time.monotonic() >= _redis_skip_until:
            try:
                return _redis_hit(settings.REDIS_URL, limits, now, first_use, riders)
            except redis.RedisError as exc:
                _redis_failed(exc, fail_closed)
        if fail_closed:
            raise RateLimiterUnavailable()
    decision = _local_hit(limits, now, first_use)
    if not decision.allowed or not riders:
        return decision
    return Decision(True, 0.0, riders=tuple(rider.local(list(rider.keys), list(rider.args)) for rider in riders))


# --- Redis -------------------------------------------------------------------------------------

_scripts: dict[str, Script] = {}
_redis_skip_until = float("-inf")
_last_warning = float("-inf")


_clients: dict[str, redis.Redis] = {}


def _client(url: str) -> redis.Redis:
    client = _clients.get(url)
    if client is None:
        # One retry, at once: it replaces a pooled connection that Redis closed; more would
        # multiply REDIS_TIMEOUT for a Redis that hangs.
        client = _clients[url] = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                                      socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 1))
    return client


def _script(url: str, source: str = _GCRA_LUA) -> Script:
    """A script (the GCRA one by default) on one client (one connection pool) per process and URL, made once."""
    script = _scripts.get(f"{url}\n{source}")
    if script is None:
        script = _scripts[f"{url}\n{source}"] = _client(url).register_script(source)
    return script


def redis_script_run(source: str, *, keys: Sequence[str], args: Sequence) -> list | None:
    """Run another counting script (compliance's fraud velocity) on the rate limiter's client: one round trip.

    None when there is no Redis to ask (REDIS_URL unset, or Redis failing: then, as for the limits that fail
    open, the caller counts in this process). Redis is not asked again for a second after a failure."""
    if not settings.REDIS_URL or time.monotonic() < _redis_skip_until:
        return None
    try:
        return _script(settings.REDIS_URL, source)(keys=list(keys), args=list(args))
    except redis.RedisError as exc:
        _redis_failed(exc, False)
        return None


def key_prefix() -> str:
    """The prefix of every key this process writes in Redis (CACHE_KEY_PREFIX)."""
    return _key_prefix()


def _redis_hit(url: str, limits: Sequence[Limit], now: int, first_use: FirstUse | None,
               riders: Sequence[Rider] = ()) -> Decision:
    args = [now, math.ceil(first_use.seconds * 1000) if first_use else 0]
    for limit in limits:
        args += [limit.increment, limit.tolerance]
    keys = [limit.key for limit in limits] + ([first_use.key] if first_use else [])
    if not riders:
        outcome, wait = _script(url)(keys=keys, args=args)
        return Decision(outcome == 1, wait / 1_000_000, repeated=outcome == 2)
    # The composed script: ARGV starts with the size of each part (the limits', then each rider's keys and
    # args), then every part's ARGV in order; KEYS likewise.
    sizes = [len(riders), len(keys), len(args)]
    all_keys, all_args = list(keys), []
    for rider in riders:
        sizes += [len(rider.keys), len(rider.args)]
        all_keys += rider.keys
        all_args += rider.args
    answer = _script(url, _composed(tuple(rider.source for rider in riders)))(keys=all_keys,
                                                                              args=[*sizes, *args, *all_args])
    outcome, wait = answer[0]
    if outcome != 1:
        return Decision(False, wait / 1_000_000, repeated=outcome == 2)
    return Decision(True, 0.0, riders=tuple(answer[1:]))


_COMPOSED_LUA = """
local function part(list, from, count)
  local out = {}
  for i = 1, count do out[i] = list[from + i - 1] end
  return out
end
local parts = tonumber(ARGV[1])
local header = 2 + 2 * (parts + 1)
local kpos, apos = 1, header
local sizes = {}
for i = 0, parts do sizes[i] = {tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])} end
local function take(i)
  local k, a = part(KEYS, kpos, sizes[i][1]), part(ARGV, apos, sizes[i][2])
  kpos, apos = kpos + sizes[i][1], apos + sizes[i][2]
  return k, a
end
local gk, ga = take(0)
local first = limits(gk, ga)
if first[1] ~= 1 then return {first} end
local out = {first}
"""


@functools.cache
def _composed(sources: tuple[str, ...]) -> str:
    """The GCRA script and `sources` (riders) as one: each a local function of its own KEYS and ARGV."""
    chunks = [f"local function limits(KEYS, ARGV)\n{_GCRA_LUA}\nend"]
    chunks += [f"local function rider{i}(KEYS, ARGV)\n{source}\nend" for i, source in enumerate(sources)]
    calls = "".join(f"do local k, a = take({i + 1}); out[{i + 2}] = rider{i}(k, a) end\n"
                    for i in range(len(sources)))
    return "\n".join(chunks) + _COMPOSED_LUA + calls + "return out\n"


def _redis_failed(exc: Exception, fail_closed: bool) -> None:
    global _last_warning, _redis_skip_until
    _redis_skip_until = time.monotonic() + REDIS_RETRY_AFTER_FAILURE
    if time.monotonic() - _last_warning >= WARNING_INTERVAL:
        _last_warning = time.monotonic()
        logger.warning("rate limiter: Redis unavailable (%s); OTP sends refused with 503, other requests "
                       "limited by this process's own buckets", exc)


def _key_prefix() -> str:
    return settings.CACHES["default"].get("KEY_PREFIX") or "smsportal"


# --- in-process ------------------------------------------------------------------------------------

_local_tats: dict[str, int] = {}
_local_markers: dict[str, int] = {}  # first-use marker -> until (µs)
_local_lock = threading.Lock()


def _local_hit(limits: Sequence[Limit], now: int, first_use: FirstUse | None = None) -> Decision:
    # The same arithmetic as the Lua script, under one lock for read-decide-write.
    with _local_lock:
        if first_use is not None and _local_markers.get(first_use.key, 0) > now:
            return Decision(False, 0.0, repeated=True)
        if not limits:
            _marker_set(first_use, now)
            return Decision(True, 0.0)
        new_tats = {limit.key: max(_local_tats.get(limit.key, now), now) + limit.increment for limit in limits}
        wait = max(new_tats[limit.key] - limit.tolerance - now for limit in limits)
        if wait > 0:
            return Decision(False, wait / 1_000_000)
        if len(_local_tats) > LOCAL_BUCKETS_MAX:
            for key in [key for key, tat in _local_tats.items() if tat < now]:
                del _local_tats[key]
        _local_tats.update(new_tats)
        _marker_set(first_use, now)
        return Decision(True, 0.0)


def _marker_set(first_use: FirstUse | None, now: int) -> None:
    if first_use is None:
        return
    if len(_local_markers) > LOCAL_BUCKETS_MAX:
        for key in [key for key, until in _local_markers.items() if until <= now]:
            del _local_markers[key]
    _local_markers[first_use.key] = now + round(first_use.seconds * 1_000_000)


def local_buckets_clear() -> None:
    """Forget the in-process buckets, the warning and the Redis back-off (tests)."""
    global _last_warning, _redis_skip_until
    with _local_lock:
        _local_tats.clear()
        _local_markers.clear()
    _last_warning = _redis_skip_until = float("-inf")
