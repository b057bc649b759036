"""Webhook endpoints, the tenant's callback secret, and the delivery outbox with its attempt log.

The tables keep the names they had under `messaging` (Meta.db_table): the move to this app changed
only Django's state (events/migrations/0001_initial.py), not the database.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from smsportal.ids import PublicId
from smsportal.tenancy import TenantScopedManager

__all__ = ["DeliveryStatus", "EventFanout", "WebhookAttempt", "WebhookCallbackSecret", "WebhookDelivery", "WebhookEndpoint"]


class SigningSecret(models.Model):
    """A Standard Webhooks secret, encrypted at rest (smsportal/events/signing.py).

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

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="webhook_endpoints")
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
        db_table = "messaging_webhookendpoint"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.public_id} {self.url}"

    def wants(self, event_type: str) -> bool:
        return not self.events or event_type in self.events


class WebhookCallbackSecret(SigningSecret):
    """The tenant's default secret: it signs deliveries to per-message `callback_url`s. Made on first need."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="webhook_callback_secret")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        db_table = "messaging_webhookcallbacksecret"

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

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("whd"), editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="deliveries")
    url = models.CharField(max_length=2000)
    event_type = models.CharField(max_length=40)
    # The public id of what the event is about (msg_…, inb_…, lse_…, asg_…): a plain value, not a foreign
    # key, so this layer knows nothing of the apps that emit. Deleting the subject leaves its deliveries.
    subject = models.CharField(max_length=40, blank=True, default="")
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
        db_table = "messaging_webhookdelivery"
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["tenant", "endpoint", "-created_at"]),
            models.Index(fields=["tenant", "subject"]),  # GET /v1/webhook-deliveries?message=msg_…
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

    @property
    def message_public_id(self) -> str | None:
        """The subject when it is a message (msg_…): the API's and the portal's `message`."""
        return self.subject if self.subject.startswith("msg_") else None


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery. Nothing of the response body or headers is stored (no response oracle)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
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
        db_table = "messaging_webhookattempt"
        ordering = ["delivery", "cycle", "number"]
        constraints = [
            # The claim is a compare-and-swap on (cycle, attempts): two workers cannot both log attempt n.
            models.UniqueConstraint(fields=["delivery", "cycle", "number"], name="webhook_attempt_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.cycle}.{self.number} {self.status_code or self.error_class}"


class EventFanout(models.Model):
    """Many events of one type from one tenant, recorded as one row when they happen (an accepted batch of
    messages: `message.queued` for each): the outbox of a fan-out, not yet its deliveries.

    `items` are the emitting app's references (message ids); the app's registered expander turns
    them into events (smsportal/events/registry.py), and `event_fanout_expand` (smsportal/events/fanout.py,
    run by the worker) records their deliveries and sets `expanded_at`, once. Written in the accept
    transaction, so it commits or rolls back with the messages; a row whose task was lost is expanded
    by the beat job (`event_fanouts_expand_due`).
    """

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    event_type = models.CharField(max_length=40)
    items = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expanded_at = models.DateTimeField(null=True, blank=True)
    deliveries = models.PositiveIntegerField(default=0)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        db_table = "events_eventfanout"
        ordering = ["created_at", "id"]
        indexes = [
            # The beat job's scan: fan-outs not expanded yet (a small partial index: expanded rows leave it).
            models.Index(fields=["created_at"], condition=models.Q(expanded_at__isnull=True),
                         name="event_fanout_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} x{len(self.items)} of {self.tenant_id}"
