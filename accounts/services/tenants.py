"""Tenants: create, suspend and reactivate, security settings, the HELP reply."""
from __future__ import annotations

from django.db import transaction
from django.utils.text import slugify

from accounts import errors
from accounts.models import Membership, Tenant, User
from accounts.roles import Role
from accounts.services.audit import SYSTEM, Actor, audit_record


@transaction.atomic
def tenant_create(
    *, slug: str, name: str, owner_email: str, password: str | None = None, actor: Actor = SYSTEM,
    country: str = "US",
) -> tuple[Tenant, User]:
    """Create a tenant and its first owner (a new user, or an existing one by email). `country` is its home
    country (ISO 3166-1 alpha-2): always a permitted destination (geo permissions, docs/compliance.md)."""
    tenant = Tenant.objects.create(slug=slugify(slug), name=name, home_country=country.upper())
    owner, _created = user_get_or_create(email=owner_email, password=password)
    # unscoped: a new tenant's first owner joins before any context can exist
    Membership.unscoped.create(tenant=tenant, user=owner, role=Role.OWNER)
    audit_record(action="tenant.created", actor=actor, tenant=tenant, target=tenant, changes={"owner": owner.email})
    return tenant, owner


def user_get_or_create(*, email: str, password: str | None = None) -> tuple[User, bool]:
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email=email).first()
    if user is not None:
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user, False
    user = User.objects.create_user(email=email, password=password)
    if not password:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user, True


def tenant_lock(*, tenant: Tenant) -> Tenant:
    """Lock the tenant row until the caller's transaction ends: other apps serialise a per-tenant limit
    (e.g. at most N webhook endpoints) on it without reaching for accounts' models."""
    return Tenant.objects.select_for_update().get(pk=tenant.pk)


@transaction.atomic
def tenant_set_status(*, tenant: Tenant, status: str, actor: Actor) -> Tenant:
    """Suspend or reactivate; idempotent (an unchanged status records nothing)."""
    if status not in Tenant.Status.values:
        raise errors.DomainError("Unknown tenant status.", field="status", code="invalid_status")
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status == status:
        return tenant
    before = tenant.status
    tenant.status = status
    tenant.save(update_fields=["status"])
    audit_record(action=f"tenant.{'suspended' if status == Tenant.Status.SUSPENDED else 'reactivated'}",
                 actor=actor, tenant=tenant, target=tenant, changes={"status": [before, status]})
    return tenant


def tenant_set_require_2fa(*, tenant: Tenant, required: bool, actor: Actor) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(require_2fa=required)
    tenant.require_2fa = required
    audit_record(action="tenant.require_2fa_changed", actor=actor, tenant=tenant, target=tenant,
                 changes={"require_2fa": required})


HELP_REPLY_MAX = 320


@transaction.atomic
def tenant_set_help_reply(*, tenant: Tenant, help_reply: str, actor: Actor) -> None:
    """The text sent back to anyone who texts HELP to one of the tenant's numbers (numbers/inbound.py);
    empty means the platform's default. At most 320 characters (400 `invalid_help_reply`). Audited when
    it changes."""
    help_reply = (help_reply or "").strip()
    if len(help_reply) > HELP_REPLY_MAX:
        raise errors.DomainError(f"The HELP reply is limited to {HELP_REPLY_MAX} characters.", field="help_reply",
                                 code="invalid_help_reply")
    before = Tenant.objects.select_for_update().values_list("help_reply", flat=True).get(pk=tenant.pk)
    tenant.help_reply = help_reply
    if before == help_reply:
        return
    Tenant.objects.filter(pk=tenant.pk).update(help_reply=help_reply)
    audit_record(action="tenant.help_reply_changed", actor=actor, tenant=tenant, target=tenant,
                 changes={"help_reply": [before, help_reply]})
