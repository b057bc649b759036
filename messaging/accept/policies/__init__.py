"""Compliance's policy checks, registered in step 2 of accept (messaging/accept/registry.py), after checks.py's.

Each module registers its own; the order of the imports is the order of running: where a message may go (geo
permissions), then what it may say (content), then who it may come from (sender IDs: a destination that is not
permitted says so first), then fraud velocity, the OTP dedupe and quiet hours last (they count, mark or reschedule
a message every earlier check let through)."""
from messaging.accept.policies import (  # noqa: I001 - the order of the imports is the order of running
    content_geo,  # noqa: F401 - geo permissions, then the content policy
    senders,  # noqa: F401 - sender IDs: registration, substitution (before the checks that count the message)
    quiet_fraud,  # noqa: F401 - fraud, OTP dedupe, quiet hours
)
