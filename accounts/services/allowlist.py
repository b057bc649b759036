"""IP allowlist entries and the address check."""
from __future__ import annotations

import ipaddress

from django.db import transaction

from accounts import errors
from accounts.clientip import IPAddress
from accounts.models import ApiKey, IpAllowlistEntry, Tenant
from accounts.services.audit import Actor, audit_record
from smsportal.tenancy import tenant_scoped

# --- IP allowlist ----------------------------------------------------------------------


def normalize_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise errors.InvalidCidr(f"{value!r} is not a valid IPv4 or IPv6 address or CIDR block.", field="cidr") from exc
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        network = ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return str(network)


def _check_key_tenant(tenant: Tenant, api_key: ApiKey | None) -> None:
    if api_key is not None and api_key.tenant_id != tenant.pk:
        raise errors.DomainError("Unknown API key.", field="api_key", code="not_found")


@tenant_scoped
@transaction.atomic
def ip_allowlist_add(
    *, tenant: Tenant, cidr: str, actor: Actor, api_key: ApiKey | None = None, note: str = ""
) -> IpAllowlistEntry:
    _check_key_tenant(tenant, api_key)
    entry = IpAllowlistEntry.objects.create(
        tenant=tenant, cidr=normalize_cidr(cidr), api_key=api_key, note=note, created_by=actor.user
    )
    audit_record(action="ip_allowlist.added", actor=actor, tenant=tenant, target=entry,
                 changes={"cidr": entry.cidr, "api_key": api_key.public_id if api_key else None, "note": note})
    return entry


@tenant_scoped
@transaction.atomic
def ip_allowlist_update(
    *, tenant: Tenant, entry: IpAllowlistEntry, cidr: str, note: str, api_key: ApiKey | None, actor: Actor
) -> IpAllowlistEntry:
    """Change an entry in place; records the fields that changed (nothing when none did)."""
    _check_key_tenant(tenant, api_key)
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to api_key.
    entry = (IpAllowlistEntry.objects.select_for_update(of=("self",)).select_related("api_key")
             .get(pk=entry.pk, tenant=tenant))
    before = _allowlist_fields(entry)
    entry.cidr, entry.note, entry.api_key = normalize_cidr(cidr), note, api_key
    entry.save(update_fields=["cidr", "note", "api_key"])
    after = _allowlist_fields(entry)
    changes = {name: [before[name], after[name]] for name in before if before[name] != after[name]}
    if changes:
        audit_record(action="ip_allowlist.changed", actor=actor, tenant=tenant, target=entry, changes=changes)
    return entry


def _allowlist_fields(entry: IpAllowlistEntry) -> dict:
    return {"cidr": entry.cidr, "note": entry.note, "api_key": entry.api_key.public_id if entry.api_key else None}


@tenant_scoped
@transaction.atomic
def ip_allowlist_remove(*, tenant: Tenant, entry: IpAllowlistEntry, actor: Actor) -> None:
    audit_record(action="ip_allowlist.removed", actor=actor, tenant=tenant, target=entry,
                 changes={"cidr": entry.cidr, "api_key": entry.api_key.public_id if entry.api_key else None})
    IpAllowlistEntry.objects.filter(pk=entry.pk, tenant=tenant).delete()


def ip_allowed(*, entries: list[IpAllowlistEntry], address: IPAddress | None) -> bool:
    """No entry: every address may call. Otherwise the address must fall in one; no address never does."""
    if not entries:
        return True
    if address is None:
        return False
    return any(address.version == e.network.version and address in e.network for e in entries)
