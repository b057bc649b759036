"""Retention and erasure (issue 12, section 9; docs/compliance.md "Retention and erasure").

- Retention: message bodies (sent and inbound) older than the tenant's `retention_days` (ConsentSettings; else
  RETENTION_DEFAULT_DAYS, 90) are redacted by beat (`retention_redact_task`, hourly), keeping what billing needs
  (price, parts, encoding, recipient, times). The redacting is the owning app's (compliance/hooks.py).
- Erasure: POST /v1/erasure-requests {phone} redacts the number's messages and inbound messages and blanks the
  number and proof of its consent records, keeps the keyed hash of the number as a tenant-wide suppression (so an
  opt-out survives: the send check matches on the hash) and records an audited ErasureRequest that names only
  the hash.
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.services.audit import Actor, audit_record
from compliance import consent, hooks
from compliance.consent_services import phone_e164
from compliance.models import (
    ConsentRecord,
    ConsentScope,
    ConsentSettings,
    ErasureRequest,
    KeywordEvent,
    Suppression,
)
from smsportal.tenancy import all_tenants, tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

ERASED_PROOF = {"phone": "", "consent_text": "", "consent_version": "", "ip": None, "user_agent": "", "page_url": ""}


def retention_redact(*, now=None) -> dict[str, int]:
    """Redact every tenant's bodies past its retention; returns rows redacted by kind. Safe to run twice."""
    now = now or timezone.now()
    with all_tenants():
        # unscoped: beat's retention sweep, over every tenant, each by its own retention setting
        custom = dict(ConsentSettings.objects.exclude(retention_days=settings.RETENTION_DEFAULT_DAYS)
                      .values_list("tenant_id", "retention_days"))
        done: dict[str, int] = {}
        default_before = now - timedelta(days=settings.RETENTION_DEFAULT_DAYS)
        for redactor in hooks.redactors():
            count = redactor.expire(before=default_before, exclude_tenant_ids=custom.keys())
            for tenant_id, days in custom.items():
                count += redactor.expire(before=now - timedelta(days=days), tenant_id=tenant_id)
            done[redactor.name] = count
    return done


@tenant_scoped
@transaction.atomic
def erasure_request_create(*, tenant: Tenant, phone: str, actor: Actor) -> ErasureRequest:
    """Erase what the tenant holds about `phone`; keeps its keyed hash as a tenant-wide suppression. Audited.

    Idempotent in effect: a second request for the same number redacts nothing more and finds the suppression."""
    phone = phone_e164(phone)
    hashed = consent.phone_hash(phone)
    hooks.opt_out_notify(tenant_id=tenant.pk, phone=phone, scope=ConsentScope.TENANT, sender="", pool_id="")
    counts = {redactor.name: redactor.erase(tenant_id=tenant.pk, phone=phone) for redactor in hooks.redactors()}
    counts["consents"] = ConsentRecord.objects.filter(tenant=tenant, phone_hash=hashed, erased_at=None).update(
        **ERASED_PROOF, erased_at=timezone.now())
    counts["keywords"] = KeywordEvent.objects.filter(tenant=tenant, sender=phone).update(sender="")
    Suppression.objects.filter(tenant=tenant, phone_hash=hashed).update(phone="")
    Suppression.objects.get_or_create(tenant=tenant, phone_hash=hashed, scope=ConsentScope.TENANT, sender="",
                                      pool_id="", defaults={"source": Suppression.Source.ERASURE,
                                                            "reason": "erasure request"})
    consent.consent_cache_clear(tenant.pk)
    request = ErasureRequest.objects.create(tenant=tenant, phone_hash=hashed, counts=counts)
    audit_record(action="erasure.completed", actor=actor, tenant=tenant, target=request,
                 changes={"phone_hash": hashed, **counts})
    return request
