"""Billing's domain errors and their stable codes (the API's exception handler answers them)."""
from __future__ import annotations

from smsportal.errors import DomainError


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
