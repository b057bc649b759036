"""Read queries of compliance, always tenant-scoped."""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Exists, Q, Subquery

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


def consent_outer_state(*, tenant_id, phone, sender, pool_id, before) -> tuple[Subquery, Exists]:
    """For a query over another app's rows (messaging's invariant, messaging/invariants.py): the status of the
    latest ledger record of `phone` in a scope covering (`sender`, `pool_id`) made before `before`, and whether a
    suppression covering them existed before then. The arguments are OuterRef expressions of the outer query;
    entries of erased numbers (no `phone` left) are matched by the caller through their hashes."""
    covers = Q(scope="tenant") | Q(scope="sender", sender=sender) | Q(scope="pool", pool_id=pool_id)
    latest = (ConsentRecord.objects.filter(covers, tenant_id=tenant_id, phone=phone, created_at__lt=before)
              .order_by("-created_at", "-id").values("status")[:1])
    suppressed = Suppression.objects.filter(covers, tenant_id=tenant_id, phone=phone, created_at__lt=before)
    return Subquery(latest), Exists(suppressed)


def erased_hashes() -> dict[int, set[str]]:
    """The keyed hashes of erased numbers, by tenant (their entries keep no number): under all_tenants()."""
    found: dict[int, set[str]] = {}
    for tenant_id, hashed in Suppression.objects.filter(phone="").values_list("tenant_id", "phone_hash"):
        found.setdefault(tenant_id, set()).add(hashed)
    return found
