"""Compliance's policy checks, registered in step 2 of accept (messaging/accept/registry.py), after checks.py's.

Each module registers its own; the order of the imports is the order of running: whether the recipient may be
messaged at all (consent, suppressions), where a message may go (geo permissions), then what it may say (content),
then who it may come from (sender IDs: a destination that is not permitted says so first), then fraud velocity,
the OTP dedupe and quiet hours last (they count, mark or reschedule a message every earlier check let through)."""
from messaging.accept.policies import (  # noqa: I001 - the order of the imports is the order of running
    consent,  # noqa: F401 - opt-outs, suppressions and marketing's opt-in (first: refused, nothing is counted)
    content_geo,  # noqa: F401 - geo permissions, then the content policy
    senders,  # noqa: F401 - sender IDs: registration, substitution (before the checks that count the message)
    quiet_fraud,  # noqa: F401 - fraud, OTP dedupe, quiet hours
)
