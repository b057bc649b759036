"""App config for compliance (filled in by its own issue)."""
from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
