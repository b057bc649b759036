"""Compliance's policy checks in step 2 of accept, one module per part of issue 12 (registered at import)."""
from messaging.accept.policies import quiet_fraud  # noqa: F401
