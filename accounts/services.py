"""Use cases that write: tenants, people, keys, allowlists, 2FA; each leaves an audit event."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from accounts import errors
from accounts.clientip import IPAddress
from accounts.models import ApiKey, AuditEvent, Invitation, IpAllowlistEntry, LoginFailure, Membership, Tenant, User
from accounts.roles import ALL_SCOPES, Role, grantable_scopes
from smsportal.ids import random_base62, to_base62


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


# --- Tenants -----------------------------------------------------------------------


@transaction.atomic
def tenant_create(
    *, slug: str, name: str, owner_email: str, password: str | None = None, actor: Actor = SYSTEM
) -> tuple[Tenant, User]:
    """Create a tenant and its first owner (a new user, or an existing one by email)."""
    tenant = Tenant.objects.create(slug=slugify(slug), name=name)
    owner, _created = user_get_or_create(email=owner_email, password=password)
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


# --- API keys ----------------------------------------------------------------------

KEY_ID_LENGTH = 12
SECRET_LENGTH = 40
CHECKSUM_LENGTH = 6
API_KEY_RE = re.compile(
    rf"^sk_(?P<mode>live|test)_(?P<key_id>[0-9A-Za-z]{{{KEY_ID_LENGTH}}})_(?P<body>[0-9A-Za-z]{{{SECRET_LENGTH + CHECKSUM_LENGTH}}})$"
)
LAST_USED_WRITE_INTERVAL = 60  # seconds between last_used_at writes for one key


def _pepper() -> bytes:
    if settings.API_KEY_PEPPER:
        return settings.API_KEY_PEPPER.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"smsportal api key pepper", hashlib.sha256).digest()


def _hash_key(raw: str) -> str:
    # One HMAC is enough: the secret carries ~238 random bits, so there is nothing to brute-force.
    return hmac.new(_pepper(), raw.encode(), hashlib.sha256).hexdigest()


def _checksum(text: str) -> str:
    return to_base62(zlib.crc32(text.encode()), CHECKSUM_LENGTH)


def api_key_format(*, mode: str, key_id: str, secret: str) -> str:
    head = f"sk_{mode}_{key_id}_{secret}"
    return head + _checksum(head)


def api_key_well_formed(raw: str) -> re.Match | None:
    """Shape and CRC32 checksum: a typo or a random string is refused without a database query."""
    match = API_KEY_RE.match(raw)
    if match is None or not hmac.compare_digest(raw[-CHECKSUM_LENGTH:], _checksum(raw[:-CHECKSUM_LENGTH])):
        return None
    return match


def _clean_scopes(scopes: list[str] | None) -> list[str]:
    scopes = list(dict.fromkeys(scopes or ["admin"]))
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise errors.InvalidScope(f"Unknown scope {unknown[0]!r}. Known scopes: {', '.join(ALL_SCOPES)}.", field="scopes")
    return scopes


@transaction.atomic
def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    actor: Actor,
    mode: str = ApiKey.Mode.TEST,
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    grantor_role: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again.

    Without scopes the key has `admin` (every scope). When a person creates the
    key, `grantor_role` limits the scopes to what that role may grant.
    """
    scopes = _clean_scopes(scopes)
    if grantor_role is not None:
        allowed = grantable_scopes(grantor_role)
        refused = [s for s in scopes if s not in allowed]
        if refused:
            raise errors.PermissionDenied(f"Your role cannot grant the scope {refused[0]!r}.", field="scopes")
    if mode not in ApiKey.Mode.values:
        raise errors.DomainError("Mode must be 'live' or 'test'.", field="mode", code="invalid_mode")
    if expires_at is not None and expires_at <= timezone.now():
        raise errors.DomainError("The expiry must be in the future.", field="expires_at", code="invalid_expiry")
    key_id, secret = random_base62(KEY_ID_LENGTH), random_base62(SECRET_LENGTH)
    raw = api_key_format(mode=mode, key_id=key_id, secret=secret)
    api_key = ApiKey.unscoped.create(
        tenant=tenant, name=name, mode=mode, key_id=key_id, secret_hash=_hash_key(raw), last4=raw[-4:],
        scopes=scopes, created_by=actor.user, expires_at=expires_at,
    )
    audit_record(action="api_key.created", actor=actor, tenant=tenant, target=api_key,
                 changes={"name": name, "mode": mode, "scopes": scopes, "prefix": api_key.prefix})
    return api_key, raw


@transaction.atomic
def api_key_revoke(*, tenant: Tenant, api_key: ApiKey, actor: Actor) -> ApiKey:
    """Idempotent: revoking a revoked key changes nothing and records nothing."""
    updated = ApiKey.unscoped.filter(pk=api_key.pk, tenant=tenant, revoked_at=None).update(revoked_at=timezone.now())
    api_key.refresh_from_db()
    if updated:
        audit_record(action="api_key.revoked", actor=actor, tenant=tenant, target=api_key,
                     changes={"prefix": api_key.prefix, "name": api_key.name})
    return api_key


def api_key_authenticate(*, raw: str) -> ApiKey:
    """The usable key for a presented secret, or InvalidApiKey (same error for every failure)."""
    match = api_key_well_formed(raw)
    if match is None:
        raise errors.InvalidApiKey()
    api_key = ApiKey.unscoped.select_related("tenant").filter(key_id=match["key_id"]).first()
    if (
        api_key is None
        or not hmac.compare_digest(api_key.secret_hash, _hash_key(raw))
        or api_key.mode != match["mode"]
        or not api_key.is_usable()
    ):
        raise errors.InvalidApiKey()
    return api_key


def api_key_touch(*, api_key: ApiKey) -> None:
    """Keep last_used_at fresh with at most one write per key per interval (the cache decides)."""
    if cache.add(f"apikey-touch:{api_key.tenant_id}:{api_key.pk}", 1, timeout=LAST_USED_WRITE_INTERVAL):
        ApiKey.unscoped.filter(pk=api_key.pk).update(last_used_at=timezone.now())


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


@transaction.atomic
def ip_allowlist_add(
    *, tenant: Tenant, cidr: str, actor: Actor, api_key: ApiKey | None = None, note: str = ""
) -> IpAllowlistEntry:
    _check_key_tenant(tenant, api_key)
    entry = IpAllowlistEntry.unscoped.create(
        tenant=tenant, cidr=normalize_cidr(cidr), api_key=api_key, note=note, created_by=actor.user
    )
    audit_record(action="ip_allowlist.added", actor=actor, tenant=tenant, target=entry,
                 changes={"cidr": entry.cidr, "api_key": api_key.public_id if api_key else None, "note": note})
    return entry


@transaction.atomic
def ip_allowlist_update(
    *, tenant: Tenant, entry: IpAllowlistEntry, cidr: str, note: str, api_key: ApiKey | None, actor: Actor
) -> IpAllowlistEntry:
    """Change an entry in place; records the fields that changed (nothing when none did)."""
    _check_key_tenant(tenant, api_key)
    # of=self: PostgreSQL cannot lock the nullable side of the outer join to api_key.
    entry = (IpAllowlistEntry.unscoped.select_for_update(of=("self",)).select_related("api_key")
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


@transaction.atomic
def ip_allowlist_remove(*, tenant: Tenant, entry: IpAllowlistEntry, actor: Actor) -> None:
    audit_record(action="ip_allowlist.removed", actor=actor, tenant=tenant, target=entry,
                 changes={"cidr": entry.cidr, "api_key": entry.api_key.public_id if entry.api_key else None})
    IpAllowlistEntry.unscoped.filter(pk=entry.pk, tenant=tenant).delete()


def ip_allowed(*, entries: list[IpAllowlistEntry], address: IPAddress | None) -> bool:
    """No entry: every address may call. Otherwise the address must fall in one; no address never does."""
    if not entries:
        return True
    if address is None:
        return False
    return any(address.version == e.network.version and address in e.network for e in entries)


# --- Team ------------------------------------------------------------------------------

INVITATION_TTL = timedelta(days=7)


def _lock_tenant(tenant: Tenant) -> Tenant:
    # Every membership change locks the tenant row first, so two concurrent
    # demotions cannot both see "another owner remains" and leave none.
    return Tenant.objects.select_for_update().get(pk=tenant.pk)


def _other_owner_exists(tenant: Tenant, membership: Membership) -> bool:
    return Membership.unscoped.filter(tenant=tenant, role=Role.OWNER).exclude(pk=membership.pk).exists()


@transaction.atomic
def membership_add(*, tenant: Tenant, user: User, role: str, actor: Actor) -> Membership:
    """Add an existing person directly (account managers in the admin); everyone else joins by invitation."""
    if role not in Role.values:
        raise errors.DomainError("Unknown role.", field="role", code="invalid_role")
    if Membership.unscoped.filter(tenant=tenant, user=user).exists():
        raise errors.AlreadyMember(field="user")
    membership = Membership.unscoped.create(tenant=tenant, user=user, role=role)
    audit_record(action="membership.added", actor=actor, tenant=tenant, target=membership,
                 changes={"user": user.email, "role": role})
    return membership


@transaction.atomic
def membership_change_role(*, tenant: Tenant, membership: Membership, role: str, actor: Actor, actor_role: str) -> Membership:
    _lock_tenant(tenant)
    membership = Membership.unscoped.select_related("user").get(pk=membership.pk, tenant=tenant)
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


@transaction.atomic
def membership_remove(*, tenant: Tenant, membership: Membership, actor: Actor, actor_role: str) -> None:
    _lock_tenant(tenant)
    membership = Membership.unscoped.select_related("user").get(pk=membership.pk, tenant=tenant)
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
    if Membership.unscoped.filter(tenant=tenant, user__email=email).exists():
        raise errors.AlreadyMember(field="email")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.unscoped.create(
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
    invitation = Invitation.unscoped.select_related("tenant").filter(token_hash=_token_hash(token)).first()
    if invitation is None or not invitation.is_pending:
        raise errors.InvalidInvitation()
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user: User | None = None, password: str | None = None, ip: str | None = None) -> Membership:
    """Join the tenant: as the signed-in `user` (whose email must match) or as a new user with `password`."""
    invitation = invitation_find(token=token)
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


@transaction.atomic
def invitation_revoke(*, tenant: Tenant, invitation: Invitation, actor: Actor) -> None:
    updated = Invitation.unscoped.filter(pk=invitation.pk, tenant=tenant, revoked_at=None, accepted_at=None).update(
        revoked_at=timezone.now()
    )
    if updated:
        audit_record(action="membership.invitation_revoked", actor=actor, tenant=tenant, target=invitation,
                     changes={"email": invitation.email})


# --- Sign-in and 2FA -----------------------------------------------------------------


def _audit_everywhere(*, user: User, action: str, actor: Actor, changes: dict | None = None) -> None:
    """A person's security event belongs to each tenant they are in (and to none, for staff without one)."""
    tenant_ids = list(Membership.unscoped.filter(user=user).values_list("tenant_id", flat=True))
    for tenant in Tenant.objects.filter(pk__in=tenant_ids) if tenant_ids else [None]:
        audit_record(action=action, actor=actor, tenant=tenant, target=user, changes=changes)


def login_locked(*, email: str, ip: str | None) -> bool:
    """Locked after LOGIN_FAILURE_LIMIT failures for the email from one address within the lockout
    window, or four times that from any addresses (a spray across many addresses)."""
    since = timezone.now() - timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
    recent = LoginFailure.objects.filter(email=email.lower(), created_at__gte=since)
    if recent.count() >= settings.LOGIN_FAILURE_LIMIT * 4:
        return True
    return recent.filter(ip_address=ip).count() >= settings.LOGIN_FAILURE_LIMIT


def login_failed(*, email: str, ip: str | None) -> None:
    email = email.lower()
    LoginFailure.objects.create(email=email, ip_address=ip)
    user = User.objects.filter(email=email).first()
    if user is not None:
        _audit_everywhere(user=user, action="auth.login_failed", actor=Actor(user=user, ip=ip))


def login_succeeded(*, user: User, ip: str | None) -> None:
    LoginFailure.objects.filter(email=user.email.lower()).delete()
    _audit_everywhere(user=user, action="auth.login", actor=Actor(user=user, ip=ip))


def totp_device_start(*, user: User):
    """A fresh unconfirmed TOTP device; any earlier unconfirmed one is discarded."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


@transaction.atomic
def totp_device_confirm(*, user: User, device, token: str, ip: str | None) -> list[str] | None:
    """Confirm enrolment with a first token; returns new backup codes, or None if the token is wrong."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if not device.verify_token(token.strip().replace(" ", "")):
        return None
    TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save()
    codes = backup_codes_regenerate(user=user, ip=ip, audit=False)
    _audit_everywhere(user=user, action="auth.2fa_enabled", actor=Actor(user=user, ip=ip))
    return codes


BACKUP_CODE_COUNT = 10


@transaction.atomic
def backup_codes_regenerate(*, user: User, ip: str | None, audit: bool = True) -> list[str]:
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    device, _ = StaticDevice.objects.get_or_create(user=user, name="Backup codes", defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    if audit:
        _audit_everywhere(user=user, action="auth.backup_codes_regenerated", actor=Actor(user=user, ip=ip))
    return codes


OTP_CODE_RE = re.compile(r"^[0-9]{6,8}$")


def two_factor_verify(*, user: User, token: str):
    """The confirmed device that accepts `token`, or None.

    Digits go to the authenticator (a TOTP code is accepted once: the device
    remembers its last time step); anything else is tried as a backup code,
    which is deleted when used. Routing by shape keeps a mistyped backup code
    from throttling the authenticator and vice versa. Each device throttles its
    own failures (1 s, 2 s, 4 s ... between tries): while it does, this raises
    TwoFactorThrottled. The devices are locked for the check, so two requests
    cannot spend the same code.
    """
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    token = token.strip().replace(" ", "").replace("-", "")
    model = TOTPDevice if OTP_CODE_RE.match(token) else StaticDevice
    if model is StaticDevice:
        token = token.lower()
    with transaction.atomic():
        devices = list(model.objects.devices_for_user(user, confirmed=True).select_for_update())
        allowed = [d for d in devices if d.verify_is_allowed()[0]]
        if devices and not allowed:
            raise errors.TwoFactorThrottled()
        return next((d for d in allowed if d.verify_token(token)), None)


@transaction.atomic
def two_factor_disable(*, user: User, ip: str | None) -> None:
    """Remove every second factor; refused for staff and for members of a tenant that requires 2FA."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from accounts.selectors import user_needs_2fa_enrolment

    if user_needs_2fa_enrolment(user=user):
        raise errors.PermissionDenied(
            "Two-factor authentication is required for your account, so it cannot be turned off."
        )
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    _audit_everywhere(user=user, action="auth.2fa_disabled", actor=Actor(user=user, ip=ip))


def ip_text(address: IPAddress | None) -> str | None:
    return str(address) if address is not None else None

