"""Test helpers for the rate limits: every test starts with empty buckets (tenant pks come back)."""
from __future__ import annotations

import redis

from smsportal.api.ratelimit import local_buckets_clear


def rate_buckets_empty(redis_url: str) -> None:
    """Forget this process's buckets and, with `redis_url`, every rate-limit key in that Redis DB."""
    local_buckets_clear()
    if redis_url:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match="*:ratelimit:*"):
            client.delete(key)
