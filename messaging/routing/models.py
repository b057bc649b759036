"""Carriers, their routes and rate decks, route quality and circuits (issue 10). Platform rows, not a
tenant's, but the per-tenant routing policy: account managers run them in admin (messaging/admin.py) or
load them from a file (`manage.py carriers_load`, `manage.py routes_import`).

Imported by messaging/models.py, so Django registers them with the messaging app.
"""
from __future__ import annotations

from decimal import Decimal

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from smsportal.tenancy import TenantScopedManager

MESSAGE_TYPES = ("otp", "transactional", "marketing")
SENDER_TYPES = ("alphanumeric", "long_number", "short_code")
_DIGITS = RegexValidator(r"^[0-9]{1,15}$", "An E.164 prefix: country code and more digits, no +.")


class Carrier(models.Model):
    class Kind(models.TextChoices):
        SMPP = "smpp", "SMPP"
        HTTP = "http", "HTTP"
        SIMULATOR = "simulator", "Simulator"

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True, help_text="Off: no route of this carrier is used.")
    # The carrier file's non-secret fields (host, port, window, preset, base_url, ...), as loaded.
    settings = models.JSONField(default=dict, blank=True)
    # The secret fields (password, auth_token, api_key, token, secrets) as one Fernet token of their JSON
    # (routing/credentials.py): never shown back, in admin, logs or a dry run.
    credentials_encrypted = models.TextField(blank=True, editable=False)
    # What its connector last reported (SMPP binds; HTTP connectors are up while enabled).
    session_state = models.CharField(max_length=16, blank=True, editable=False)
    session_state_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Route(models.Model):
    """A carrier for a destination: the longest matching prefix wins, then policy (messaging/routing/lcr.py)."""

    carrier = models.ForeignKey(Carrier, on_delete=models.CASCADE, related_name="routes")
    prefix = models.CharField(max_length=15, validators=[_DIGITS])
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2; blank: any")
    operator = models.CharField(max_length=7, blank=True, help_text="MCC/MNC, e.g. 234/15; blank: any")
    # The cost now in force (from the latest RouteCost effective by now): what routing compares.
    cost = models.DecimalField(max_digits=12, decimal_places=6)
    currency = models.CharField(max_length=3)
    # When that cost took effect; empty while the route's only costs are dated in the future: not routed yet.
    cost_from = models.DateTimeField(null=True, blank=True, editable=False)
    priority = models.PositiveSmallIntegerField(default=1, help_text="Lower first, among equals.")
    message_types = models.JSONField(default=list, blank=True, help_text="Empty: every type.")
    sender_types = models.JSONField(default=list, blank=True, help_text="Empty: every sender type.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["prefix", "priority", "carrier__name"]
        constraints = [models.UniqueConstraint(fields=["carrier", "prefix", "operator"], name="route_per_destination")]

    def __str__(self) -> str:
        operator = f" {self.operator}" if self.operator else ""
        return f"{self.carrier.name} +{self.prefix}{operator}"

    def carries(self, *, message_type: str, sender_type: str) -> bool:
        return ((not self.message_types or message_type in self.message_types)
                and (not self.sender_types or sender_type in self.sender_types))


class RouteCost(models.Model):
    """A route's cost from a date on: its history, and a rate deck dated in the future that takes over at its
    time (routing/decks.py: the beat job `route_costs_apply` writes the one in force into Route.cost)."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="costs")
    cost = models.DecimalField(max_digits=12, decimal_places=6)
    currency = models.CharField(max_length=3)
    effective_from = models.DateTimeField()
    source = models.CharField(max_length=200, blank=True, help_text="The deck or file it came from.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["route", "-effective_from"]
        constraints = [models.UniqueConstraint(fields=["route", "effective_from"], name="route_cost_per_date")]

    def __str__(self) -> str:
        return f"{self.cost} {self.currency} from {self.effective_from:%Y-%m-%d %H:%M}"


class RouteCircuit(models.Model):
    """A route's circuit breaker: closed (in use), open (skipped until the cool-down ends), half-open (trial)."""

    class State(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open"

    route = models.OneToOneField(Route, on_delete=models.CASCADE, related_name="circuit")
    state = models.CharField(max_length=16, choices=State.choices, default=State.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.route_id}: {self.state}"


class RouteCircuitTransition(models.Model):
    """Every change of a circuit, for admin and alerts (also in the audit log)."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="circuit_transitions")
    from_state = models.CharField(max_length=16)
    to_state = models.CharField(max_length=16)
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.from_state} -> {self.to_state}: {self.reason}"


class RouteQuality(models.Model):
    """A route's live figures over a window, rolled up by beat from the attempts (routing/quality.py)."""

    class Window(models.TextChoices):
        QUARTER_HOUR = "15m", "15 minutes"
        DAY = "24h", "24 hours"

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="quality")
    window = models.CharField(max_length=4, choices=Window.choices)
    submits = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)  # undelivered or failed after the carrier took it
    errors = models.PositiveIntegerField(default=0)  # submits the carrier refused or that timed out
    latency_p50_ms = models.PositiveIntegerField(null=True, blank=True)  # submit to delivery receipt
    latency_p95_ms = models.PositiveIntegerField(null=True, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["route", "window"], name="route_quality_per_window")]

    def __str__(self) -> str:
        return f"{self.route_id} {self.window}: {self.delivered}/{self.delivered + self.failed}"

    @property
    def delivery_rate(self) -> Decimal | None:
        finished = self.delivered + self.failed
        return None if not finished else Decimal(self.delivered) / Decimal(finished)

    @property
    def error_rate(self) -> Decimal | None:
        """The share of the window's submits the carrier refused or that failed at the route (timeouts, binds)."""
        return None if not self.submits else Decimal(self.errors) / Decimal(self.submits)


class Policy(models.TextChoices):
    CHEAPEST = "cheapest", "Cheapest"
    QUALITY = "quality", "Quality (delivery rate, then latency)"
    BALANCED = "balanced", "Balanced (cheapest of the routes that deliver)"


class TenantRouting(models.Model):
    """A tenant's routing policy, set by an account manager in admin; without one, the platform default
    (balanced; OTP: quality)."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    policy = models.CharField(max_length=16, choices=Policy.choices)
    otp_policy = models.CharField(max_length=16, choices=Policy.choices, blank=True,
                                  help_text="Blank: quality for OTP messages.")

    objects = TenantScopedManager()
    unscoped = models.Manager()

    def __str__(self) -> str:
        return self.policy


class MessageAttempt(models.Model):
    """One try of a message over one route: what routing chose and why, and how it ended. The message's
    `routing` in the API is made from these (no carrier name or cost shown to customers)."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"  # an SMPP route's: waiting for a connector process to claim it
        SUBMITTING = "submitting", "Submitting"  # claimed by the connector process `claimed_by`
        SUBMITTED = "submitted", "Submitted"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"  # the carrier took it and it failed (undelivered, failed receipt)
        ROUTE_ERROR = "route_error", "Route error"  # refused, timed out or bind down: the next route is tried
        RETRY = "retry", "Retry"  # a transient refusal (throttled): the same route again after a back-off
        REJECTED = "rejected", "Rejected"  # a destination-level refusal: final
        UNKNOWN = "unknown", "Outcome unknown"  # the connector died between sending and the carrier's answer

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    # No index of their own: `attempt_number_per_message` leads with the message, `attempt_route_time` with the
    # route, and every attempt row version (three per message sent) would pay for two more index entries.
    message = models.ForeignKey("messaging.Message", on_delete=models.CASCADE, related_name="attempts_made",
                                db_index=False)
    number = models.PositiveSmallIntegerField()  # 1, 2, ... per message
    route = models.ForeignKey(Route, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False)
    carrier = models.CharField(max_length=64)
    quality_class = models.CharField(max_length=16, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True)
    currency = models.CharField(max_length=3, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    error_code = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)  # the connector process (ConnectorLease.name)
    claimed_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "number"], name="attempt_number_per_message")]
        indexes = [
            models.Index(fields=["route", "started_at"], name="attempt_route_time"),
            # a connector's claim (messaging/connector/claims.py) and the pickup sweep: only the waiting rows
            models.Index(fields=["carrier", "id"], name="attempt_awaiting_connector",
                         condition=models.Q(outcome="pending")),
            models.Index(fields=["claimed_by", "id"], name="attempt_claimed",
                         condition=models.Q(outcome="submitting")),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number}: {self.outcome}"


class ConnectorLease(models.Model):
    """A connector process (`manage.py connector`): its heartbeat holds its claims. One that stops beating
    for CONNECTOR_LEASE_SECONDS has died on a host that did not restart it; the sweeper settles its claims."""

    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name
