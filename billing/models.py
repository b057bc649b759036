"""Models of billing: price lists (rating at accept), and the prepaid balance with its append-only ledger.

A price is one row of a price list: the default list (no tenant) or a tenant's own list, which
overrides the default for the destinations it names (billing/rating.py). Money is Decimal with fixed
places: a price per segment keeps 6 places (0.0079 and finer), amounts of the ledger too; the amounts of
invoices and credit notes 2 (docs/billing.md "Invoices").
"""
from __future__ import annotations

from numbers.selectors import number_type_choices

from django.db import models
from django.db.models import Q
from django.utils import timezone

from smsportal.ids import PublicId
from smsportal.tenancy import TenantScopedManager

MONEY = {"max_digits": 18, "decimal_places": 6}
INVOICE_MONEY = {"max_digits": 16, "decimal_places": 2}  # an invoice's amounts: rounded half-up to cents
TAX_RATE = {"max_digits": 5, "decimal_places": 4}  # 0.2000 = 20 %


class PriceMessageType(models.TextChoices):
    """A price applies to one message type, or to all ("" in the CSV: blank means any)."""

    ALL = "", "All types"
    OTP = "otp", "OTP"
    TRANSACTIONAL = "transactional", "Transactional"
    MARKETING = "marketing", "Marketing"


class Price(models.Model):
    """A per-segment price for a destination (an E.164 prefix, or a country), a message type and a volume tier.

    `tenant` empty: the default price list. `min_monthly_volume`: the row applies from that many segments
    in the month (a volume tier; 0 is the base price). `effective_from`: the day (UTC) it takes over; an
    older row of the same key stays as history. `operator` (MCC/MNC): rating at accept does not know a
    number's operator, so it matches only rows without one; the capture reprices a message of that operator
    (billing.services.capture_charges, docs/billing.md "Operator prices")."""

    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+", db_index=False, help_text="Empty: the default price list.")
    prefix = models.CharField(max_length=15, blank=True, help_text="E.164 digits without '+'; the longest match wins.")
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2, for a price by country.")
    operator = models.CharField(max_length=7, blank=True, help_text="MCC/MNC, e.g. 23415; blank: any.")
    message_type = models.CharField(max_length=16, choices=PriceMessageType.choices, blank=True, default="")
    price = models.DecimalField(**MONEY, help_text="Per segment.")
    currency = models.CharField(max_length=3)
    effective_from = models.DateField(default=timezone.now)
    min_monthly_volume = models.PositiveIntegerField(default=0, help_text="Volume tier: from this many segments a month.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "country"], name="price_tenant_country")]
        constraints = [
            models.CheckConstraint(condition=Q(price__gte=0), name="price_not_negative"),
            models.CheckConstraint(condition=~Q(prefix="") | ~Q(country=""), name="price_has_destination"),
            # One price per key: the import's upsert key (a NULL tenant would not collide in a plain unique).
            models.UniqueConstraint(fields=["tenant", "prefix", "country", "operator", "message_type",
                                            "min_monthly_volume", "effective_from"],
                                    condition=Q(tenant__isnull=False), name="price_key_tenant"),
            models.UniqueConstraint(fields=["prefix", "country", "operator", "message_type", "min_monthly_volume",
                                            "effective_from"],
                                    condition=Q(tenant__isnull=True), name="price_key_default"),
        ]

    def __str__(self) -> str:
        where = f"+{self.prefix}" if self.prefix else self.country
        return f"{where} {self.message_type or 'all'} {self.price} {self.currency}"


class Balance(models.Model):
    """A tenant's prepaid balance, in its one currency: the cached sum of its ledger (LedgerEntry).

    `balance` is the money the tenant has (top-ups and adjustments less captures and charges), `reserved` the
    holds of messages not yet settled; what a send may still hold is balance - reserved + credit_limit. Only
    billing/services.py changes it, with a conditional UPDATE and a ledger entry in the same transaction; the
    CHECK below makes the database refuse any change that would go past the credit limit."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.PROTECT, related_name="+")
    currency = models.CharField(max_length=3)
    balance = models.DecimalField(**MONEY, default=0)
    reserved = models.DecimalField(**MONEY, default=0)
    credit_limit = models.DecimalField(**MONEY, default=0, help_text="Postpaid credit: how far below 0 it may go.")
    daily_spend_cap = models.DecimalField(**MONEY, null=True, blank=True,
                                          help_text="Most live sends may hold in a day (UTC); empty: no cap.")
    # Today's spend for the cap, kept on this row so the hold's one conditional UPDATE checks and counts it
    # race-free: holds of `spent_day` less their releases that day (not money: the ledger is).
    spent_day = models.DateField(null=True, blank=True, editable=False)
    spent_today = models.DecimalField(**MONEY, default=0, editable=False)
    # Billing details, copied onto each invoice when it is issued (an issued invoice never changes).
    tax_rate = models.DecimalField(**TAX_RATE, default=0, help_text="Tax on invoices, e.g. 0.2000 for 20 %.")
    billing_name = models.CharField(max_length=200, blank=True, help_text="Bill-to name; empty: the tenant's name.")
    billing_address = models.TextField(blank=True)
    tax_id = models.CharField(max_length=50, blank=True, help_text="The tenant's VAT or tax number.")
    low_balance_threshold = models.DecimalField(
        **MONEY, null=True, blank=True,
        help_text="Email the owners and billing members, and send the signed event balance.low, when what live "
                  "sends may still hold (balance - reserved + credit limit) falls below this; empty: never.")
    # The current crossing: set by the debit that took available below the threshold (once: a conditional
    # UPDATE), cleared by a credit that brings it back to the threshold or above (it re-arms the alert).
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(reserved__gte=0), name="balance_reserved_not_negative"),
            models.CheckConstraint(condition=Q(credit_limit__gte=0), name="balance_credit_limit_not_negative"),
            models.CheckConstraint(condition=Q(balance__gte=models.F("reserved") - models.F("credit_limit")),
                                   name="balance_within_credit_limit"),
            # A negative cap or count would make every check of the daily cap meaningless (empty = no cap).
            models.CheckConstraint(condition=Q(daily_spend_cap__isnull=True) | Q(daily_spend_cap__gte=0),
                                   name="balance_daily_spend_cap_not_negative"),
            models.CheckConstraint(condition=Q(spent_today__gte=0), name="balance_spent_today_not_negative"),
            models.CheckConstraint(condition=Q(tax_rate__gte=0, tax_rate__lt=1), name="balance_tax_rate_range"),
        ]

    def __str__(self) -> str:
        return f"{self.balance} {self.currency} ({self.reserved} held)"

    @property
    def available(self):
        return self.balance - self.reserved


class LedgerKind(models.TextChoices):
    TOPUP = "topup", "Top-up"
    HOLD = "hold", "Hold (accept)"
    CAPTURE = "capture", "Capture (sent)"
    RELEASE = "release", "Release (not sent)"
    ADJUSTMENT = "adjustment", "Adjustment"
    RENTAL = "rental", "Number rental"
    LEASE = "lease", "Number lease"


SETTLEMENTS = (LedgerKind.CAPTURE, LedgerKind.RELEASE)


class LedgerEntry(models.Model):
    """One change of a balance, append-only (a PostgreSQL trigger refuses UPDATE and DELETE: migration 0002).

    Each entry moves `balance` and `reserved` by its deltas, so the Balance row equals the sums of its
    tenant's entries (billing.selectors.balances_unbalanced finds any that does not). A hold covers a whole
    accept (`messages` of them); its messages are settled one by one, each once: a capture when it goes
    to a carrier, or a release when it cannot (the unique index on `message_id`)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    kind = models.CharField(max_length=16, choices=LedgerKind.choices)
    balance_delta = models.DecimalField(**MONEY, default=0)
    reserved_delta = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3)
    # messaging.Message's primary key (no foreign key: billing sits below messaging).
    message_id = models.BigIntegerField(null=True, blank=True)
    messages = models.PositiveIntegerField(default=0, help_text="How many messages a hold covers.")
    reason = models.TextField(blank=True, help_text="Why (top-ups and adjustments).")
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["tenant", "created_at"], name="ledger_tenant_time")]
        constraints = [
            models.UniqueConstraint(fields=["message_id"], condition=Q(kind__in=SETTLEMENTS),
                                    name="ledger_settled_once"),
            models.CheckConstraint(condition=~Q(kind="adjustment") | ~Q(reason=""), name="ledger_adjustment_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.balance_delta}/{self.reserved_delta} {self.currency}"


class ApiKeySpend(models.Model):
    """What one API key's live sends held in one day (UTC), for its daily spend cap (accounts.ApiKey
    daily_spend_cap). Written only for a key with a cap: one upsert whose conditional DO UPDATE locks the row, so
    concurrent sends of the key cannot pass the cap together."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    api_key = models.ForeignKey("accounts.ApiKey", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    amount = models.DecimalField(**MONEY, default=0)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "day"], name="api_key_spend_day"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="api_key_spend_amount_not_negative"),
        ]
        indexes = [models.Index(fields=["tenant", "day"], name="api_key_spend_tenant_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.amount}"


class NumberPrice(models.Model):
    """The price of holding a number of a type (numbers' PhoneNumber types) in a country: `monthly_rental` for
    a rented number (charged per day held: billing/charges.py), `lease_per_hour` for a leased one.

    `tenant` empty: the default list; a tenant's own row overrides it for its type and country. The latest
    `effective_from` on or before the day charged wins; only rows in the tenant's currency count."""

    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.CASCADE,
                               related_name="+", db_index=False, help_text="Empty: the default list.")
    number_type = models.CharField(max_length=16, choices=number_type_choices)
    country = models.CharField(max_length=2, help_text="ISO 3166 alpha-2.")
    monthly_rental = models.DecimalField(**MONEY, help_text="A rented number, per month (charged per day held).")
    lease_per_hour = models.DecimalField(**MONEY, help_text="A leased number, per hour (charged to the second).")
    currency = models.CharField(max_length=3)
    effective_from = models.DateField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(monthly_rental__gte=0) & Q(lease_per_hour__gte=0),
                                   name="number_price_not_negative"),
            models.UniqueConstraint(fields=["tenant", "number_type", "country", "currency", "effective_from"],
                                    condition=Q(tenant__isnull=False), name="number_price_key_tenant"),
            models.UniqueConstraint(fields=["number_type", "country", "currency", "effective_from"],
                                    condition=Q(tenant__isnull=True), name="number_price_key_default"),
        ]

    def __str__(self) -> str:
        return (f"{self.country} {self.number_type}: {self.monthly_rental}/month, {self.lease_per_hour}/hour "
                f"{self.currency}")


class NumberChargeStatus(models.TextChoices):
    CHARGED = "charged", "Charged"
    OWED = "owed", "Owed (the balance and credit limit did not cover it)"


class NumberCharge(models.Model):
    """The charge for one day (UTC) of one number held by a tenant: its rental or its leases that day, from
    numbers' usage row of the same key. The unique key is what charges a day once, whatever runs twice.

    `owed`: the balance, less what is held, plus the credit limit could not cover it when charged; no ledger
    entry yet, each later run tries again (billing/charges.py). `charged`: `ledger_entry` debited it (none for
    a zero amount)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    number = models.ForeignKey("numbers.PhoneNumber", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=[(LedgerKind.RENTAL.value, LedgerKind.RENTAL.label),
                                                    (LedgerKind.LEASE.value, LedgerKind.LEASE.label)])
    day = models.DateField()
    seconds = models.PositiveIntegerField(help_text="The usage charged: seconds held that day.")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    price = models.ForeignKey(NumberPrice, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=8, choices=NumberChargeStatus.choices, default=NumberChargeStatus.OWED)
    ledger_entry = models.OneToOneField(LedgerEntry, null=True, blank=True, on_delete=models.PROTECT,
                                        related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    charged_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "number", "kind", "day"], name="number_charge_once_per_day"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="number_charge_not_negative"),
        ]
        indexes = [models.Index(fields=["tenant", "day"], name="number_charge_tenant_day"),
                   models.Index(fields=["created_at"], condition=Q(status="owed"), name="number_charge_owed")]

    def __str__(self) -> str:
        return f"{self.day} {self.kind} {self.number_id} {self.amount} {self.currency} ({self.status})"


class MonthlyVolume(models.Model):
    """The segments a tenant's messages to one destination country took to carriers in one month (UTC): the
    volume that volume tiers (Price.min_monthly_volume) are chosen by. Counted when each message's hold is
    captured, in the capture's statement (billing/services.py holds_settle), so each message counts once; read by
    rating from process memory with the price lists (billing/rating.py), never per message."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    month = models.DateField(help_text="The month's first day.")
    country = models.CharField(max_length=2, blank=True)
    segments = models.PositiveBigIntegerField(default=0)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "month", "country"], name="monthly_volume_key")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.country}: {self.segments}"


class DirectPrice(models.Model):
    """A reference list price per SMS of contracting a country's operators directly, for the savings calculator
    (billing/savings.py): platform data, not a tenant's (no tenant), loaded from billing/data/direct_prices.csv
    by seed_demo and `manage.py direct_prices_load`, and edited by account managers in admin. `message_type`
    blank: any type. The latest `as_of` of a country and type is the one compared."""

    country = models.CharField(max_length=2, help_text="ISO 3166 alpha-2.")
    message_type = models.CharField(max_length=16, choices=PriceMessageType.choices, blank=True, default="")
    price = models.DecimalField(**MONEY, help_text="Per SMS (one segment).")
    currency = models.CharField(max_length=3)
    source = models.TextField(help_text="Where the figure comes from: a publication, a URL, how it was derived.")
    as_of = models.DateField(help_text="The day the figure was taken.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["country", "message_type", "-as_of"]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="direct_price_positive"),
            models.UniqueConstraint(fields=["country", "message_type", "as_of"], name="direct_price_key"),
        ]

    def __str__(self) -> str:
        return f"{self.country} {self.message_type or 'all'} {self.price} {self.currency} ({self.as_of})"


class InvoiceStatus(models.TextChoices):
    """draft -> issued (numbered) -> paid or void; paid and void are final (billing/invoices.py)."""

    DRAFT = "draft", "Draft"
    ISSUED = "issued", "Issued"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


class InvoiceImmutable(Exception):
    """An issued invoice or a credit note was to be changed other than by its status (docs/billing.md)."""


class Invoice(models.Model):
    """A tenant's invoice for one month (`period`, its first day, UTC): one per tenant and period.

    A draft has no number and may change; issuing it takes the issuer's next number (InvoiceSequence,
    locked) and freezes it: from then only `status` (issued -> paid or void) and its time may change,
    which save() checks here and a trigger checks on PostgreSQL (migration 0009). The issuer's and the
    tenant's billing details are copied in at generation, so a later change of either changes no invoice."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("inv"), editable=False)
    issuer = models.CharField(max_length=200, help_text="The issuer's name; numbers run per issuer.")
    issuer_address = models.TextField(blank=True)
    issuer_tax_id = models.CharField(max_length=50, blank=True)
    # A statement of the month so far (`invoices_generate --to-date`): a draft the tenant may see, never issued
    # itself; the month's run replaces it with the real invoice once the month has ended.
    to_date = models.BooleanField(default=False, editable=False)
    number = models.CharField(max_length=32, blank=True, help_text="Empty while a draft.")
    period = models.DateField(help_text="The month billed: its first day.")
    currency = models.CharField(max_length=3)
    bill_to_name = models.CharField(max_length=200)
    bill_to_address = models.TextField(blank=True)
    bill_to_tax_id = models.CharField(max_length=50, blank=True)
    subtotal = models.DecimalField(**INVOICE_MONEY, default=0)
    tax_rate = models.DecimalField(**TAX_RATE, default=0)
    tax = models.DecimalField(**INVOICE_MONEY, default=0)
    total = models.DecimalField(**INVOICE_MONEY, default=0)
    # Shown, not billed: what live messages still held at the period's end (accepted, not yet captured or
    # released); each is billed on the invoice of the month its hold is captured in (billing/invoices.py).
    held_unsettled = models.DecimalField(**MONEY, default=0,
                                         help_text="Held for messages not yet settled at the period's end.")
    status = models.CharField(max_length=8, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    created_at = models.DateTimeField(default=timezone.now)
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    # The fields an issued invoice may still change (the trigger of migration 0009 says the same).
    MUTABLE_WHEN_ISSUED = frozenset({"status", "paid_at", "voided_at"})

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="invoice_tenant_time")]
        constraints = [
            # One invoice per tenant and month: a second run, or two at once, cannot make another.
            models.UniqueConstraint(fields=["tenant", "period"], name="invoice_tenant_period"),
            models.UniqueConstraint(fields=["issuer", "number"], condition=~Q(number=""), name="invoice_number"),
            models.CheckConstraint(condition=Q(status="draft", number="") | (~Q(status="draft") & ~Q(number="")),
                                   name="invoice_numbered_once_issued"),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {self.period:%Y-%m}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._stored_status = instance.status if "status" in field_names else None
        return instance

    def save(self, *args, **kwargs):
        stored = getattr(self, "_stored_status", None)
        if stored is not None and stored != InvoiceStatus.DRAFT:
            fields = kwargs.get("update_fields")
            if fields is None or not set(fields) <= self.MUTABLE_WHEN_ISSUED:
                raise InvoiceImmutable(f"invoice {self.number} is {stored}: only its status may change")
        super().save(*args, **kwargs)
        self._stored_status = self.status

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT


class InvoiceLineKind(models.TextChoices):
    MESSAGES = "messages", "Messages"
    RENTAL = "rental", "Number rental"
    LEASE = "lease", "Number leases"
    ADJUSTMENT = "adjustment", "Adjustment"


class InvoiceLine(models.Model):
    """One numbered line (1..n) of an invoice: messages of one country and type, number rental, leases or an
    adjustment. `unit_price`: for messages, the amount per segment before rounding (6 places)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=InvoiceLineKind.choices)
    description = models.CharField(max_length=300)
    country = models.CharField(max_length=2, blank=True)
    message_type = models.CharField(max_length=16, blank=True)
    quantity = models.PositiveIntegerField(default=0, help_text="Messages, or ledger entries (rental, leases).")
    segments = models.PositiveIntegerField(default=0)
    unit_price = models.DecimalField(**MONEY, null=True, blank=True)
    amount = models.DecimalField(**INVOICE_MONEY)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_position")]

    def __str__(self) -> str:
        return f"{self.position}. {self.description}"


class CreditNote(models.Model):
    """Corrects an issued invoice, which itself never changes: its own number from the issuer's credit note
    series, lines whose amounts are what the invoice should have said less what it said (negative: the
    tenant owes less), tax at the invoice's rate. Issued when created, and never changed (a trigger on
    PostgreSQL refuses UPDATE and DELETE)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("crn"), editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    issuer = models.CharField(max_length=200)
    number = models.CharField(max_length=32)
    currency = models.CharField(max_length=3)
    reason = models.TextField()
    subtotal = models.DecimalField(**INVOICE_MONEY)
    tax_rate = models.DecimalField(**TAX_RATE)
    tax = models.DecimalField(**INVOICE_MONEY)
    total = models.DecimalField(**INVOICE_MONEY)
    actor = models.CharField(max_length=200, blank=True)
    issued_at = models.DateTimeField(default=timezone.now)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "issued_at"], name="credit_note_tenant_time")]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "number"], name="credit_note_number"),
            models.CheckConstraint(condition=~Q(reason=""), name="credit_note_reason"),
        ]

    def __str__(self) -> str:
        return self.number

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise InvoiceImmutable(f"credit note {self.number} is issued: it never changes")
        super().save(*args, **kwargs)


class CreditNoteLine(models.Model):
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.PROTECT, related_name="+", db_index=False)
    credit_note = models.ForeignKey(CreditNote, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=300)
    amount = models.DecimalField(**INVOICE_MONEY, help_text="Negative: less to pay.")

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["credit_note", "position"], name="credit_note_line_position"),
            models.CheckConstraint(condition=~Q(amount=0), name="credit_note_line_not_zero"),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.description}"


class InvoiceSequence(models.Model):
    """The last number given in one series (`SP`, `CN`) of one issuer in one year: the row is locked
    (SELECT ... FOR UPDATE) while a number is taken, in the transaction that issues the invoice or credit
    note, so numbers run without gaps (a rolled-back issue gives its number back) and never twice.
    Platform data, not a tenant's."""

    issuer = models.CharField(max_length=200)
    series = models.CharField(max_length=8)
    year = models.PositiveIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "series", "year"], name="invoice_sequence_key")]

    def __str__(self) -> str:
        return f"{self.issuer} {self.series}-{self.year}: {self.last}"
