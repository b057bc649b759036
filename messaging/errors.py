"""Errors of the messaging app, each with a stable code."""
from smsportal.errors import Conflict, DomainError, NotFound


class InvalidPhoneNumber(DomainError):
    code = "invalid_phone_number"
    message = "Not a valid phone number."


class InvalidSender(DomainError):
    code = "invalid_sender"
    message = "The sender must be an alphanumeric ID (1-11 characters, at least one letter) or an E.164 number."


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
