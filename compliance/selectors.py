"""Read queries of compliance, always tenant-scoped."""
from __future__ import annotations

from typing import TYPE_CHECKING

from compliance.consent import phone_hash
from compliance.errors import ConsentNotFound
from compliance.models import ConsentRecord, QuietHoursSetting, Suppression
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant


@tenant_scoped
def quiet_hours_get(*, tenant: Tenant) -> QuietHoursSetting | None:
    return QuietHoursSetting.objects.filter(tenant=tenant).first()


# --- Consent ledger and suppressions (issue 12, sections 1 and 2) -------------------------------------------


@tenant_scoped
def consent_list(*, tenant: Tenant, phone: str = "", status: str = ""):
    """The tenant's ledger records, newest first; `phone` (E.164) matches by keyed hash, erased ones too."""

    rows = ConsentRecord.objects.filter(tenant=tenant)
    if phone:
        rows = rows.filter(phone_hash=phone_hash(phone))
    if status:
        rows = rows.filter(status=status)
    return rows


@tenant_scoped
def suppression_list(*, tenant: Tenant, phone: str = ""):
    """The tenant's suppressions, newest first; `phone` matches by keyed hash (an erasure's entry too)."""

    rows = Suppression.objects.filter(tenant=tenant)
    return rows.filter(phone_hash=phone_hash(phone)) if phone else rows


@tenant_scoped
def consent_get(*, tenant: Tenant, public_id: str):

    row = ConsentRecord.objects.filter(tenant=tenant, public_id=public_id).first()
    if row is None:
        raise ConsentNotFound(field="id")
    return row
