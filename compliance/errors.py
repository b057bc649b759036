"""Compliance's domain errors, each with its stable code (smsportal/errors.py maps them to JSON)."""
from __future__ import annotations

from smsportal.errors import Conflict, DomainError, NotFound, Unprocessable


class CountryNotFound(NotFound):
    code = "not_found"
    message = "There are no rules for this country: use an ISO 3166-1 alpha-2 code GET /v1/countries lists."


class FraudSuspected(Unprocessable):
    """A block-mode fraud rule fired for this message: `reason` is the rule's code, the message its evidence."""

    code = "fraud_suspected"
    message = "This message looks like SMS pumping and was not sent."

    def __init__(self, message: str | None = None, *, reason: str, field: str | None = "to") -> None:
        super().__init__(message, field=field)
        self.reason = reason


class DuplicateInFlight(Conflict):
    """The same OTP to the same number is being accepted by another request right now: retry to get its answer."""

    code = "duplicate_in_flight"
    message = "The same one-time password to this number is being sent right now; retry in a second for its answer."
    retry_after = 1


class InvalidTimezone(DomainError):
    code = "invalid_timezone"
    message = "timezone must be an IANA time-zone name, such as America/New_York."


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


class RecipientOptedOut(Unprocessable):
    code = "recipient_opted_out"
    message = "The recipient opted out of messages from this sender (or is suppressed): it was not sent."


class ConsentRequired(Unprocessable):
    code = "consent_required"
    message = ("Marketing needs the recipient's opt-in: record it with POST /v1/consents (status opted_in) "
               "before sending.")


class ConsentInvalid(DomainError):
    code = "invalid_consent"
    message = "The consent record or suppression is not valid."


class SuppressionNotFound(NotFound):
    code = "not_found"
    message = "No such suppression."


class ConsentNotFound(NotFound):
    code = "not_found"
    message = "No such consent record."


# --- Sender IDs (compliance/sender_ids.py) -------------------------------------------------------------------


class SenderNotRegistered(Unprocessable):
    code = "sender_not_registered"
    message = ("This country only accepts alphanumeric sender IDs registered for it: register the ID "
               "(POST /v1/sender-ids) and wait for its approval, or send from a number.")


class SenderNotSupported(Unprocessable):
    code = "sender_not_supported"
    message = ("This country does not accept alphanumeric sender IDs, and there is no number to send from "
               "instead: send from one of your numbers, or add one of this country to your fallback pool.")


class SenderIdNotFound(NotFound):
    code = "not_found"
    message = "No such sender ID."


class InvalidSenderId(DomainError):
    code = "invalid_sender_id"
    message = ("A sender ID is 3 to 11 letters, digits, spaces or .-_&+ (at least one letter), or one of your "
               "numbers in E.164.")


class InvalidDocument(DomainError):
    code = "invalid_document"
    message = "Documents are PDF, PNG or JPEG files, each at most the size the API reference gives."


class SenderIdNotPending(Conflict):
    code = "not_pending"
    message = "This sender ID was already reviewed."
