"""Read queries of compliance, always tenant-scoped."""
from __future__ import annotations

from typing import TYPE_CHECKING

from compliance.models import QuietHoursSetting
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant


@tenant_scoped
def quiet_hours_get(*, tenant: Tenant) -> QuietHoursSetting | None:
    return QuietHoursSetting.objects.filter(tenant=tenant).first()
