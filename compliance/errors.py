"""Compliance's domain errors, each with its stable code (smsportal/errors.py maps them to JSON)."""
from __future__ import annotations

from smsportal.errors import Conflict, DomainError, NotFound, Unprocessable


class CountryNotFound(NotFound):
    code = "not_found"
    message = "There are no rules for this country: use an ISO 3166-1 alpha-2 code GET /v1/countries lists."


class ContentPolicyViolation(Unprocessable):
    code = "content_policy_violation"
    message = "The message breaks a content rule."


class DestinationNotPermitted(Unprocessable):
    code = "destination_not_permitted"
    message = "This account may not send to that country: enable it in geo permissions (GET /v1/geo-permissions)."


class InvalidCountry(DomainError):
    code = "invalid_country"
    message = "Not an ISO 3166-1 alpha-2 country code."


class GeoApprovalNotPending(Conflict):
    code = "not_pending"
    message = "This request was already decided."
