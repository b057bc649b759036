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

import logging
import threading
import time
from collections.abc import Sequence
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

# KEYS: the buckets; ARGV[1] now (µs), then per bucket its increment (µs: interval times cost) and its
# tolerance (µs: interval times burst).
# Returns {1, 0} when every bucket allows (all move on), else {0, wait µs} and nothing is written.
# A TAT behind now counts from now; a TAT ahead of now is kept as it is (see the module docstring).
# A key outlives its TAT by a minute (an expired TAT means "now" anyway), so a slow caller with a
# frozen test clock does not see its bucket vanish.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local new_tats, wait = {}, 0
for i, key in ipairs(KEYS) do
  local increment = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = math.max(tonumber(redis.call('GET', key) or now), now)
  new_tats[i] = tat + increment
  wait = math.max(wait, new_tats[i] - tolerance - now)
end
if wait > 0 then return {0, wait} end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, string.format('%.0f', new_tats[i]), 'PX', math.ceil((new_tats[i] - now) / 1000) + 60000)
end
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


class RateLimiterUnavailable(ServiceUnavailable):
    """Redis is down and the limit fails closed (OTP sends): answered 503 with Retry-After."""

    message = "Sending OTP messages is paused for a moment: we cannot check your rate limits. Try again shortly."


def rate_limits_hit(limits: Sequence[Limit], *, fail_closed: bool = False) -> Decision:
    """Count one request against every limit in `limits`: allowed only if all allow, counted only if allowed.

    Raises RateLimiterUnavailable when Redis is down and `fail_closed` (see the module docstring).
    """
    if not limits:
        return Decision(True, 0.0)
    if any(limit.rate <= 0 for limit in limits):
        return Decision(False, 1.0)  # an account manager stopped the tenant: no need to ask Redis
    now = time.time_ns() // 1000  # integer µs: no float rounding at a slot boundary
    if settings.REDIS_URL:
        if time.monotonic() >= _redis_skip_until:
            try:
                return _redis_hit(settings.REDIS_URL, limits, now)
            except redis.RedisError as exc:
                _redis_failed(exc, fail_closed)
        if fail_closed:
            raise RateLimiterUnavailable()
    return _local_hit(limits, now)


# --- Redis -------------------------------------------------------------------------------------

_scripts: dict[str, Script] = {}
_redis_skip_until = float("-inf")
_last_warning = float("-inf")


def _script(url: str) -> Script:
    """The GCRA script on one client (one connection pool) per process and URL, made once."""
    script = _scripts.get(url)
    if script is None:
        # One retry, at once: it replaces a pooled connection that Redis closed; more would
        # multiply REDIS_TIMEOUT for a Redis that hangs.
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
                                      retry=Retry(NoBackoff(), 1))
        script = _scripts[url] = client.register_script(_GCRA_LUA)
    return script


def _redis_hit(url: str, limits: Sequence[Limit], now: int) -> Decision:
    args = [now]
    for limit in limits:
        args += [limit.increment, limit.tolerance]
    allowed, wait = _script(url)(keys=[limit.key for limit in limits], args=args)
    return Decision(bool(allowed), wait / 1_000_000)


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
_local_lock = threading.Lock()


def _local_hit(limits: Sequence[Limit], now: int) -> Decision:
    # The same arithmetic as the Lua script, under one lock for read-decide-write.
    with _local_lock:
        new_tats = {limit.key: max(_local_tats.get(limit.key, now), now) + limit.increment for limit in limits}
        wait = max(new_tats[limit.key] - limit.tolerance - now for limit in limits)
        if wait > 0:
            return Decision(False, wait / 1_000_000)
        if len(_local_tats) > LOCAL_BUCKETS_MAX:
            for key in [key for key, tat in _local_tats.items() if tat < now]:
                del _local_tats[key]
        _local_tats.update(new_tats)
        return Decision(True, 0.0)


def local_buckets_clear() -> None:
    """Forget the in-process buckets, the warning and the Redis back-off (tests)."""
    global _last_warning, _redis_skip_until
    with _local_lock:
        _local_tats.clear()
    _last_warning = _redis_skip_until = float("-inf")
