"""Compliance tests start with empty velocity counters and dedupe markers, in this process and in Redis."""
import os

import pytest
import redis

from smsportal.tests.ratelimit_helpers import rate_buckets_empty

REDIS_URL = os.environ.get("REDIS_URL", "")


def _redis_forget() -> None:
    rate_buckets_empty(REDIS_URL)
    if REDIS_URL:
        client = redis.Redis.from_url(REDIS_URL)
        for pattern in ("*:fraud:*", "*:otpdedupe:*"):
            for key in client.scan_iter(match=pattern):
                client.delete(key)


@pytest.fixture(autouse=True)
def _fresh_counters():
    _redis_forget()
    yield
    _redis_forget()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.skipif(not REDIS_URL, reason="needs Redis"))])
def backend(request, settings):
    """Where the counters live: this process (REDIS_URL unset) or Redis."""
    settings.REDIS_URL = REDIS_URL if request.param == "redis" else ""
    return request.param
