"""App config for compliance: keyword events, country rules, quiet hours and fraud velocity (docs/compliance.md),
and the checks built on them."""
from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"

    def ready(self) -> None:
        from compliance import signals  # noqa: F401 - connects the process caches' invalidation
        from compliance.consent_services import CONSENT_EVENT_TYPES
        from smsportal.events.registry import event_types_register

        event_types_register(*CONSENT_EVENT_TYPES)  # contact.opted_in / contact.opted_out (the consent ledger)

        from compliance.sender_ids import SENDER_ID_EVENT_TYPES

        # Sender IDs (issue 12 section 3): the event an account manager's review emits.
        event_types_register(*SENDER_ID_EVENT_TYPES)
