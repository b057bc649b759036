"""App config for billing: price lists, rating, the prepaid balance and its ledger (docs/billing.md)."""
from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import signals  # noqa: F401 - connects the price cache's invalidation
