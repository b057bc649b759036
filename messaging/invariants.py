"""Compliance's invariant over messages (issue 12, "Must show"): no message was accepted for a number after that
number's opt-out in the scope that applied to it. `manage.py compliance_invariants` prints the rows; none is the
pass (docs/compliance.md "Consent and suppression")."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Q

from compliance import consent
from compliance import selectors as compliance_selectors
from messaging.models import Message, Status
from smsportal.tenancy import all_tenants

# A refused message is not stored; a canceled one never went out.
NOT_SENT = (Status.CANCELED, Status.REJECTED)


@dataclass(frozen=True)
class Violation:
    message: str
    tenant_id: int
    to: str
    sender: str
    created_at: datetime
    state: str  # opted_out | suppressed


def opt_out_violations() -> list[Violation]:
    """Every stored message (not canceled or rejected) whose recipient was opted out or suppressed, in a scope
    covering its sender (or the pool it went through), when it was accepted: the latest ledger record before its
    `created_at` in those scopes was an opt-out, or a suppression existed. Erased numbers are matched by hash."""
    with all_tenants():
        # unscoped: an invariant over every tenant's messages (an operator's check)
        latest, suppressed = compliance_selectors.consent_outer_state(
            tenant_id=OuterRef("tenant_id"), phone=OuterRef("to"), sender=OuterRef("sender"),
            pool_id=OuterRef("pool__public_id"), before=OuterRef("created_at"))
        rows = (Message.objects.exclude(status__in=NOT_SENT).annotate(latest=latest, suppressed=suppressed)
                .filter(Q(suppressed=True) | Q(latest="opted_out"))
                .values_list("public_id", "tenant_id", "to", "sender", "created_at", "latest", "suppressed"))
        found = [Violation(m, t, to, s, at, "suppressed" if sup else "opted_out")
                 for m, t, to, s, at, _, sup in rows]
        found += _erased_violations()
    return found


def _erased_violations() -> list[Violation]:
    """Messages to erased numbers accepted after the erasure's suppression (their entries keep only a hash)."""
    found = []
    for tenant_id, hashes in compliance_selectors.erased_hashes().items():
        rows = Message.objects.filter(tenant_id=tenant_id).exclude(status__in=NOT_SENT).values_list(
            "public_id", "to", "sender", "pool__public_id", "created_at")
        for public_id, to, sender, pool_id, created_at in rows.iterator():
            if consent.phone_hash(to) not in hashes:
                continue
            entries = [e for e in consent.consent_entries(tenant_id=tenant_id, phones=[to]).get(to, ())
                       if e.at < created_at]
            state = consent.state_for(entries, sender=sender, pool_id=pool_id or "")
            if state in (consent.OPTED_OUT, consent.SUPPRESSED):
                found.append(Violation(public_id, tenant_id, to, sender, created_at, state))
    return found
