"""Compliance's policy checks, registered in step 2 of accept (messaging/accept/registry.py), after checks.py's.

Each module registers its own; the order of the imports is the order of running: whether the recipient may be
messaged at all (consent, suppressions), where a message may go (geo permissions), then what it may say (content),
then fraud velocity, the OTP dedupe and quiet hours last (they count, mark or reschedule a message every earlier
check let through)."""
from messaging.accept.policies import (
    consent,  # noqa: F401 - opt-outs, suppressions and marketing's opt-in (first: refused, nothing is counted)
    content_geo,  # noqa: F401 - geo permissions, then the content policy
    quiet_fraud,  # noqa: F401 - fraud, OTP dedupe, quiet hours
)
