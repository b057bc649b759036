"""Use cases of compliance: keyword events, the quiet-hours setting, reviews of fraud signals."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import time
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from accounts.services import Actor, audit_record, tenant_set_status
from compliance.consent_services import keyword_consent
from compliance.models import FraudAllowance, FraudSignal, KeywordEvent, QuietHoursSetting
from smsportal.errors import DomainError
from smsportal.tenancy import tenant_scoped

# The kinds of keyword event, as callers name them (compliance's models stay its own).
KeywordKind = KeywordEvent.Kind

if TYPE_CHECKING:
    from accounts.models import Tenant


@tenant_scoped
def keyword_record(*, tenant: Tenant, number: str, sender: str, kind: str, word: str = "",
                   pool_ids: Iterable[str] = ()) -> KeywordEvent:
    """Records an opt-out, opt-in or help keyword `sender` sent to the tenant's `number`, and what it does to the
    consent ledger (compliance.consent_services.keyword_consent: an opt-out or opt-in for that number and its
    pools `pool_ids`, or tenant-wide for STOPALL `word`, each with its contact.opted_out / opted_in event)."""
    event = KeywordEvent.objects.create(tenant=tenant, number=number, sender=sender, kind=kind)
    keyword_consent(tenant=tenant, number=number, sender=sender, kind=kind, word=word, pool_ids=pool_ids)
    return event


# --- Quiet hours and fraud signals (issue 12, sections 7 and 8) ---------------------------------------------


@tenant_scoped
@transaction.atomic
def quiet_hours_set(*, tenant: Tenant, window_start: time | None, window_end: time | None, days_off: list[int],
                    apply_to_transactional: bool, actor: Actor) -> QuietHoursSetting:
    """The tenant's own window (it only narrows the legal one: compliance/quiet_hours.py); audited."""
    if (window_start is None) != (window_end is None) or (window_start and window_start >= window_end):
        raise DomainError("Give both a start and a later end, or neither.", field="window_start",
                          code="invalid_quiet_hours")
    if any(day not in range(1, 8) for day in days_off):
        raise DomainError("Days off are ISO weekdays, 1 (Monday) to 7 (Sunday).", field="days_off",
                          code="invalid_quiet_hours")
    setting, _ = QuietHoursSetting.objects.update_or_create(tenant=tenant, defaults={
        "window_start": window_start, "window_end": window_end, "days_off": sorted(set(days_off)),
        "apply_to_transactional": apply_to_transactional})
    audit_record(action="quiet_hours.updated", actor=actor, tenant=tenant, target=setting, changes={
        "window_start": str(window_start or ""), "window_end": str(window_end or ""), "days_off": setting.days_off,
        "apply_to_transactional": apply_to_transactional})
    return setting


@transaction.atomic
def fraud_signal_allowlist(*, signal: FraudSignal, actor: Actor, reason: str = "") -> FraudAllowance:
    """An account manager's review: the case is fine; the rule no longer fires for this tenant's subject."""
    # unscoped: admin reviews signals of every tenant; the allowance is the signal's own tenant's
    allowance, _ = FraudAllowance.unscoped.get_or_create(tenant_id=signal.tenant_id, rule_id=signal.rule_id,
                                                         subject=signal.subject,
                                                         defaults={"reason": reason, "created_by": actor.user})
    _reviewed(signal, FraudSignal.Review.ALLOWLISTED, actor)
    return allowance


@transaction.atomic
def fraud_signal_tenant_suspend(*, signal: FraudSignal, actor: Actor) -> None:
    """An account manager's review: the tenant is suspended (API refused, portal read-only), as in admin's
    tenant action (accounts.services.tenant_set_status, which audits it too)."""
    tenant_set_status(tenant=signal.tenant, status="suspended", actor=actor)
    _reviewed(signal, FraudSignal.Review.TENANT_SUSPENDED, actor)


def fraud_signal_dismiss(*, signal: FraudSignal, actor: Actor) -> None:
    _reviewed(signal, FraudSignal.Review.DISMISSED, actor)


def _reviewed(signal: FraudSignal, review: str, actor: Actor) -> None:
    before = signal.review
    signal.review, signal.reviewed_by, signal.reviewed_at = review, actor.user, timezone.now()
    signal.save(update_fields=["review", "reviewed_by", "reviewed_at"])
    audit_record(action="fraud_signal.reviewed", actor=actor, tenant=signal.tenant, target=signal,
                 changes={"review": [before, review], "rule": signal.rule.code, "subject": signal.subject})
