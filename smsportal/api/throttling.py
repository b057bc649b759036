"""Per-key request rate limit (API_RATE_LIMIT), in the shared cache (Redis when set).

With the cache down the per-key limit fails open (logged): the per-tenant send limit
(smsportal/api/ratelimit.py) keeps its own in-process fallback.
"""
import logging

from rest_framework.throttling import SimpleRateThrottle

logger = logging.getLogger("smsportal.api")


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def parse_rate(self, rate):
        if rate is None:
            return (None, None)
        num, period = rate.split("/")
        seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]
        return int(num), seconds

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except Exception:  # redis.ConnectionError and kin
            logger.warning("cache unavailable; per-key rate limit not applied")
            return True

    def get_cache_key(self, request, view):
        api_key = getattr(request, "auth", None)
        if api_key is None:
            return None
        return f"throttle:{api_key.tenant_id}:{api_key.pk}"
