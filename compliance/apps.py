"""App config for compliance: keyword events, country rules, quiet hours and fraud velocity (docs/compliance.md),
and the checks built on them."""
from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"

    def ready(self) -> None:
        from compliance import signals  # noqa: F401 - connects the process caches' invalidation
