"""Test-only URLconf: the real routes plus a /v1 endpoint limited by MessageSendRateThrottle.

Used with `@pytest.mark.urls("smsportal.tests.ratelimit_urls")` in test_ratelimit.py.
"""
from django.urls import path
from rest_framework.response import Response

from smsportal.api.throttling import MessageSendRateThrottle
from smsportal.api.views import ApiView
from smsportal.urls import urlpatterns as real_urlpatterns


class LimitedView(ApiView):
    """Stands in for POST /v1/messages: sends are limited per tenant, reads are not."""

    throttle_classes = [MessageSendRateThrottle]

    def post(self, request):
        return Response({"accepted": True}, status=201)

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("v1/test/limited", LimitedView.as_view()),
    *real_urlpatterns,
]
