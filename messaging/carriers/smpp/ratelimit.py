"""max_mps: a token bucket per carrier that every connector process shares (Redis), or one per process.

`bucket_for(config)` gives None for max_mps 0 (unlimited), a RedisBucket when settings.REDIS_URL is
set, else a LocalBucket. `take()` takes one token and returns 0.0, or returns the seconds until one
will be there (taking nothing): the caller waits that long on its stop event and asks again.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

logger = logging.getLogger("messaging.carriers.smpp")
FALLBACK_WARN_SECONDS = 60.0

# KEYS[1] the bucket (a hash: tokens, at); ARGV[1] rate (tokens/s), ARGV[2] burst (capacity).
# Redis' own clock (TIME) so that processes on several hosts share one time line. Returns 0 when a
# token was taken, else the milliseconds until the next one. One script, so atomic.
_TAKE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate * 1000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return wait
"""


class Bucket(Protocol):
    def take(self) -> float: ...


class LocalBucket:
    """The in-process bucket (no REDIS_URL): `rate` tokens a second, up to `burst`. Thread-safe."""

    def __init__(self, *, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self._burst
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self._rate


class RedisBucket:
    """The bucket every process shares: one Redis hash per carrier, taken from by one Lua script."""

    def __init__(self, client: redis.Redis, *, key: str, rate: float, burst: float | None = None) -> None:
        self._script = client.register_script(_TAKE_LUA)
        self._key = key
        self._rate = rate
        self._burst = burst if burst is not None else max(1.0, rate)
        # While Redis is away: this process's own bucket at the same rate (each process then keeps to max_mps
        # on its own, more in all than the carrier allows, but nothing stops sending or dies).
        self._fallback = LocalBucket(rate=rate, burst=self._burst)
        self._warned_at = -FALLBACK_WARN_SECONDS

    def take(self) -> float:
        try:
            return int(self._script(keys=[self._key], args=[self._rate, self._burst])) / 1000.0
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._warned_at >= FALLBACK_WARN_SECONDS:
                self._warned_at = now
                logger.warning("smpp max_mps %s: Redis unavailable (%s); this process keeps to the rate alone",
                               self._key, exc.__class__.__name__)
            return self._fallback.take()


def bucket_for(carrier_name: str, max_mps: float, *, redis_url: str = "") -> Bucket | None:
    """The max_mps bucket of a carrier: None when max_mps is 0 (unlimited); shared through Redis when
    `redis_url` is given (the connector passes settings.REDIS_URL), else in this process."""
    if not max_mps:
        return None
    if redis_url:
        client = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        return RedisBucket(client, key=f"smsportal:smpp:mps:{carrier_name}", rate=float(max_mps))
    logger.warning("smpp %s: max_mps %s is kept by this process alone (no REDIS_URL): with several connector "
                   "processes or sessions the carrier sees more", carrier_name, max_mps)
    return LocalBucket(rate=float(max_mps))


def wait_for_token(bucket: Bucket | None, stop: threading.Event) -> bool:
    """Block (no spin: waits on `stop`) until `bucket` gives a token; False if `stop` was set first."""
    while bucket is not None:
        wait = bucket.take()
        if wait <= 0:
            return True
        if stop.wait(wait):
            return False
    return not stop.is_set()
