"""Team: memberships with the last-owner rule, invitations."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from accounts import errors
from accounts.models import Invitation, Membership, Tenant, User
from accounts.roles import Role, role_can
from accounts.services.audit import Actor, audit_record
from accounts.services.tenants import user_get_or_create
from smsportal.tenancy import tenant_scoped

# --- Team ------------------------------------------------------------------------------

INVITATION_TTL = timedelta(days=7)


def _lock_tenant(tenant: Tenant) -> Tenant:
    # Every membership change locks the tenant row first, so two concurrent
    # demotions cannot both see "another owner remains" and leave none.
    return Tenant.objects.select_for_update().get(pk=tenant.pk)


def _role_under_lock(tenant: Tenant, actor: Actor, claimed: str) -> str:
    """The actor's role as it is now, read after the tenant lock: a member demoted a moment
    ago cannot still act on the role the caller read before. Staff (no membership) keep `claimed`."""
    if actor.user is None:
        return claimed
    current = Membership.objects.filter(tenant=tenant, user=actor.user).values_list("role", flat=True).first()
    if current is None:
        return claimed if actor.user.is_staff else ""
    if not role_can(current, "team.manage"):
        raise errors.PermissionDenied("Your role does not allow managing the team.")
    return current


def _other_owner_exists(tenant: Tenant, membership: Membership) -> bool:
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).exclude(pk=membership.pk).exists()


@tenant_scoped
@transaction.atomic
def membership_add(*, tenant: Tenant, user: User, role: str, actor: Actor) -> Membership:
    """Add an existing person directly (account managers in the admin); everyone else joins by invitation."""
    if role not in Role.values:
        raise errors.DomainError("Unknown role.", field="role", code="invalid_role")
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise errors.AlreadyMember(field="user")
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    audit_record(action="membership.added", actor=actor, tenant=tenant, target=membership,
                 changes={"user": user.email, "role": role})
    return membership


@tenant_scoped
@transaction.atomic
def membership_change_role(*, tenant: Tenant, membership: Membership, role: str, actor: Actor, actor_role: str) -> Membership:
    _lock_tenant(tenant)
    actor_role = _role_under_lock(tenant, actor, actor_role)
    membership = Membership.objects.select_related("user").get(pk=membership.pk, tenant=tenant)
    if role not in Role.values:
        raise errors.DomainError("Unknown role.", field="role", code="invalid_role")
    if Role.OWNER in (role, membership.role) and actor_role != Role.OWNER:
        raise errors.PermissionDenied("Only an owner can grant or change the owner role.", field="role")
    if membership.role == Role.OWNER and role != Role.OWNER and not _other_owner_exists(tenant, membership):
        raise errors.LastOwner("The last owner cannot be demoted. Make someone else an owner first.", field="role")
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(action="membership.role_changed", actor=actor, tenant=tenant, target=membership,
                 changes={"user": membership.user.email, "role": [before, role]})
    return membership


@tenant_scoped
@transaction.atomic
def membership_remove(*, tenant: Tenant, membership: Membership, actor: Actor, actor_role: str) -> None:
    _lock_tenant(tenant)
    actor_role = _role_under_lock(tenant, actor, actor_role)
    membership = Membership.objects.select_related("user").get(pk=membership.pk, tenant=tenant)
    if membership.role == Role.OWNER:
        if actor_role != Role.OWNER:
            raise errors.PermissionDenied("Only an owner can remove an owner.")
        if not _other_owner_exists(tenant, membership):
            raise errors.LastOwner("The last owner cannot be removed. Make someone else an owner first.")
    audit_record(action="membership.removed", actor=actor, tenant=tenant, target=membership,
                 changes={"user": membership.user.email, "role": membership.role})
    membership.delete()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@tenant_scoped
@transaction.atomic
def invitation_create(
    *, tenant: Tenant, email: str, role: str, actor: Actor, actor_role: str, accept_url_template: str
) -> Invitation:
    """Invite a person by email. `accept_url_template` has `{token}` where the link's token goes."""
    email = User.objects.normalize_email(email).lower()
    if role not in Role.values:
        raise errors.DomainError("Unknown role.", field="role", code="invalid_role")
    if role == Role.OWNER and actor_role != Role.OWNER:
        raise errors.PermissionDenied("Only an owner can invite another owner.", field="role")
    if Membership.objects.filter(tenant=tenant, user__email=email).exists():
        raise errors.AlreadyMember(field="email")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        tenant=tenant, email=email, role=role, token_hash=_token_hash(token), invited_by=actor.user,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    audit_record(action="membership.invited", actor=actor, tenant=tenant, target=invitation,
                 changes={"email": email, "role": role})
    context = {"tenant": tenant, "invitation": invitation, "url": accept_url_template.format(token=token),
               "inviter": actor.label}
    transaction.on_commit(lambda: send_mail(
        subject=f"You are invited to {tenant.name} on smsportal",
        message=render_to_string("emails/invitation.txt", context),
        from_email=None,
        recipient_list=[email],
    ))
    return invitation


def invitation_find(*, token: str) -> Invitation:
    # unscoped: the invitation token names the tenant; the invitee is not in it yet
    invitation = Invitation.unscoped.select_related("tenant").filter(token_hash=_token_hash(token)).first()
    if invitation is None or not invitation.is_pending:
        raise errors.InvalidInvitation()
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User | None = None, password: str | None = None, ip: str | None = None) -> Membership:
    """Join the tenant: as the signed-in `user` (whose email must match) or as a new user with `password`."""
    invitation = invitation_find(token=token)
    # unscoped: the invitee joins from outside the tenant; the token is the scope
    invitation = Invitation.unscoped.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise errors.InvalidInvitation()
    if user is None:
        # Never through user_get_or_create, which would set a new password on an existing account.
        if User.objects.filter(email=invitation.email).exists():
            raise errors.SignInRequired()
        user, _ = user_get_or_create(email=invitation.email, password=password)
    elif user.email.lower() != invitation.email:
        raise errors.PermissionDenied("This invitation was sent to another email address.")
    if Membership.unscoped.filter(tenant=invitation.tenant, user=user).exists():
        raise errors.AlreadyMember()
    membership = Membership.unscoped.create(tenant=invitation.tenant, user=user, role=invitation.role)
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_record(action="membership.joined", actor=Actor(user=user, ip=ip), tenant=invitation.tenant,
                 target=membership, changes={"user": user.email, "role": membership.role})
    return membership


@tenant_scoped
@transaction.atomic
def invitation_revoke(*, tenant: Tenant, invitation: Invitation, actor: Actor) -> None:
    updated = Invitation.objects.filter(pk=invitation.pk, tenant=tenant, revoked_at=None, accepted_at=None).update(
        revoked_at=timezone.now()
    )
    if updated:
        audit_record(action="membership.invitation_revoked", actor=actor, tenant=tenant, target=invitation,
                     changes={"email": invitation.email})
