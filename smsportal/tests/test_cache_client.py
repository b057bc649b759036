"""smsportal/cache.py: Django's Redis cache with one client (one connection pool) per process and server."""
from __future__ import annotations

import os
import threading

import pytest
from django.core.cache import caches

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL=redis://127.0.0.1:6379/7")


@pytest.fixture
def redis_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "smsportal.cache.RedisCache", "LOCATION": REDIS_URL,
                                   "KEY_PREFIX": "test-cache-client"}}
    cache = caches["default"]
    yield cache
    cache.clear()


def test_every_cache_call_of_every_thread_uses_one_client(redis_cache):
    # given the cache's client, as a first call makes it
    assert redis_cache.add("k", 1, timeout=10) is True
    client = redis_cache._cache.get_client(write=True)
    # when other calls and another thread's cache object (Django keeps one per thread) ask for one
    seen = []
    thread = threading.Thread(target=lambda: seen.append(caches["default"]._cache.get_client(write=True)))
    thread.start()
    thread.join()
    # then they all get the same client, so one connection pool, and it works
    assert redis_cache._cache.get_client() is client and seen == [client]
    assert redis_cache.get("k") == 1 and redis_cache.add("k", 2, timeout=10) is False
