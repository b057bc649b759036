"""App config for billing (filled in by its own issue)."""
from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
