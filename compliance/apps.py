"""App config for compliance: keyword events, country rules, quiet hours and fraud velocity (docs/compliance.md),
and the checks built on them."""
from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"

    def ready(self) -> None:
        from compliance import signals  # noqa: F401 - connects the process caches' invalidation
        from compliance.sender_ids import SENDER_ID_EVENT_TYPES
        from smsportal.events.registry import event_types_register

        # Sender IDs (issue 12 section 3): the event an account manager's review emits.
        event_types_register(*SENDER_ID_EVENT_TYPES)
