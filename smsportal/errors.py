"""Domain errors with stable machine-readable codes.

Services raise these; the DRF exception handler (smsportal/api/exceptions.py)
turns them into `{"error": {"code", "message", "field"}}` with `status`, and
portal views show `message` next to the field.
"""
from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "invalid_request"
    message = "The request is invalid."
    # Seconds; when set, the API answers with a `Retry-After` header.
    retry_after: int | None = None

    def __init__(self, message: str | None = None, *, field: str | None = None, code: str | None = None) -> None:
        self.message = message or self.message
        self.field = field
        if code:
            self.code = code
        super().__init__(self.message)


class NotFound(DomainError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Unprocessable(DomainError):
    status = 422
    code = "unprocessable"


class ServiceUnavailable(DomainError):
    """A dependency (the database) is unreachable: 503 with Retry-After, so clients retry (smsportal/unavailable.py)."""

    status = 503
    code = "service_unavailable"
    message = "The service is briefly unavailable. Please retry shortly."
    retry_after = 5
