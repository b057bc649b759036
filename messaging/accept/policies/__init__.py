"""Compliance's policy checks, registered in step 2 of accept (messaging/accept/registry.py), after checks.py's.

Each module registers its own; the order of the imports is the order of running: who it may come from (sender
IDs), where it may go (geo permissions), then what it may say (content), then fraud velocity, the OTP dedupe and
quiet hours last (they count, mark or reschedule a message every earlier check let through)."""
from messaging.accept.policies import (
    senders,  # noqa: F401 - sender IDs: registration, substitution (first: it decides the `from` the rest see)
    content_geo,  # noqa: F401 - geo permissions, then the content policy
    quiet_fraud,  # noqa: F401 - fraud, OTP dedupe, quiet hours
)
