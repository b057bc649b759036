"""Messages, their event history, message templates and the carrier simulator's submission log."""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.services import ApiKeyMode
from smsportal.ids import PublicId
from smsportal.tenancy import TenantScopedManager


class MessageType(models.TextChoices):
    OTP = "otp", "OTP"
    TRANSACTIONAL = "transactional", "Transactional"
    MARKETING = "marketing", "Marketing"


class Status(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    REJECTED = "rejected", "Rejected"
    CANCELED = "canceled", "Canceled"


class Message(models.Model):
    """One SMS. The row holds the current status; every change is a MessageEvent (messaging/lifecycle.py)."""

    # No index of its own: the four indexes below that lead with `tenant` serve every tenant filter,
    # and each index costs every accept (a batch of 1,000 writes 1,000 entries in each).
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="messages", db_index=False)
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("msg"), editable=False)
    # No index: no query reads messages by key. Deleting a key (admin only; the API and portal revoke)
    # sets it null with a scan of the table; an index would cost every accept an entry.
    api_key = models.ForeignKey("accounts.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                db_index=False)
    mode = models.CharField(max_length=8, choices=ApiKeyMode.choices, default=ApiKeyMode.TEST)
    to = models.CharField(max_length=20, help_text="E.164")
    sender = models.CharField(max_length=20)
    # Set when `from` was `pool:NAME`: `sender` is then the pool number picked for this message.
    pool = models.ForeignKey("numbers.NumberPool", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             db_index=False)  # indexed below, only where set
    text = models.TextField()
    # A stored template's name, or the inline body itself (up to the 10,000 characters the API takes).
    template_ref = models.TextField(blank=True)
    message_type = models.CharField(max_length=16, choices=MessageType.choices, default=MessageType.TRANSACTIONAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # Grows by one with every status change: receivers order webhooks by it.
    sequence = models.PositiveIntegerField(default=0)
    encoding = models.CharField(max_length=8)
    segments = models.PositiveSmallIntegerField()
    characters = models.PositiveIntegerField()
    smart_encoding = models.BooleanField(default=True)
    client_reference = models.CharField(max_length=128, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # Why a message waits when the caller did not ask it to: "quiet_hours" (compliance's check deferred a
    # marketing message to the recipient's next allowed window); empty otherwise.
    scheduled_reason = models.CharField(max_length=16, blank=True, default="", db_default="")
    # Where the destination takes no alphanumeric sender (US, CA, ...), the number sent from instead:
    # {"requested": "YourBrand", "used": "+1..."} (compliance's sender policy); null when `sender` is as asked.
    sender_substituted = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField()
    # Rated at accept (billing: segments times the unit price); null without billing. `billed`: a live send
    # whose price is held on the balance, captured when it leaves us and released when it cannot
    # (docs/billing.md); a test key's price is only shown.
    price = models.DecimalField(max_digits=18, decimal_places=6, null=True, blank=True)
    # Database defaults too: raw inserts that predate billing (bench fills, tests) stay valid.
    currency = models.CharField(max_length=3, blank=True, default="", db_default="")
    billed = models.BooleanField(default=False, db_default=False)
    # Pipeline bookkeeping.
    attempts = models.PositiveSmallIntegerField(default=0)
    # queued: when the next dispatch attempt is due (a retry); sent: when the sweeper next asks for the receipt.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a dispatch task for the message was last handed to the broker; null while none is known to be
    # there (not yet published, the broker was down, or a retry waits in `next_attempt_at`): the sweeper
    # then hands the message over itself (messaging/pipeline.py messages_sweep).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    carrier = models.CharField(max_length=32, blank=True)
    carrier_message_id = models.CharField(max_length=100, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # Every index costs every accept an entry per message (a batch of 1,000: 1,000 in each), so only
        # what a query needs, and partial where accept's rows have nothing to find (docs/performance.md).
        # An accepted row enters the primary key, public_id's unique index and the first five below.
        indexes = [
            # GET /v1/messages and the portal's log (newest first), message_stats_today, created_* filters.
            models.Index(fields=["tenant", "-created_at"]),
            # ?status= on GET /v1/messages and the portal's status filter, newest first.
            models.Index(fields=["tenant", "status", "-created_at"]),
            # ?to= on GET /v1/messages (a recipient's history), newest first.
            models.Index(fields=["tenant", "to", "-created_at"]),
            # The sweeper's scans (messaging/pipeline.py): due scheduled, expired queued, stuck sending,
            # overdue and timed-out sent, lost queued tasks: each leads with a status.
            models.Index(fields=["status", "status_changed_at"]),
            # The sweeper's hand-over scan: queued messages no dispatch task is known to be in the broker for
            # (a batch is stored with enqueued_at set, so it never enters this one); the dispatcher's claim
            # (messaging/dispatcher.py) reads it too.
            models.Index(fields=["status_changed_at"], condition=models.Q(status="queued", enqueued_at__isnull=True),
                         name="message_awaiting_handover"),
            # ?client_reference= on GET /v1/messages and the portal search; only messages that have one.
            models.Index(fields=["tenant", "client_reference"], condition=~models.Q(client_reference=""),
                         name="message_client_reference"),
            # Receipt matching by the carrier's id (pipeline.receipt_apply); rows get one at dispatch, not accept.
            models.Index(fields=["carrier", "carrier_message_id"], condition=~models.Q(carrier_message_id=""),
                         name="message_carrier_id"),
            # The pool's SET_NULL when a pool is deleted; only messages sent from a pool.
            models.Index(fields=["pool"], condition=models.Q(pool__isnull=False), name="message_pool"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=Status.values), name="message_status_valid"),
            models.CheckConstraint(condition=models.Q(message_type__in=MessageType.values),
                                   name="message_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} to {self.to} ({self.status})"


class MessageEvent(models.Model):
    class Source(models.TextChoices):
        API = "api", "API"
        WORKER = "worker", "Worker"
        CARRIER = "carrier", "Carrier"
        SWEEPER = "sweeper", "Sweeper"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    # No index of its own: the unique (message, sequence) constraint's index leads with it.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events", db_index=False)
    sequence = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    detail = models.CharField(max_length=500, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    carrier_error_code = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["message", "sequence"]
        constraints = [
            # One event per step: a status change that raced another cannot write a second event.
            models.UniqueConstraint(fields=["message", "sequence"], name="message_event_unique_sequence"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id}#{self.sequence} {self.status}"


class MessagePart(models.Model):
    """One part of a long message as a carrier took it, with the carrier's own id for that part (SMPP: one
    submit_sm and one receipt per part). Only a message taken in two or more parts with distinct ids has
    rows; a message in one piece is matched by its own `carrier_message_id`. The message is delivered when
    every part is, and undelivered or failed as soon as one is (messaging/parts.py, docs/carriers.md)."""

    FINAL = (Status.DELIVERED, Status.UNDELIVERED, Status.FAILED)

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    # No index of its own: the unique (message, number) constraint's index leads with it.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="parts", db_index=False)
    number = models.PositiveSmallIntegerField()  # 1, 2, ... in the order the parts went out
    carrier = models.CharField(max_length=64)
    carrier_message_id = models.CharField(max_length=100)
    # Blank until the part's first final receipt (one of FINAL); a later one for the same part changes nothing.
    status = models.CharField(max_length=16, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "number"], name="message_part_number"),
            models.CheckConstraint(condition=models.Q(status__in=["", Status.DELIVERED, Status.UNDELIVERED,
                                                                  Status.FAILED]), name="message_part_status_valid"),
        ]
        indexes = [
            # Receipt matching by the part's carrier id (parts.receipts_match). Not unique: carriers recycle
            # their ids, and a unique index would make a whole batch's write fail on one reused id.
            models.Index(fields=["carrier", "carrier_message_id"], name="message_part_carrier_id"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} part {self.number}: {self.carrier_message_id}"


class InboundPartial(models.Model):
    """One part of a long SMPP MO, stored before its deliver_sm is answered, until every part is in
    (messaging/connector/mo.py). Not tenant-owned: whose the MO is, is known only once it is whole (the
    inbound service finds the holder of `to`). A part delivered again is stored once (the unique key);
    the whole is stored and its parts deleted in one transaction; parts of an MO that never completes
    are swept after the carrier's `mo_reassembly_seconds` (connector_claims_sweep_task)."""

    carrier = models.CharField(max_length=50)
    # The concatenation key: the handset's reference is per sender and destination, and the part count
    # tells two messages under one recycled reference apart.
    sender = models.CharField(max_length=21)  # SMPP source_addr: up to 20 characters and the NUL
    to = models.CharField(max_length=21)
    reference = models.PositiveIntegerField()  # 8- or 16-bit UDH reference, or sar_msg_ref_num
    total = models.PositiveSmallIntegerField()
    number = models.PositiveSmallIntegerField()
    payload = models.BinaryField()  # the octets after the UDH: parts are joined before decoding
    data_coding = models.PositiveSmallIntegerField()
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["carrier", "sender", "to", "reference", "total", "number"],
                                    name="inbound_partial_once"),
            models.CheckConstraint(condition=models.Q(number__gte=1, number__lte=models.F("total")),
                                   name="inbound_partial_number_valid"),
        ]
        indexes = [models.Index(fields=["received_at"], name="inbound_partial_received")]  # the sweep

    def __str__(self) -> str:
        return f"{self.carrier} {self.reference} part {self.number}/{self.total}"


class MessageTemplate(models.Model):
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="message_templates")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("tpl"), editable=False)
    name = models.CharField(max_length=100)
    body = models.TextField()
    message_type = models.CharField(max_length=16, choices=MessageType.choices, default=MessageType.TRANSACTIONAL)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="template_unique_name_per_tenant")]

    def __str__(self) -> str:
        return self.name


class SimulatorSubmission(models.Model):
    """The carrier simulator's own log: one row per message it accepted (the "carrier sink").

    Like an HTTP carrier that takes an idempotency reference, a resubmission of
    the same reference returns the first carrier id and is only counted.
    """

    reference = models.CharField(max_length=32, unique=True)
    carrier_message_id = models.CharField(max_length=64, unique=True)
    to = models.CharField(max_length=20)
    submits = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.carrier_message_id} ({self.reference})"


# Carriers, routes, rate decks, quality and circuits: their own module, registered with this app.
from messaging.routing.models import (  # noqa: E402
    Carrier,
    MessageAttempt,
    Policy,
    Route,
    RouteCircuit,
    RouteCircuitTransition,
    RouteCost,
    RouteQuality,
    TenantRouting,
)

__all__ = ["Carrier", "Message", "MessageAttempt", "MessageEvent", "MessagePart", "MessageTemplate", "MessageType",
           "Policy", "Route", "RouteCircuit", "RouteCircuitTransition", "RouteCost", "RouteQuality",
           "SimulatorSubmission", "Status", "TenantRouting"]
