"""Test-only URLconf: the real routes plus /v1 endpoints that fail in each way the API must still answer in JSON.

Used with `@pytest.mark.urls("accounts.tests.error_urls")`.
"""
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

from smsportal.errors import Conflict, Unprocessable
from smsportal.urls import urlpatterns as real_urlpatterns


class _Open(APIView):
    """No key needed: these views exist to fail, not to guard anything."""

    authentication_classes: list = []
    permission_classes: list = []


class ConflictView(_Open):
    def post(self, request):
        raise Conflict("The resource changed while you were editing it.", field="name")


class UnprocessableView(_Open):
    def post(self, request):
        raise Unprocessable("The sender is not one of your numbers.", field="from", code="sender_not_owned")


class CrashView(_Open):
    def get(self, request):
        raise RuntimeError("database row 42 is inconsistent")


class CrashWithHeaderView(_Open):
    def get(self, request):
        # A careless error message that quotes the credential: the log filter must mask it.
        raise RuntimeError(f"could not use credential {request.META.get('HTTP_AUTHORIZATION')}")


class OkView(_Open):
    def get(self, request):
        return Response({"ok": True})


def plain_crash(request):
    raise RuntimeError("plain Django view crashed")


def plain_not_found(request):
    raise Http404("no such thing")


def plain_forbidden(request):
    raise PermissionDenied


def plain_form(request):
    # Not csrf_exempt: a session-carrying POST without a CSRF token is refused by CsrfViewMiddleware.
    return HttpResponse("<html><body>accepted</body></html>")


urlpatterns = [
    path("v1/test/conflict", ConflictView.as_view()),
    path("v1/test/unprocessable", UnprocessableView.as_view()),
    path("v1/test/crash", CrashView.as_view()),
    path("v1/test/crash-with-header", CrashWithHeaderView.as_view()),
    path("v1/test/ok", OkView.as_view()),
    path("v1/test/plain-crash", plain_crash),
    path("v1/test/plain-not-found", plain_not_found),
    path("v1/test/plain-forbidden", plain_forbidden),
    path("v1/test/plain-form", plain_form),
    *real_urlpatterns,
]
