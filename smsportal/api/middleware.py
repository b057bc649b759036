"""Under /v1 nothing answers with an HTML page: Django's own 404/405/403/500
pages (unknown URL, CSRF failure, an error outside DRF) become JSON errors."""
from __future__ import annotations

import logging

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.http.multipartparser import MultiPartParserError

from smsportal.api.exceptions import error_body
from smsportal.errors import ServiceUnavailable
from smsportal.middleware import DualMiddleware
from smsportal.tenancy import reset_current_tenant, set_current_tenant
from smsportal.unavailable import database_unavailable, unavailable_logged

logger = logging.getLogger("smsportal.api")

_DEFAULTS = {
    400: ("invalid_request", "The request is invalid."),
    401: ("authentication_required", "Authentication is required."),
    403: ("permission_denied", "You do not have permission to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("request_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "Unsupported media type; send application/json."),
    500: ("internal_error", "Something went wrong on our side. It has been logged."),
    503: ("service_unavailable", ServiceUnavailable.message),
}

# Exceptions Django answers itself with a 4xx status: not crashes, so not a 500.
_DJANGO_ANSWERS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation, MultiPartParserError)


def _is_api(path: str) -> bool:
    # The docs page included: only errors are converted, and an HTML error page is wrong anywhere under /v1.
    return path == "/v1" or path.startswith("/v1/")


class ApiJsonErrorMiddleware(DualMiddleware):
    def handle(self, request):
        # The tenant context never outlives the request (API auth sets it).
        token = set_current_tenant(None)
        try:
            response = self.get_response(request)
        finally:
            reset_current_tenant(token)
        return self._converted(request, response)

    async def ahandle(self, request):
        token = set_current_tenant(None)
        try:
            response = await self.get_response(request)
        finally:
            reset_current_tenant(token)
        return self._converted(request, response)

    @staticmethod
    def _converted(request, response):
        if _is_api(request.path) and response.status_code >= 400 and "json" not in response.get("Content-Type", ""):
            code, message = _DEFAULTS.get(response.status_code, ("error", "The request failed."))
            converted = JsonResponse(error_body(code, message), status=response.status_code)
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    converted[header] = response[header]
            return converted
        return response

    def process_exception(self, request, exception):
        if not _is_api(request.path) or isinstance(exception, _DJANGO_ANSWERS):
            return None  # Django turns these into 400/403/404, which __call__ then writes as JSON
        if database_unavailable(exception):
            unavailable = unavailable_logged(exception, request.path)
            return JsonResponse(error_body(unavailable.code, unavailable.message), status=unavailable.status,
                                headers={"Retry-After": str(unavailable.retry_after)})
        logger.exception("unhandled error on %s", request.path)
        return JsonResponse(error_body(*_DEFAULTS[500]), status=500)
