"""Use cases of compliance; the compliance issue builds on keyword_record."""
from __future__ import annotations

from typing import TYPE_CHECKING

from compliance.models import KeywordEvent
from smsportal.tenancy import tenant_scoped

# The kinds of keyword event, as callers name them (compliance's models stay its own).
KeywordKind = KeywordEvent.Kind

if TYPE_CHECKING:
    from accounts.models import Tenant


@tenant_scoped
def keyword_record(*, tenant: Tenant, number: str, sender: str, kind: str) -> KeywordEvent:
    """Records an opt-out, opt-in or help keyword `sender` sent to the tenant's `number`."""
    return KeywordEvent.objects.create(tenant=tenant, number=number, sender=sender, kind=kind)
