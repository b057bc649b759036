"""App config for billing: price lists, rating, the prepaid balance and its ledger, invoices (docs/billing.md)."""
from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import (
            invoices,
            signals,  # noqa: F401 - connects the price cache's invalidation
        )
        from smsportal.events.registry import event_types_register

        event_types_register(*invoices.INVOICE_EVENT_TYPES)
