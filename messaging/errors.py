"""Errors of the messaging app, each with a stable code."""
from smsportal.errors import Conflict, DomainError, NotFound


class InvalidPhoneNumber(DomainError):
    code = "invalid_phone_number"
    message = "Not a valid phone number."


class InvalidSender(DomainError):
    code = "invalid_sender"
    message = "The sender must be an alphanumeric ID (1-11 characters, at least one letter) or an E.164 number."


class SenderNotAllowed(DomainError):
    """A number or short code in `from` that the tenant neither holds nor may use as a shared sender."""

    code = "sender_not_allowed"
    message = ("Send from a number or short code you rent or lease, a shared sender your account may use, "
               "a number pool (pool:NAME) or an alphanumeric sender ID.")


class MessageTooLong(DomainError):
    code = "message_too_long"


class TemplateVariableMissing(DomainError):
    code = "template_variable_missing"


class InvalidTemplate(DomainError):
    code = "invalid_template"


class TemplateNotFound(DomainError):
    code = "template_not_found"


class TemplateNameTaken(Conflict):
    code = "template_name_taken"
    message = "A template with this name already exists."


class MessageNotCancelable(Conflict):
    code = "message_not_cancelable"
    message = "Only a scheduled or queued message can be canceled."


class MessageNotFound(NotFound):
    code = "not_found"
