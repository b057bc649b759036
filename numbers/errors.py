"""Errors of the numbers app, each with a stable code."""
from smsportal.errors import Conflict, DomainError, NotFound


class NoNumberAvailable(Conflict):
    code = "no_number_available"
    message = "No available number matches the request."


class NumberNotAvailable(Conflict):
    code = "number_not_available"
    message = "This number is not available."


class NumberHeld(Conflict):
    code = "number_held"
    message = "This number is held by a tenant; release it first."


class LeaseEnded(Conflict):
    code = "lease_ended"
    message = "This lease has already ended."


class InvalidTtl(DomainError):
    code = "invalid_ttl"
    message = "ttl_seconds must be between 60 (1 minute) and 2592000 (30 days)."


class InvalidExpiringNotice(DomainError):
    code = "invalid_expiring_notice"
    message = "expiring_notice_seconds must be a whole number from 0 (no notice) to 86400 (1 day)."


class NumberNotFound(NotFound):
    code = "not_found"


class InvalidCallbackUrl(DomainError):
    code = "invalid_callback_url"
    message = "callback_url must be a public http(s) URL."


class TestModeOnly(DomainError):
    status = 403
    code = "test_mode_only"
    message = "The carrier simulator takes test-mode API keys only."
