"""Read queries for accounts; every tenant-owned read takes the tenant explicitly."""
from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from accounts.models import ApiKey, AuditEvent, Invitation, IpAllowlistEntry, Membership, Tenant, User
from accounts.roles import Role
from smsportal.tenancy import tenant_scoped


def membership_list_for_user(*, user: User) -> QuerySet[Membership]:
    # unscoped: a person's tenants, found from the person before any is active
    return Membership.unscoped.filter(user=user).select_related("tenant").order_by("tenant__name")


def membership_for_user(*, user: User, tenant_slug: str) -> Membership:
    """The person's membership of the tenant with this slug; 404 when they are not a member."""
    membership = membership_list_for_user(user=user).filter(tenant__slug=tenant_slug).first()
    if membership is None:
        raise Http404("not found")
    return membership


def membership_active_for(*, user: User, tenant_id: int | None) -> Membership | None:
    """The membership for the tenant chosen in the session, else the user's first one."""
    memberships = membership_list_for_user(user=user)
    if tenant_id is not None:
        chosen = memberships.filter(tenant_id=tenant_id).first()
        if chosen is not None:
            return chosen
    return memberships.first()


def user_needs_2fa_enrolment(*, user: User) -> bool:
    """Staff always need a second factor; so does a member of a tenant that requires it."""
    if user.is_staff:
        return True
    return membership_list_for_user(user=user).filter(tenant__require_2fa=True).exists()


@tenant_scoped
def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at")


@tenant_scoped
def membership_list_with_2fa(*, tenant: Tenant) -> QuerySet[Membership]:
    """Members annotated with `has_2fa`: a confirmed authenticator app."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    confirmed = TOTPDevice.objects.filter(user=OuterRef("user"), confirmed=True)
    return membership_list(tenant=tenant).annotate(has_2fa=Exists(confirmed))


@tenant_scoped
def membership_get(*, tenant: Tenant, public_id: str) -> Membership:
    return _get(membership_list(tenant=tenant), public_id)


@tenant_scoped
def owner_count(*, tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).count()


@tenant_scoped
def invitation_list_pending(*, tenant: Tenant) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        tenant=tenant, accepted_at=None, revoked_at=None, expires_at__gt=timezone.now()
    ).select_related("invited_by")


@tenant_scoped
def invitation_get(*, tenant: Tenant, public_id: str) -> Invitation:
    return _get(Invitation.objects.filter(tenant=tenant), public_id)


def tenant_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def tenant_list() -> QuerySet[Tenant]:
    """Every tenant, by slug: platform jobs that act for each in turn (the monthly invoices)."""
    return Tenant.objects.order_by("slug")


@tenant_scoped
def api_key_list(*, tenant: Tenant) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(tenant=tenant).select_related("created_by")


@tenant_scoped
def api_key_get(*, tenant: Tenant, public_id: str) -> ApiKey:
    return _get(api_key_list(tenant=tenant), public_id)


@tenant_scoped
def ip_allowlist_list(*, tenant: Tenant) -> QuerySet[IpAllowlistEntry]:
    return IpAllowlistEntry.objects.filter(tenant=tenant).select_related("api_key")


@tenant_scoped
def ip_allowlist_get(*, tenant: Tenant, public_id: str) -> IpAllowlistEntry:
    return _get(ip_allowlist_list(tenant=tenant), public_id)


@tenant_scoped
def audit_event_list(*, tenant: Tenant, action: str | None = None) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(tenant=tenant).select_related("actor")
    return events.filter(action=action) if action else events


@tenant_scoped
def audit_action_list(*, tenant: Tenant) -> list[str]:
    """The distinct actions recorded for the tenant, for a filter menu."""
    return list(AuditEvent.objects.filter(tenant=tenant).order_by("action").values_list("action", flat=True).distinct())


@tenant_scoped
def tenant_summary(*, tenant: Tenant) -> dict[str, int]:
    """Counts for the tenant's dashboard."""
    now = timezone.now()
    usable = Q(revoked_at=None) & (Q(expires_at=None) | Q(expires_at__gt=now))
    keys = ApiKey.objects.filter(usable, tenant=tenant).aggregate(
        active=Count("pk"), live=Count("pk", filter=Q(mode=ApiKey.Mode.LIVE))
    )
    return {
        "members": Membership.objects.filter(tenant=tenant).count(),
        "pending_invitations": invitation_list_pending(tenant=tenant).count(),
        "active_keys": keys["active"],
        "live_keys": keys["live"],
        "test_keys": keys["active"] - keys["live"],
        "allowlist_entries": IpAllowlistEntry.objects.filter(tenant=tenant).count(),
        "members_without_2fa": membership_list_with_2fa(tenant=tenant).filter(has_2fa=False).count(),
    }


def user_exists(*, email: str) -> bool:
    return User.objects.filter(email=User.objects.normalize_email(email).lower()).exists()


def two_factor_status(*, user: User) -> dict:
    """The person's authenticator app (or None) and how many unused backup codes remain."""
    from django_otp.plugins.otp_static.models import StaticToken
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return {
        "device": TOTPDevice.objects.filter(user=user, confirmed=True).first(),
        "backup_codes_left": StaticToken.objects.filter(device__user=user, device__confirmed=True).count(),
        "required": user_needs_2fa_enrolment(user=user),
    }


def totp_device_pending(*, user: User, device_id: int | None):
    """The unconfirmed authenticator this session started (never one another session started)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if device_id is None:
        return None
    return TOTPDevice.objects.filter(user=user, pk=device_id, confirmed=False).first()


def _get(queryset: QuerySet, public_id: str):
    """Another tenant's object is simply not found: 404, never 403."""
    obj = queryset.filter(public_id=public_id).first()
    if obj is None:
        raise Http404("not found")
    return obj
