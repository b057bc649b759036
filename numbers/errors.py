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


class PoolNotFound(NotFound):
    code = "pool_not_found"
    message = "No number pool with this name or id."


class PoolEmpty(Conflict):
    code = "pool_empty"
    message = "This number pool has no number you hold that can send SMS."


class PoolNameTaken(Conflict):
    code = "pool_name_taken"
    message = "A number pool with this name already exists."


class InvalidPoolName(DomainError):
    code = "invalid_pool_name"
    message = "A pool name uses letters, digits, '-' and '_' only (1-50 characters)."


class NumberNotHeld(DomainError):
    status = 422
    code = "number_not_held"
    message = "This is not a number you hold."


class NumberNotSmsCapable(DomainError):
    status = 422
    code = "number_not_sms_capable"
    message = "This number cannot send SMS."
