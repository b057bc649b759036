"""Test-only URLconf: the real routes plus /v1 POSTs that write, then fail or lose their claim.

Used with `@pytest.mark.urls("accounts.tests.idempotency_urls")` in test_idempotency.py.
"""
from datetime import timedelta

from django.db.models import F
from django.urls import path
from rest_framework.response import Response

from accounts import services
from accounts.models import IdempotencyRecord
from accounts.roles import Scope
from smsportal.api.views import ApiView
from smsportal.urls import urlpatterns as real_urlpatterns


class FlakyAllowlistView(ApiView):
    """Adds an allowlist entry, then fails as `failure` says: "raise" (an exception), "503", or None (succeeds)."""

    required_scope = Scope.ADMIN
    failure: str | None = "raise"

    def post(self, request):
        entry = services.ip_allowlist_add(tenant=request.auth.tenant, cidr=request.data["cidr"], note="flaky",
                                          actor=services.SYSTEM)
        if self.failure == "raise":
            raise RuntimeError("the carrier connection dropped")
        if self.failure == "503":
            return Response({"error": {"code": "unavailable", "message": "Try later."}}, status=503)
        return Response({"id": entry.public_id}, status=201)


class TakenOverView(ApiView):
    """Adds an entry; meanwhile (as if its claim had gone stale) another worker takes the claim over."""

    required_scope = Scope.ADMIN

    def post(self, request):
        entry = services.ip_allowlist_add(tenant=request.auth.tenant, cidr=request.data["cidr"], note="slow",
                                          actor=services.SYSTEM)
        IdempotencyRecord.unscoped.filter(tenant=request.auth.tenant).update(locked_at=F("locked_at") + timedelta(seconds=90))
        return Response({"id": entry.public_id}, status=201)


urlpatterns = [
    path("v1/test/flaky-allowlist", FlakyAllowlistView.as_view()),
    path("v1/test/taken-over", TakenOverView.as_view()),
    *real_urlpatterns,
]
