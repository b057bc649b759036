"""The OpenAPI schema of /v1: the Error component, the error responses of every operation, and the schema class.

Every ApiView operation documents the errors that can really happen to it. `ApiAutoSchema` adds the
standard set from what the operation is (authenticated, has a body, a query, a path id, is a POST);
a view names only its own with `api_errors(...)` in `@extend_schema(responses=...)`:

    @extend_schema(summary=..., description=..., request=s.PoolWriteSerializer,
                   responses={201: s.PoolSerializer, **api_errors(PoolNameTaken, InvalidPoolName, NumberNotHeld)})

`api_errors()` takes DomainError classes (status, code and message come from the class) or
`Code(status, code, message)` for a code raised inline. Descriptions come from `@extend_schema`
only: docstrings are written for us and never reach the public schema (a test checks that every
operation has a summary and a description).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from accounts.permissions import required_scope
from smsportal.api import idempotency as idem
from smsportal.api.views import ApiView
from smsportal.errors import DomainError


@dataclass(frozen=True)
class Code:
    """An error code an operation can answer, for codes that are not a DomainError class of their own."""

    status: int
    code: str
    message: str


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(required=False, help_text="The field at fault, e.g. `to` or `scopes[0]`.")
    code = serializers.CharField(help_text="Stable machine-readable code of this problem.")
    message = serializers.CharField(help_text="What is wrong, for people.")


class ErrorInfoSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code; the operation's responses list them.")
    message = serializers.CharField(help_text="What went wrong, for people. It may change; match on `code`.")
    field = serializers.CharField(required=False, help_text="The one field at fault, when there is one.")
    details = FieldErrorSerializer(many=True, required=False,
                                   help_text="With `validation_error`: every problem, one per field.")
    reason = serializers.CharField(required=False, help_text="With `fraud_suspected`: the code of the rule that "
                                                             "refused the message.")


class ErrorSerializer(serializers.Serializer):
    """Named `Error` in the schema."""

    error = ErrorInfoSerializer()


# Codes shared by many operations, with the message a client sees.
API_KEY_IN_QUERY = Code(400, "api_key_in_query", "Send the API key in the Authorization header, never in the URL.")
VALIDATION = Code(400, "validation_error", "Several fields are invalid: each one is in `details`. A single "
                                           "invalid field answers its own code (`required`, `invalid`, `blank`, "
                                           "`null`, `max_length`, `min_value`, `max_value`, `invalid_choice`, …) "
                                           "with `field`.")
INVALID_JSON = Code(400, "invalid_json", "The body is not valid JSON.")
INVALID_CURSOR = Code(400, "invalid_cursor", "The `cursor` is not one this list gave out (field `cursor`).")
INVALID_LIMIT = Code(400, "invalid_limit", "`limit` must be a whole number of at least 1 (field `limit`).")
AUTHENTICATION_REQUIRED = Code(401, "authentication_required", "No `Authorization: Bearer <api key>` header.")
INVALID_API_KEY = Code(401, "invalid_api_key", "The API key is malformed, unknown, revoked or expired.")
INSUFFICIENT_SCOPE = Code(403, "insufficient_scope", "This API key does not have the scope this operation needs.")
TENANT_SUSPENDED = Code(403, "tenant_suspended", "The account is suspended.")
IP_NOT_ALLOWED = Code(403, "ip_not_allowed", "The account's IP allowlist does not include this address.")
NOT_FOUND = Code(404, "not_found", "No such object in your account (another account's object is not found too).")
REQUEST_TOO_LARGE = Code(413, "request_too_large", "The body is larger than the API accepts.")
UNSUPPORTED_MEDIA_TYPE = Code(415, "unsupported_media_type", "Send the body as `Content-Type: application/json`.")
RATE_LIMITED = Code(429, "rate_limited", "Too many requests: retry after `Retry-After` seconds.")
SERVICE_UNAVAILABLE = Code(503, "service_unavailable", "A service we depend on is down: retry after "
                                                        "`Retry-After` seconds.")

STATUS_TITLES = {
    400: "Bad request", 401: "Not authenticated", 403: "Not allowed", 404: "Not found", 409: "Conflict",
    413: "Body too large", 415: "Unsupported media type", 422: "Unprocessable", 429: "Too many requests",
    503: "Service unavailable",
}

_RETRY_AFTER = {"schema": {"type": "integer", "minimum": 1}, "description": "Seconds to wait before retrying."}
_HEADERS_BY_STATUS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer realm=\"api\"`."}},
    409: {"Retry-After": _RETRY_AFTER},
    429: {"Retry-After": _RETRY_AFTER},
    503: {"Retry-After": _RETRY_AFTER},
}


def _as_code(error: type[DomainError] | Code) -> Code:
    if isinstance(error, Code):
        return error
    return Code(error.status, error.code, error.message)


class ErrorResponse(OpenApiResponse):
    """The error response of one status, with the codes it can carry."""

    def __init__(self, status: int, codes: Iterable[Code]) -> None:
        self.status = status
        self.codes = tuple(codes)
        super().__init__(response=ErrorSerializer, description=_describe(status, self.codes))


def _describe(status: int, codes: tuple[Code, ...]) -> str:
    lines = [f"- `{c.code}`: {c.message}" for c in codes]
    return "\n".join([STATUS_TITLES.get(status, "Error") + ". `error.code` is one of:", "", *lines])


def api_errors(*declared: type[DomainError] | Code) -> dict[int, ErrorResponse]:
    """The operation's own error codes, by status, for `@extend_schema(responses={..., **api_errors(...)})`."""
    by_status: dict[int, list[Code]] = {}
    for error in declared:
        code = _as_code(error)
        by_status.setdefault(code.status, []).append(code)
    return {status: ErrorResponse(status, codes) for status, codes in by_status.items()}


def _deep_merged(schema: dict, rules: dict) -> dict:
    merged = dict(schema)
    for key, value in rules.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _deep_merged(merged[key], value) if both_dicts else value
    return merged


def _merged(standard: list[Code], specific: Iterable[ErrorResponse]) -> dict[int, list[Code]]:
    by_status: dict[int, list[Code]] = {}
    for code in [*standard, *(c for response in specific for c in response.codes)]:
        codes = by_status.setdefault(code.status, [])
        if code.code not in {c.code for c in codes}:
            codes.append(code)
    return dict(sorted(by_status.items()))


IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=idem.HEADER,
    location=OpenApiParameter.HEADER,
    type={"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    required=False,
    description=(
        "Makes the POST safe to retry: 1-255 printable ASCII characters (a UUID v4 is a good choice), "
        "scoped to your account and the key's mode, kept 24 hours. A retry with the same key and body gets "
        "the first answer again with `Idempotent-Replayed: true` (fields shown once, such as a new key's "
        "secret, are null in a replay); the same key with another body or endpoint gets 422 "
        "`idempotency_key_reused`; while the first request runs, 409 `idempotency_key_in_use` with "
        "`Retry-After`. An answer of 500 or more is not kept."
    ),
)


class ApiAutoSchema(AutoSchema):
    """The default schema class (REST_FRAMEWORK setting) of /v1 operations.

    A default class rather than `ApiView.schema`, because `@extend_schema` on a method builds its
    schema from the default class and would drop a per-view one.
    """

    def get_description(self) -> str:
        return ""  # docstrings describe code to us; customers read @extend_schema(description=...)

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if self._is_idempotent_post():
            parameters = [*parameters, IDEMPOTENCY_KEY_PARAMETER]
        return parameters

    def _get_request_body(self, direction="request"):
        body = super()._get_request_body(direction)
        rules = getattr(self.get_request_serializer(), "schema_rules", {})
        if body and "anyOf" in rules:
            body["required"] = True  # no body cannot meet "one of these fields is required"
        return body

    def _get_parameters(self):
        parameters = super()._get_parameters()
        for parameter in parameters:
            # DRF and django-filter read `?status=` as no status given: the schema says so.
            if parameter["in"] == "query" and not parameter.get("required"):
                parameter["allowEmptyValue"] = True
        return parameters

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        schema.pop("description", None)  # a serializer's docstring is for us too
        return _deep_merged(schema, getattr(serializer, "schema_rules", {}))  # JsonBodySerializer.schema_rules

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if not isinstance(self.view, ApiView):
            return responses
        declared = self.get_response_serializers()
        specific = [r for r in declared.values() if isinstance(r, ErrorResponse)] if isinstance(declared, dict) else []
        for status, codes in _merged(self._standard_errors(), specific).items():
            responses[str(status)] = self._get_response_for_code(ErrorResponse(status, codes), str(status))
            if status in _HEADERS_BY_STATUS:
                responses[str(status)]["headers"] = _HEADERS_BY_STATUS[status]
        if self._is_idempotent_post():
            for status, response in responses.items():
                if status.startswith("2"):
                    response.setdefault("headers", {})[idem.REPLAYED_HEADER] = {
                        "schema": {"type": "string", "enum": ["true"]},
                        "description": "Present on a replay of an earlier answer to the same Idempotency-Key."}
        return dict(sorted(responses.items()))

    def _is_idempotent_post(self) -> bool:
        return self.method == "POST" and isinstance(self.view, ApiView)

    def _standard_errors(self) -> list[Code]:
        """The errors any operation like this one can answer, whatever the view does."""
        codes = [API_KEY_IN_QUERY, AUTHENTICATION_REQUIRED, INVALID_API_KEY, TENANT_SUSPENDED, IP_NOT_ALLOWED,
                 RATE_LIMITED, SERVICE_UNAVAILABLE]
        if required_scope(self.view, self.method):
            codes.append(INSUFFICIENT_SCOPE)
        if self._get_request_body():
            codes += [INVALID_JSON, VALIDATION, REQUEST_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE]
        if any(p["in"] == "query" for p in self._get_parameters()):
            codes.append(VALIDATION)
        if self._is_list_view() and self._get_paginator():
            codes += [INVALID_CURSOR, INVALID_LIMIT]
        if "{" in self.path:
            codes.append(NOT_FOUND)
        if self._is_idempotent_post():
            codes += [_as_code(idem.InvalidIdempotencyKey), _as_code(idem.IdempotencyKeyInUse),
                      _as_code(idem.IdempotencyKeyReused)]
        return codes

