"""Phone-number inventory, its event history, assignments, leases and their usage for billing."""
from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from smsportal.ids import PublicId
from smsportal.tenancy import TenantScopedManager


class NumberType(models.TextChoices):
    LOCAL = "local", "Local"
    MOBILE = "mobile", "Mobile"
    TOLL_FREE = "toll_free", "Toll-free"
    SHORT_CODE = "short_code", "Short code"
    VIRTUAL = "virtual", "Virtual"


class Capability(models.TextChoices):
    SMS = "sms", "SMS"
    MMS = "mms", "MMS"
    VOICE = "voice", "Voice"


class NumberStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    ASSIGNED = "assigned", "Assigned"
    LEASED = "leased", "Leased"
    QUARANTINED = "quarantined", "Quarantined"
    RETIRED = "retired", "Retired"


HELD = [NumberStatus.ASSIGNED, NumberStatus.LEASED]


class PhoneNumber(models.Model):
    """A number of the platform's inventory.

    Not tenant-scoped on purpose: the inventory belongs to the platform, and the allocator must
    see every available number. What a tenant holds is read through its NumberAssignment and
    NumberLease rows (tenant-scoped) or filtered by `holder` explicitly.
    """

    public_id = models.CharField(max_length=32, unique=True, default=PublicId("num"), editable=False)
    # E.164 (+14155550100); a short code has no E.164 form and is stored as its digits (72345).
    number = models.CharField(max_length=20, unique=True)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. GB.")
    type = models.CharField(max_length=16, choices=NumberType.choices)
    capabilities = models.JSONField(default=list, help_text='e.g. ["sms", "voice"]')
    carrier = models.CharField(max_length=50, default="simulator")
    monthly_cost = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    monthly_price = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal("0"))
    status = models.CharField(max_length=16, choices=NumberStatus.choices, default=NumberStatus.AVAILABLE)
    holder = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    quarantined_until = models.DateTimeField(null=True, blank=True)
    # A number the platform keeps for itself and lets tenants send from (Tenant.shared_senders_allowed):
    # never assigned or leased, so the allocator skips it (numbers/services.py) and a constraint holds it.
    shared_sender = models.BooleanField(
        default=False,
        help_text="A platform shared sender: never rented or leased; every tenant allowed to use shared senders "
                  "may send from it while it is available.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number"]
        indexes = [
            # The allocator: available numbers of a country and type.
            models.Index(fields=["status", "country", "type"], name="number_alloc_idx"),
            # The sweep: quarantined numbers whose cool-down is over.
            models.Index(fields=["quarantined_until"], condition=Q(status="quarantined"),
                         name="number_quarantine_idx"),
        ]
        constraints = [
            # A held number has a holder; any other has none.
            models.CheckConstraint(
                condition=Q(status__in=HELD, holder__isnull=False) | (~Q(status__in=HELD) & Q(holder__isnull=True)),
                name="number_holder_matches_status",
            ),
            models.CheckConstraint(
                condition=~Q(status=NumberStatus.QUARANTINED) | Q(quarantined_until__isnull=False),
                name="number_quarantine_has_end",
            ),
            models.CheckConstraint(condition=Q(monthly_cost__gte=0) & Q(monthly_price__gte=0),
                                   name="number_money_not_negative"),
            # A shared sender belongs to the platform: no tenant holds it.
            models.CheckConstraint(condition=Q(shared_sender=False) | ~Q(status__in=HELD),
                                   name="number_shared_sender_not_held"),
        ]

    def __str__(self) -> str:
        return self.number


class NumberEvent(models.Model):
    """One change of a number's status or holder; append-only (written only by numbers.services)."""

    class Kind(models.TextChoices):
        IMPORTED = "imported", "Imported"
        ASSIGNED = "assigned", "Assigned"
        LEASED = "leased", "Leased"
        EXTENDED = "extended", "Extended"
        RELEASED = "released", "Released"
        QUARANTINED = "quarantined", "Quarantined"
        RETURNED = "returned", "Returned to the pool"
        RETIRED = "retired", "Retired"

    number = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="events")
    # The tenant the change concerns (the holder); empty for inventory-only changes.
    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    actor = models.CharField(max_length=200, default="system")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["number", "created_at"]), models.Index(fields=["tenant", "created_at"])]

    def __str__(self) -> str:
        return f"{self.number_id} {self.kind}"


class NumberAssignment(models.Model):
    """A number rented by a tenant until released."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("asg"), editable=False)
    number = models.ForeignKey(PhoneNumber, on_delete=models.PROTECT, related_name="assignments")
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    # Usage is recorded up to here (numbers_usage_record_open, daily); empty until the first run.
    usage_recorded_until = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["tenant", "ended_at"])]
        constraints = [
            # At most one active holding per number, enforced by the database.
            models.UniqueConstraint(fields=["number"], condition=Q(ended_at=None), name="one_active_assignment"),
        ]

    def __str__(self) -> str:
        return self.public_id


class NumberLease(models.Model):
    """A number held temporarily (TTL 1 minute to 30 days); released early, or by the sweep when it ends."""

    class ReleaseReason(models.TextChoices):
        RELEASED = "released", "Released by the tenant"
        EXPIRED = "expired", "Expired"
        FORCE_RELEASED = "force_released", "Released by an account manager"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("lse"), editable=False)
    number = models.ForeignKey(PhoneNumber, on_delete=models.PROTECT, related_name="leases")
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    release_reason = models.CharField(max_length=16, choices=ReleaseReason.choices, blank=True)
    callback_url = models.URLField(max_length=2000, blank=True)
    # `number.lease_expiring` goes out this long before `expires_at` (once per end: an extension re-arms it).
    expiring_notice_seconds = models.PositiveIntegerField(default=60)
    expiring_notified_at = models.DateTimeField(null=True, blank=True)
    # Usage is recorded up to here (numbers_usage_record_open, daily); empty until the first run.
    usage_recorded_until = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["tenant", "released_at"]),
            # The sweep reads active leases by expiry.
            models.Index(fields=["expires_at"], condition=Q(released_at=None), name="lease_active_expiry_idx"),
        ]
        constraints = [
            # At most one active holding per number, enforced by the database.
            models.UniqueConstraint(fields=["number"], condition=Q(released_at=None), name="one_active_lease"),
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("started_at")), name="lease_ends_after_start"),
        ]

    def __str__(self) -> str:
        return self.public_id

    @property
    def status(self) -> str:
        """active, expired (its end has passed, swept or not yet) or released (ended early)."""
        if self.released_at is None:
            return "active" if self.expires_at > timezone.now() else "expired"
        return "expired" if self.release_reason == self.ReleaseReason.EXPIRED else "released"


class NumberPool(models.Model):
    """A named set of the tenant's numbers to send from (`"from": "pool:NAME"`).

    Selection (numbers/pools.py): the sticky number of the recipient when `sticky_sender` and it is
    still in the pool; else, with `geo_match`, the pool numbers of the recipient's country when there
    are any; then round robin over those candidates (`rr_cursor`)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("pool"), editable=False)
    name = models.CharField(max_length=50)
    description = models.CharField(max_length=300, blank=True)
    sticky_sender = models.BooleanField(default=True)
    geo_match = models.BooleanField(default=True)
    rr_cursor = models.PositiveBigIntegerField(default=0, editable=False)
    numbers = models.ManyToManyField(PhoneNumber, through="NumberPoolMember", related_name="pools")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="pool_name_unique_per_tenant")]

    def __str__(self) -> str:
        return self.name


class NumberPoolMember(models.Model):
    """A number of a pool; removed when the tenant stops holding the number.

    `tenant` is the pool's tenant (numbers/pools.py sets it from the pool), held on the row itself so
    the scoped manager and the cross-tenant checks need no join."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    pool = models.ForeignKey(NumberPool, on_delete=models.CASCADE, related_name="members")
    number = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="pool_memberships")
    added_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["pool", "number"]
        constraints = [models.UniqueConstraint(fields=["tenant", "pool", "number"], name="pool_member_once")]

    def __str__(self) -> str:
        return f"{self.pool_id} {self.number_id}"


class PoolStickySender(models.Model):
    """The pool number a recipient last got, so it keeps getting the same one (sticky sender)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    pool = models.ForeignKey(NumberPool, on_delete=models.CASCADE, related_name="sticky_senders")
    recipient = models.CharField(max_length=20, help_text="E.164")
    number = models.ForeignKey(PhoneNumber, on_delete=models.CASCADE, related_name="+")
    last_used_at = models.DateTimeField()

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pool", "recipient"], name="pool_sticky_once_per_recipient")]

    def __str__(self) -> str:
        return f"{self.pool_id} {self.recipient} -> {self.number_id}"


class NumberUsage(models.Model):
    """Usage for billing: per tenant, number, kind of holding and UTC day.

    `seconds` is the time held that day and `holdings` counts the holdings that started that day
    (the lease count). Number-days are `seconds / 86400`. Written by the daily job for the holdings
    still open, up to the last UTC midnight (`usage_recorded_until` on the holding), and when a
    holding ends (release, expiry, force-release) from there to its end; so every day before the
    last midnight is complete and a period can be billed while numbers are still held. Each second
    is counted once, and each holding once, on the day it started.
    """

    class Kind(models.TextChoices):
        ASSIGNMENT = "assignment", "Assignment"
        LEASE = "lease", "Lease"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    number = models.ForeignKey(PhoneNumber, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    day = models.DateField()
    seconds = models.PositiveIntegerField(default=0)
    holdings = models.PositiveIntegerField(default=0)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number", "kind", "day"], name="one_usage_row_per_day"),
        ]

    @property
    def number_days(self) -> Decimal:
        return (Decimal(self.seconds) / Decimal(86400)).quantize(Decimal("0.0001"))

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.number_id} {self.kind} {self.day}"


class InboundMessage(models.Model):
    """One inbound SMS, stored once per (carrier, carrier message id), and once per dedupe key within the
    carrier's redelivery time (an SMPP MO).

    `tenant` is the holder of the number when the message arrived (assignment or lease active at
    `received_at`); null when no tenant held it: kept for account managers, never dropped."""

    class Keyword(models.TextChoices):
        NONE = "", "None"
        STOP = "stop", "Opt-out"
        START = "start", "Opt-in"
        HELP = "help", "Help"

    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("inb"), editable=False)
    number = models.ForeignKey(PhoneNumber, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    lease = models.ForeignKey(NumberLease, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    to = models.CharField(max_length=20)
    sender = models.CharField(max_length=20)
    text = models.TextField(blank=True)
    carrier = models.CharField(max_length=50)
    carrier_message_id = models.CharField(max_length=100)
    # A carrier that gives no id of its own (an SMPP MO without the SMSC's id) knows a redelivery by a key made
    # from the MO (numbers/inbound.py): `dedupe_latest` marks the newest row under its key, the one a
    # redelivery is compared with; the partial unique constraint lets only one row be it.
    dedupe_key = models.CharField(max_length=100, blank=True)
    dedupe_latest = models.BooleanField(default=False)
    received_at = models.DateTimeField()
    code = models.CharField(max_length=16, blank=True)
    service = models.CharField(max_length=100, blank=True)
    keyword = models.CharField(max_length=8, choices=Keyword.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "received_at"]),
            models.Index(fields=["lease", "received_at"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["carrier", "carrier_message_id"], name="inbound_once_per_carrier_id"),
            # Two sessions storing one MO at once: the second insert fails, and it returns the first's row.
            models.UniqueConstraint(fields=["carrier", "dedupe_key"], condition=models.Q(dedupe_latest=True),
                                    name="inbound_dedupe_latest"),
            models.CheckConstraint(condition=models.Q(dedupe_latest=False) | ~models.Q(dedupe_key=""),
                                   name="inbound_dedupe_latest_has_key"),
        ]

    def __str__(self) -> str:
        return self.public_id
