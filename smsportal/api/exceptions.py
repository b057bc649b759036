"""One exception handler for /v1: every error becomes
{"error": {"code", "message", "field"?, "details"?}} with the right status."""
from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from smsportal.errors import DomainError
from smsportal.unavailable import database_unavailable, unavailable_logged

logger = logging.getLogger("smsportal.api")

# DRF exception class -> stable code
_CODES: list[tuple[type[Exception], str]] = [
    (exceptions.ParseError, "invalid_json"),
    (exceptions.NotAuthenticated, "authentication_required"),
    (exceptions.AuthenticationFailed, "invalid_api_key"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "rate_limited"),
]


def error_body(code: str, message: str, field: str | None = None, details: list | None = None) -> dict:
    error: dict = {"code": code, "message": message}
    if field:
        error["field"] = field
    if details:
        error["details"] = details
    return {"error": error}


def _flatten(detail, prefix: str = "") -> list[dict]:
    """DRF's nested validation errors as a flat list of {field, code, message}."""
    items: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):  # a ListField/DictField child error is keyed by position: "scopes[0]"
                name = f"{prefix}[{key}]"
            elif key in ("non_field_errors", "__all__"):
                name = prefix
            else:
                name = f"{prefix}.{key}" if prefix else str(key)
            items.extend(_flatten(value, name))
    elif isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, (dict, list)):
                items.extend(_flatten(value, f"{prefix}[{index}]" if prefix else str(index)))
            else:
                items.extend(_flatten(value, prefix))
    else:
        code = getattr(detail, "code", None) or "invalid"
        items.append({"field": prefix or None, "code": str(code), "message": str(detail)})
    return items


def validation_error_body(detail) -> dict:
    items = _flatten(detail) or [{"field": None, "code": "invalid", "message": "The request is invalid."}]
    if len(items) == 1:
        return error_body(items[0]["code"], items[0]["message"], items[0]["field"])
    details = [{k: v for k, v in item.items() if v is not None} for item in items]
    return error_body("validation_error", f"{len(items)} problems with the request; see details.", details=details)


def api_exception_handler(exc: Exception, context: dict) -> Response:
    if database_unavailable(exc):
        exc = unavailable_logged(exc, context.get("view").__class__.__name__)
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        body, code = error_body(exc.code, exc.message, exc.field), exc.status
        if getattr(exc, "reason", None):  # a refusal's reason code beside its stable code (fraud_suspected)
            body["error"]["reason"] = exc.reason
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
        if exc.retry_after:
            headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, Http404):
        body, code = error_body("not_found", "Not found."), status.HTTP_404_NOT_FOUND
    elif isinstance(exc, DjangoPermissionDenied):
        body, code = error_body("permission_denied", "You do not have permission to do this."), 403
    elif isinstance(exc, exceptions.ValidationError):
        body, code = validation_error_body(exc.detail), status.HTTP_400_BAD_REQUEST
    elif isinstance(exc, exceptions.APIException):
        code = exc.status_code
        name = next((c for cls, c in _CODES if isinstance(exc, cls)), exc.default_code)
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else exc.default_detail
        body = error_body(name, str(message))
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            code = 401
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
    else:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        body, code = error_body("internal_error", "Something went wrong on our side. It has been logged."), 500
    set_rollback()
    return Response(body, status=code, headers=headers)
