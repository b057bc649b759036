"""Billing's domain errors and their stable codes (the API's exception handler answers them)."""
from __future__ import annotations

from smsportal.errors import Conflict, DomainError, NotFound


class NoPriceForDestination(DomainError):
    status = 422
    code = "no_price_for_destination"
    message = "There is no price for this destination and message type: it cannot be sent."


class InsufficientBalance(DomainError):
    status = 402
    code = "insufficient_balance"
    message = "Your balance (with your credit limit) does not cover these messages. Top up and retry."


class SpendLimitReached(DomainError):
    status = 402
    code = "spend_limit_reached"
    message = ("These messages would take today's spend (UTC) past your account's daily spend cap. Retry tomorrow, "
               "or ask an account manager to raise the cap.")


class SavingsInvalid(DomainError):
    """A savings estimate's input that cannot be estimated (billing/savings.py): 422 with the field it names."""

    status = 422
    code = "invalid_savings_request"
    message = "The volumes or message type cannot be estimated."
class InvoiceNotFound(NotFound):
    code = "not_found"
    message = "No invoice with this id."


class InvalidPeriod(DomainError):
    code = "invalid_period"
    message = "The period is a month, YYYY-MM, that has ended."


class InvoiceNotDraft(Conflict):
    code = "invoice_not_draft"
    message = "Only a draft invoice can be issued or deleted; an issued invoice is corrected by a credit note."


class InvalidInvoiceTransition(Conflict):
    code = "invalid_invoice_transition"
    message = "An invoice goes from issued to paid or void only."


class CreditNoteRefused(Conflict):
    code = "credit_note_refused"
    message = "A credit note corrects an issued or paid invoice only."


class InvalidCreditNote(DomainError):
    code = "invalid_credit_note"
    message = "A credit note needs a reason and at least one line, each with a description and a non-zero amount " \
              "of at most 2 places."
