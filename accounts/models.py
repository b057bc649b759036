"""Tenants, people, API keys, IP allowlists and the audit trail."""
from __future__ import annotations

import ipaddress

from django.conf import settings
from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.roles import Role, scopes_allow
from smsportal.ids import PublicId
from smsportal.tenancy import TenantScopedManager


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **extra):
        email = self.normalize_email(email).lower()
        user = self.model(email=email, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractUser):
    """A person; signs in with their email address."""

    username = None
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    def __str__(self) -> str:
        return self.email


class Tenant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    class Region(models.TextChoices):
        EU = "eu", "European Union"
        US = "us", "United States"
        APAC = "apac", "Asia-Pacific"

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    account_manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_tenants",
        limit_choices_to={"is_staff": True},
    )
    data_region = models.CharField(max_length=8, choices=Region.choices, default=Region.EU)
    home_country = models.CharField(
        max_length=2, default="US",
        help_text="ISO 3166-1 alpha-2: the country the tenant always may send to (geo permissions, docs/compliance.md).",
    )
    require_2fa = models.BooleanField(default=False, help_text="Every member must use two-factor authentication.")
    # Sending limits; account managers raise them per tenant.
    messages_per_second = models.PositiveIntegerField(
        default=20, help_text="Requests per second to POST /v1/messages, shared by all the tenant's keys."
    )
    max_message_segments = models.PositiveSmallIntegerField(
        default=10, help_text="Longest message accepted, in SMS segments."
    )
    help_reply = models.CharField(
        max_length=320, blank=True,
        help_text="Sent back to anyone who texts HELP to one of the tenant's numbers; empty means the platform's default reply.",
    )
    # Off by default (fail closed): a number shared by many tenants is a compliance decision an account
    # manager makes per tenant, not something every new account gets.
    shared_senders_allowed = models.BooleanField(
        default=False,
        help_text="May send from the platform's shared senders (numbers marked as shared senders in the inventory).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["active", "suspended"]), name="tenant_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("mem"), editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant.slug} ({self.role})"


class Invitation(models.Model):
    """An emailed invitation to join a tenant with a role; the token is stored hashed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("inv"), editable=False)
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "email"])]

    def __str__(self) -> str:
        return f"{self.email} -> {self.tenant.slug} ({self.role})"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class ApiKey(models.Model):
    """An API key. Only an HMAC of the secret is stored; the secret is shown once."""

    class Mode(models.TextChoices):
        LIVE = "live", "Live"
        TEST = "test", "Test"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("key"), editable=False)
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.TEST)
    # The lookup part of the key, visible in its prefix (sk_test_<key_id>).
    key_id = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # billing: the most this key's live sends may hold in a day (UTC); empty: no cap (billing.ApiKeySpend).
    daily_spend_cap = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "created_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(daily_spend_cap__isnull=True) | models.Q(daily_spend_cap__gte=0),
                                   name="api_key_daily_spend_cap_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…{self.last4})"

    @property
    def prefix(self) -> str:
        return f"sk_{self.mode}_{self.key_id}"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    def has_scope(self, scope: str) -> bool:
        return scopes_allow(self.scopes, scope)


def validate_cidr(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not an IPv4 or IPv6 address or CIDR block.", code="invalid_cidr") from exc


class IpAllowlistEntry(models.Model):
    """A CIDR allowed to use the tenant's keys (or one key, when bound)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="ip_allowlist")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("ipa"), editable=False)
    cidr = models.CharField(max_length=64, validators=[validate_cidr])
    api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="ip_allowlist")
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["created_at"]
        verbose_name = "IP allowlist entry"
        verbose_name_plural = "IP allowlist entries"
        indexes = [models.Index(fields=["tenant", "api_key"])]

    def __str__(self) -> str:
        return self.cidr

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr, strict=False)


class AuditEvent(models.Model):
    """Append-only record of a security- or money-relevant action.

    Rows are never updated or deleted: `save()` refuses an update, and on
    PostgreSQL a trigger (migration 0002) refuses UPDATE and DELETE outright.
    """

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("evt"), editable=False)
    action = models.CharField(max_length=64, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_api_key = models.ForeignKey(ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Kept as text so the record reads the same after the user or key changes.
    actor_label = models.CharField(max_length=254, blank=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    changes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False, db_index=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label or 'system'}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("audit events are append-only")


class LoginFailure(models.Model):
    """One failed sign-in, used for lockout by email + address and by email across addresses."""

    email = models.CharField(max_length=254, db_index=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["email", "ip_address", "created_at"])]

    def __str__(self) -> str:
        return f"{self.email} from {self.ip_address} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class IdempotencyRecord(models.Model):
    """The first answer to a POST /v1 request that carried an `Idempotency-Key` (smsportal/api/idempotency.py).

    One row per (tenant, mode, key): the unique constraint is the claim, so two requests with one
    key never both run. `locked_at` is the claim's token: completing, releasing and taking over a
    stale claim are UPDATEs/DELETEs conditional on it. The stored body is the exact rendered bytes
    (with fields a view marks secret replaced by null), so a replay is byte-identical.
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"

    # No index of its own: the unique (tenant, mode, key) leads with the tenant and serves every tenant filter
    # (and the cascade), and every single send writes a record: one index entry fewer each.
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="idempotency_records", db_index=False)
    mode = models.CharField(max_length=8, choices=ApiKey.Mode.choices)
    key = models.CharField(max_length=255)
    # SHA-256 of method, route, path parameters, query and canonical JSON body.
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    locked_at = models.DateTimeField()
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "mode", "key"], name="idempotency_unique_key_per_tenant_mode"),
            models.CheckConstraint(condition=models.Q(state__in=["in_progress", "completed"]),
                                   name="idempotency_state_valid"),
            models.CheckConstraint(
                condition=models.Q(state="in_progress")
                | models.Q(response_status__isnull=False, response_body__isnull=False),
                name="idempotency_completed_has_response",
            ),
        ]
        # Not led by tenant: the purge sweeps by age across all tenants.
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.mode} {self.key} ({self.state})"
