"""The rate limits of /v1 requests as DRF throttles: one throttle per view, all its limits in one decision.

- `ApiKeyRateThrottle` (every view, DEFAULT_THROTTLE_CLASSES): `API_RATE_LIMIT` requests per API key.
- `MessageSendRateThrottle` (the send views): on a POST the per-key limit is not decided here but
  handed to the accept pipeline (`request.deferred_limits`), whose rate-limit step decides it with
  the tenant's `messages_per_second` and the per-recipient limit, counting every message, in one
  round trip (messaging/accept/steps.py); OTP sends fail closed there. Other methods as above.

A view lists one of them, never both: each decides all its limits in one `rate_limits_hit` call
(smsportal/api/ratelimit.py: GCRA in Redis, one round trip), so a request one limit refuses is
counted by none. A refusal is DRF's Throttled (or the pipeline's RateLimited), which the exception
handler answers with 429 `rate_limited` and an integer `Retry-After` of at least 1. Requests
without an API key are left to authentication.
"""
from __future__ import annotations

from functools import cache

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiKey
from smsportal.api.ratelimit import Decision, Limit, rate_limits_hit

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@cache
def rate_parse(rate: str) -> tuple[int, int]:
    """"100/s" -> (100, 1): requests per period in seconds (s, m, h or d)."""
    num, period = rate.split("/")
    return int(num), PERIODS[period.strip()[0]]


class ApiKeyRateThrottle(BaseThrottle):
    """`API_RATE_LIMIT` per API key; subclasses add the view's own limits to the same decision."""

    scope = "api_key"
    # DRF's place for rates (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], read at import); a rate of None
    # lifts the per-key limit.
    THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES

    decision: Decision | None = None

    def allow_request(self, request, view) -> bool:
        api_key = getattr(request, "auth", None)
        if not isinstance(api_key, ApiKey):
            return True
        self.decision = rate_limits_hit(self.limits(request, api_key), fail_closed=self.fails_closed(request))
        return self.decision.allowed

    def wait(self) -> float | None:
        return self.decision.retry_after if self.decision else None

    def limits(self, request, api_key: ApiKey) -> list[Limit]:
        rate = self.THROTTLE_RATES.get(self.scope)
        if rate is None:
            return []
        num, period = rate_parse(rate)
        return [Limit(name=self.scope, tenant_id=api_key.tenant_id, subject=str(api_key.pk), rate=num, period=period)]

    def fails_closed(self, request) -> bool:
        """Whether this request is refused (503) rather than limited in-process when Redis is down."""
        return False


class MessageSendRateThrottle(ApiKeyRateThrottle):
    """The per-key limit; on POST deferred to the accept pipeline, which decides it with the message limits."""

    def allow_request(self, request, view) -> bool:
        if request.method == "POST" and isinstance(getattr(request, "auth", None), ApiKey):
            request.deferred_limits = self.limits(request, request.auth)
            return True
        return super().allow_request(request, view)
