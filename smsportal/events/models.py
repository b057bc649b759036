"""Webhook endpoints, the tenant's callback secret, and the delivery outbox with its attempt log.

messaging/models.py imports these, so they belong to the `messaging` app (and its migrations).
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.models import Tenant
from accounts.tenancy import TenantScopedManager
from smsportal.ids import PublicId

__all__ = ["EVENT_TYPES", "DeliveryStatus", "WebhookAttempt", "WebhookCallbackSecret", "WebhookDelivery",
           "WebhookEndpoint"]

# The events a message emits (messaging/lifecycle.py WEBHOOK_EVENTS), in lifecycle order, then the inbound
# message event (numbers/inbound.py), then the number events (numbers/services.py: a lease about to end, a
# holding released).
EVENT_TYPES = ("message.queued", "message.sent", "message.delivered", "message.undelivered", "message.failed",
               "message.expired", "message.received", "number.lease_expiring", "number.released")


class SigningSecret(models.Model):
    """A Standard Webhooks secret, encrypted at rest (messaging/webhooks/signing.py).

    After a rotation the previous secret keeps signing, beside the new one, until
    `previous_secret_expires_at`, so receivers can switch without losing a delivery.
    """

    secret_encrypted = models.TextField(editable=False)
    secret_prefix = models.CharField(max_length=16, editable=False, help_text="The first characters, to tell secrets apart.")
    previous_secret_encrypted = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True


class WebhookEndpoint(SigningSecret):
    """A URL of the tenant that receives the message events it subscribes to (`events`; empty = all)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("whe"), editable=False)
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # Failed attempts since the last success; with an exhausted delivery it disables the endpoint.
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=200, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        default_manager_name = "unscoped"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookCallbackSecret(SigningSecret):
    """The tenant's default secret: it signs deliveries to per-message `callback_url`s. Made on first need."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="webhook_callback_secret")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        default_manager_name = "unscoped"

    def __str__(self) -> str:
        return f"callback secret of {self.tenant_id} ({self.secret_prefix}…)"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    BLOCKED = "blocked", "Blocked"


class WebhookDelivery(models.Model):
    """One event for one target (an endpoint, or the message's callback_url when `endpoint` is null): the outbox row.

    `event_id` is the `webhook-id` header: the same on every attempt and resend, so receivers dedupe on it.
    A resend starts a new `cycle` (attempts count from 0 again). `next_attempt_at` is when the next
    attempt is due; while an attempt is in flight it is the end of that attempt's lease, so a worker that
    died mid-attempt is retried by the beat job. `enqueued_at` says a task is already on the way.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("whd"), editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="deliveries")
    url = models.CharField(max_length=2000)
    event_type = models.CharField(max_length=40)
    message = models.ForeignKey("messaging.Message", null=True, blank=True, on_delete=models.CASCADE,
                                related_name="webhook_deliveries")
    event_id = models.CharField(max_length=40, unique=True, default=PublicId("evt"), editable=False)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    cycle = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error_class = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        default_manager_name = "unscoped"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "endpoint", "-created_at"]),
            models.Index(fields=["tenant", "message"]),
            # The beat job's scan: due pending deliveries only (a small partial index).
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"),
                         name="webhook_delivery_due"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=DeliveryStatus.values),
                                   name="webhook_delivery_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.event_type} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery. Nothing of the response body or headers is stored (no response oracle)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    cycle = models.PositiveIntegerField(default=0)
    number = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # "" for a 2xx; else timeout, connection_error, dns_error, tls_error, blocked_destination,
    # redirect_not_followed, http_<status>, internal_error. Still "" with no finished_at: in flight, or its worker died.
    error_class = models.CharField(max_length=40, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        default_manager_name = "unscoped"
        ordering = ["delivery", "cycle", "number"]
        constraints = [
            # The claim is a compare-and-swap on (cycle, attempts): two workers cannot both log attempt n.
            models.UniqueConstraint(fields=["delivery", "cycle", "number"], name="webhook_attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.cycle}.{self.number} {self.status_code or self.error_class}"
