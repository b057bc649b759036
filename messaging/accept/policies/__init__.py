"""Compliance's policy checks, registered in step 2 of accept (messaging/accept/registry.py), after checks.py's.

Each module registers its own; the order of the imports is the order of running."""
from messaging.accept.policies import content_geo  # noqa: F401 - geo permissions, then the content policy
