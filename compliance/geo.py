"""Geo permissions (docs/compliance.md, "Content policy and geo permissions"): where a tenant may send.

A country is allowed when the tenant's GeoPermission row for it says enabled or, without a row, by default:
the tenant's home country and the countries the rules mark low-risk. High-risk and medium-risk countries, and
countries the dataset does not list, stay off until the owner enables them; a country whose rule has
`approval_required` is allowed only once an account manager approved the tenant for it (the admin's approval
queue). The home country needs no approval: account managers set it when they create the tenant.

The send pipeline asks `geo_allowed` for every message, so each process keeps a tenant's rows in memory
(one query per tenant per COMPLIANCE_CACHE_SECONDS); a save in this process clears them (compliance/signals.py).
"""
from __future__ import annotations

import threading
import time as clock
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import phonenumbers
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from accounts.services.audit import Actor, audit_record
from compliance import countries
from compliance.errors import GeoApprovalNotPending, InvalidCountry
from compliance.models import GeoApprovalRequest, GeoPermission
from smsportal.tenancy import tenant_scoped

if TYPE_CHECKING:
    from accounts.models import Tenant

KNOWN_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)


@dataclass(frozen=True)
class _Row:
    enabled: bool
    approved: bool


@dataclass(frozen=True)
class GeoCountry:
    """One country as GET /v1/geo-permissions shows it."""

    country: str
    name: str
    risk: str  # low | medium | high | unknown (no rule in the dataset)
    approval_required: bool
    enabled: bool  # the owner's choice, or the default
    default: bool  # no explicit choice: the default applies
    status: str  # allowed | off | pending_approval | rejected


_cache: dict[int, tuple[float, dict[str, _Row]]] = {}
_lock = threading.Lock()


def geo_cache_clear() -> None:
    with _lock:
        _cache.clear()


def _rows(tenant_id: int) -> dict[str, _Row]:
    now = clock.monotonic()
    known = _cache.get(tenant_id)
    if known is None or now - known[0] >= settings.COMPLIANCE_CACHE_SECONDS:
        # the accept pipeline and the API run in the tenant's context: the scoped manager filters to it
        rows = {country: _Row(enabled=enabled, approved=approved_at is not None) for country, enabled, approved_at in
                GeoPermission.objects.filter(tenant_id=tenant_id).values_list("country", "enabled", "approved_at")}
        with _lock:
            _cache[tenant_id] = known = (now, rows)
    return known[1]


def geo_country(number: str, *, region: str | None = None) -> str:
    """The country a number's permission is decided by: its own region when the dataset has a rule for it,
    else the main region of its calling code when that one has (Guernsey's +44 7781 … is decided as GB),
    else its own region ("" when the number has none). `region`: the number's own region when the caller
    knows it already (the accept pipeline's validation did), which saves parsing the number."""
    iso = region or countries.country_of(number)
    if iso and countries.country_rule(iso) is None:
        main = _main_region(number)
        if main and countries.country_rule(main) is not None:
            return main
    return iso


def _main_region(number: str) -> str:
    """The main region of the calling code "+" `number` starts with (1 to 3 digits, the shortest known)."""
    for size in (1, 2, 3):
        code = number[1:1 + size]
        if code.isdigit() and int(code) in COUNTRY_CODE_TO_REGION_CODE:
            return phonenumbers.region_code_for_country_code(int(code))
    return ""


def _default_enabled(iso: str, *, home: str) -> bool:
    rule = countries.country_rule(iso)
    return iso == home or (rule is not None and rule.risk == "low")


def geo_allowed(*, tenant_id: int, home_country: str, country: str) -> bool:
    """Whether the tenant may send to `country` (ISO, upper case) now."""
    row = _rows(tenant_id).get(country)
    enabled = row.enabled if row is not None else _default_enabled(country, home=home_country)
    if not enabled:
        return False
    rule = countries.country_rule(country)
    if rule is not None and rule.approval_required and country != home_country:
        return row is not None and row.approved
    return True


@tenant_scoped
def geo_permissions_list(*, tenant: Tenant) -> list[GeoCountry]:
    """Every country of the dataset, and any other the tenant chose, with its state for the tenant."""
    rows = {row.country: row for row in GeoPermission.objects.all()}
    pending = set(GeoApprovalRequest.objects.filter(status=GeoApprovalRequest.Status.PENDING)
                  .values_list("country", flat=True))
    rejected = set(GeoApprovalRequest.objects.filter(status=GeoApprovalRequest.Status.REJECTED)
                   .values_list("country", flat=True)) - pending
    isos = sorted(set(countries.country_rules()) | set(rows) | {tenant.home_country})
    answer = []
    for iso in isos:
        rule, row = countries.country_rule(iso), rows.get(iso)
        enabled = row.enabled if row is not None else _default_enabled(iso, home=tenant.home_country)
        approval = bool(rule and rule.approval_required and iso != tenant.home_country)
        if not enabled:
            status = "off"
        elif approval and not (row and row.approved_at):
            status = "pending_approval" if iso in pending else "rejected" if iso in rejected else "off"
        else:
            status = "allowed"
        answer.append(GeoCountry(country=iso, name=rule.name if rule else iso, risk=rule.risk if rule else "unknown",
                                 approval_required=approval, enabled=enabled, default=row is None, status=status))
    return answer


@tenant_scoped
@transaction.atomic
def geo_permissions_set(*, tenant: Tenant, changes: dict[str, bool], actor: Actor) -> list[GeoCountry]:
    """Enable or disable countries ({ISO: enabled}); a country needing approval that is enabled and not yet
    approved gets a pending GeoApprovalRequest (the admin's queue). Audited (geo_permission.changed) when
    something changed. Raises InvalidCountry for a code that is no region."""
    for iso in changes:
        if not isinstance(iso, str) or iso.upper() not in KNOWN_REGIONS:
            raise InvalidCountry(f"{iso!r} is not an ISO 3166-1 alpha-2 country code.", field="countries")
    before, after = {}, {}
    for iso, enabled in sorted(changes.items()):
        iso = iso.upper()
        row = GeoPermission.objects.select_for_update().filter(country=iso).first()
        was = row.enabled if row else _default_enabled(iso, home=tenant.home_country)
        if row is None:
            row = GeoPermission.objects.create(tenant=tenant, country=iso, enabled=enabled)
        elif row.enabled != enabled:
            row.enabled = enabled
            row.save(update_fields=["enabled", "updated_at"])
        rule = countries.country_rule(iso)
        if (enabled and rule and rule.approval_required and iso != tenant.home_country and row.approved_at is None
                and not GeoApprovalRequest.objects.filter(country=iso, status=GeoApprovalRequest.Status.PENDING).exists()):
            GeoApprovalRequest.objects.create(tenant=tenant, country=iso)
        if was != enabled:
            before[iso], after[iso] = was, enabled
    if after:
        audit_record(action="geo_permission.changed", actor=actor, tenant=tenant, target=tenant,
                     changes={"before": before, "after": after})
    transaction.on_commit(geo_cache_clear)
    return geo_permissions_list(tenant=tenant)


@transaction.atomic
def geo_approval_decide(*, request_id: int, approve: bool, reason: str, actor: Actor,
                        now: datetime | None = None) -> GeoApprovalRequest:
    """An account manager's decision on a pending request: approved, the country is allowed to the tenant
    (while it keeps it enabled); rejected, it stays off. Audited (geo_approval.approved / .rejected)."""
    now = now or timezone.now()
    # unscoped: account managers decide in admin, outside any tenant's context, one request by its id
    request = GeoApprovalRequest.unscoped.select_for_update().select_related("tenant").get(pk=request_id)
    if request.status != GeoApprovalRequest.Status.PENDING:
        raise GeoApprovalNotPending(field="status")
    request.status = GeoApprovalRequest.Status.APPROVED if approve else GeoApprovalRequest.Status.REJECTED
    request.reason, request.reviewed_by, request.reviewed_at = reason, actor.user, now
    request.save(update_fields=["status", "reason", "reviewed_by", "reviewed_at"])
    if approve:
        # unscoped: the same request's tenant, decided outside its context (admin)
        GeoPermission.unscoped.update_or_create(tenant=request.tenant, country=request.country,
                                                defaults={"enabled": True, "approved_at": now})
    audit_record(action=f"geo_approval.{request.status}", actor=actor, tenant=request.tenant, target=request,
                 changes={"country": request.country, "reason": reason})
    transaction.on_commit(geo_cache_clear)
    return request
