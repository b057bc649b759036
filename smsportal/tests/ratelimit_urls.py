"""Test-only URLconf: the real routes plus a /v1 endpoint limited as a send is (MessageSendRateThrottle + accept).

Used with `@pytest.mark.urls("smsportal.tests.ratelimit_urls")` in test_ratelimit.py.
"""
from django.urls import path
from rest_framework.response import Response

from messaging import accept
from smsportal.api.throttling import MessageSendRateThrottle
from smsportal.api.views import ApiView
from smsportal.urls import urlpatterns as real_urlpatterns


class LimitedView(ApiView):
    """Stands in for POST /v1/messages: sends are limited per tenant, reads are not.

    A POST accepts one message to `to` of `message_type` through the real pipeline, whose rate step
    decides the key's deferred limit with the tenant's."""

    throttle_classes = [MessageSendRateThrottle]

    def post(self, request):
        item = {"to": request.data.get("to") or "+14155550123", "sender": "Acme", "text": "rate test",
                "message_type": request.data.get("message_type")}
        (draft,) = accept.messages_accept(tenant=request.auth.tenant, api_key=request.auth, items=[item],
                                          request_limits=request.deferred_limits)
        if draft.error is not None:
            raise draft.error
        return Response({"accepted": True}, status=201)

    def get(self, request):
        return Response({"ok": True})


urlpatterns = [
    path("v1/test/limited", LimitedView.as_view()),
    *real_urlpatterns,
]
