"""App config for billing: price lists, rating, the prepaid balance and its ledger, invoices (docs/billing.md)."""
from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from numbers.hooks import number_prices_register

        from billing import (
            invoices,
            signals,  # noqa: F401 - connects the price cache's invalidation
        )
        from billing.alerts import BILLING_EVENT_TYPES
        from billing.selectors import number_prices_for_pages
        from smsportal.events.registry import event_types_register

        event_types_register(*BILLING_EVENT_TYPES, *invoices.INVOICE_EVENT_TYPES)
        number_prices_register(number_prices_for_pages)
