"""Per-tenant request rate limits (GCRA): shared by all processes through Redis, in-process without it.

`rate_limit_hit(name=, tenant_id=, rate=, burst=)` counts one request against the limiter `name`
of one tenant: `rate` requests per second, up to `burst` at once (default: one second's worth).
`TenantMessageRateThrottle` applies it to POST /v1/messages with `Tenant.messages_per_second`; a
refusal is DRF's Throttled, which the exception handler answers with 429 `rate_limited` and an
integer `Retry-After` of at least 1.

GCRA (Brandur, "Rate limiting"; Stripe's request limiter): one number per bucket, the theoretical
arrival time (TAT) of the next request. A request is allowed when TAT - burst * interval <= now;
then TAT moves one interval on. In Redis a Lua script does read-decide-write atomically, so
processes cannot both take the last slot. Time is the caller's clock, in integer microseconds.

When REDIS_URL is unset the bucket lives in this process. When Redis is set but fails, the limiter
fails open onto that in-process bucket (each process then allows the full rate) and logs a warning:
a Redis outage slows no request and refuses no paying traffic wholesale. Limiters that must fail
closed (OTP sends) should not use this fallback.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from redis.commands.core import Script
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey, Tenant

logger = logging.getLogger("smsportal.api.ratelimit")

REDIS_TIMEOUT = 0.5  # seconds; a hung Redis must not hold a request long
WARNING_INTERVAL = 60.0  # seconds between "Redis unavailable" warnings from one process

# KEYS[1] bucket; ARGV now (µs), interval (µs), burst. Returns {allowed 0/1, wait µs}.
# A TAT beyond now + tolerance can only come from a clock that went back: start afresh.
# The key outlives its TAT by a minute (an expired TAT means "now" anyway), so a slow caller
# with a frozen test clock does not see its bucket vanish.
_GCRA_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = interval * tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now or tat > now + tolerance then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then return {0, allow_at - now} end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 60000)
return {1, 0}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a request would be allowed; 0 when allowed


def rate_limit_hit(*, name: str, tenant_id: int, rate: int, burst: int | None = None) -> Decision:
    """Count one request of `tenant_id` against limiter `name`; refused requests are not counted.

    A rate of 0 refuses everything (an account manager stopped the tenant).
    """
    if rate <= 0:
        return Decision(False, 1.0)
    now = time.time_ns() // 1000  # integer µs: no float rounding at a slot boundary
    interval = max(1, round(1_000_000 / rate))
    burst = burst or rate
    key = f"{_key_prefix()}:ratelimit:{name}:{tenant_id}"
    if settings.REDIS_URL:
        try:
            allowed, wait = _script(settings.REDIS_URL)(keys=[key], args=[now, interval, burst])
            return Decision(bool(allowed), wait / 1_000_000)
        except redis.RedisError as exc:
            _warn_redis_down(exc)
    return _local_hit(key, now, interval, burst)


# --- Redis -------------------------------------------------------------------------------------

_scripts: dict[str, Script] = {}


def _script(url: str):
    script = _scripts.get(url)
    if script is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
        script = _scripts[url] = client.register_script(_GCRA_LUA)
    return script


def _key_prefix() -> str:
    return settings.CACHES["default"].get("KEY_PREFIX") or "smsportal"


_last_warning = float("-inf")


def _warn_redis_down(exc: Exception) -> None:
    global _last_warning
    if time.monotonic() - _last_warning >= WARNING_INTERVAL:
        _last_warning = time.monotonic()
        logger.warning("rate limiter: Redis unavailable (%s); failing open to the in-process bucket", exc)


# --- in-process ------------------------------------------------------------------------------------

_local_tats: dict[str, int] = {}
_local_lock = threading.Lock()


def _local_hit(key: str, now: int, interval: int, burst: int) -> Decision:
    # The same arithmetic as the Lua script.
    tolerance = interval * burst
    with _local_lock:
        tat = _local_tats.get(key, now)
        if tat < now or tat > now + tolerance:
            tat = now
        new_tat = tat + interval
        allow_at = new_tat - tolerance
        if now < allow_at:
            return Decision(False, (allow_at - now) / 1_000_000)
        _local_tats[key] = new_tat
        return Decision(True, 0.0)


def local_buckets_clear() -> None:
    """Forget the in-process buckets and warning state (tests)."""
    with _local_lock:
        _local_tats.clear()
    global _last_warning
    _last_warning = float("-inf")


# --- DRF ---------------------------------------------------------------------------------------------


class TenantRateThrottle(BaseThrottle):
    """A per-tenant limiter as a DRF throttle; subclasses name it and say the rate.

    Counts only the `methods` listed, so a view that also lists (GET) is not limited by sends.
    Requests without an API key are left to authentication.
    """

    limiter_name = ""
    methods: tuple[str, ...] = ("POST",)

    def rate_for(self, tenant: Tenant) -> int:
        raise NotImplementedError

    def burst_for(self, tenant: Tenant) -> int:
        return self.rate_for(tenant)

    def allow_request(self, request, view) -> bool:
        self.decision = None
        api_key = getattr(request, "auth", None)
        if request.method not in self.methods or not isinstance(api_key, ApiKey):
            return True
        tenant = api_key.tenant
        self.decision = rate_limit_hit(name=self.limiter_name, tenant_id=tenant.pk, rate=self.rate_for(tenant),
                                       burst=self.burst_for(tenant))
        return self.decision.allowed

    def wait(self) -> float | None:
        return self.decision.retry_after if self.decision else None


class TenantMessageRateThrottle(TenantRateThrottle):
    """POST /v1/messages: `Tenant.messages_per_second`, shared by all the tenant's keys and processes.

    Attach next to the per-key limit: `throttle_classes = [ApiKeyRateThrottle, TenantMessageRateThrottle]`.
    """

    limiter_name = "messages"

    def rate_for(self, tenant: Tenant) -> int:
        return tenant.messages_per_second
