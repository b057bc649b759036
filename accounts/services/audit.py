"""Who did what: the Actor and the append-only audit trail."""
from __future__ import annotations

from dataclasses import dataclass

from accounts.models import ApiKey, AuditEvent, Membership, Tenant, User


@dataclass(frozen=True)
class Actor:
    """Who did something, for the audit trail: a person, a key, or the system."""

    user: User | None = None
    api_key: ApiKey | None = None
    ip: str | None = None

    @property
    def label(self) -> str:
        if self.user is not None:
            return self.user.email
        if self.api_key is not None:
            return f"api key {self.api_key.prefix}"
        return "system"


SYSTEM = Actor()


def audit_record(
    *, action: str, actor: Actor, tenant: Tenant | None = None, target: object | None = None, changes: dict | None = None
) -> AuditEvent:
    # unscoped: an event of no tenant (staff, platform) or of each tenant of a person
    return AuditEvent.unscoped.create(
        tenant=tenant,
        action=action,
        actor=actor.user,
        actor_api_key=actor.api_key,
        actor_label=actor.label,
        target_type=type(target).__name__ if target is not None else "",
        target_id=str(getattr(target, "public_id", None) or getattr(target, "slug", None) or getattr(target, "pk", "")),
        ip_address=actor.ip,
        changes=changes or {},
    )


def _audit_everywhere(*, user: User, action: str, actor: Actor, changes: dict | None = None) -> None:
    """A person's security event belongs to each tenant they are in (and to none, for staff without one)."""
    # unscoped: a person's security event goes to every tenant they belong to
    tenant_ids = list(Membership.unscoped.filter(user=user).values_list("tenant_id", flat=True))
    for tenant in Tenant.objects.filter(pk__in=tenant_ids) if tenant_ids else [None]:
        audit_record(action=action, actor=actor, tenant=tenant, target=user, changes=changes)
