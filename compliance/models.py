"""Models of compliance: keyword events of inbound messages, quiet hours, fraud rules and their signals."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from smsportal.ids import PublicId
from smsportal.tenancy import TenantScopedManager


class KeywordEvent(models.Model):
    """An inbound STOP/START/HELP keyword from `sender` to the tenant's `number`; append-only,
    written only by compliance.services.keyword_record."""

    class Kind(models.TextChoices):
        OPT_OUT = "opt_out", "Opt-out"
        OPT_IN = "opt_in", "Opt-in"
        HELP = "help", "Help"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    number = models.CharField(max_length=20, help_text="The tenant's number (E.164).")
    sender = models.CharField(max_length=20, help_text="Who sent the keyword (E.164).")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "sender", "created_at"])]

    def __str__(self) -> str:
        return f"{self.sender} {self.kind}"


class CountryRule(models.Model):
    """What a destination country allows (sender types, registration, templates, opt-out text, quiet hours,
    parts, risk): platform data, not a tenant's, like routing's carriers. Loaded from the versioned dataset
    compliance/data/country_rules.json (`manage.py country_rules_load`, and migration 0003); an account
    manager's override (admin) is kept in `overrides` and laid over the dataset's values again at every load,
    so a reload refreshes what nobody overrode and keeps what somebody did. Read through compliance.countries
    (a per-process cache), never per message."""

    class Alphanumeric(models.TextChoices):
        ALLOWED = "allowed", "Allowed"
        REGISTRATION_REQUIRED = "registration_required", "Registration required"
        NOT_SUPPORTED = "not_supported", "Not supported"

    class Risk(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    iso = models.CharField(max_length=2, unique=True, help_text="ISO 3166-1 alpha-2, upper case.")
    name = models.CharField(max_length=64)
    region = models.CharField(max_length=32)
    alphanumeric = models.CharField(max_length=24, choices=Alphanumeric.choices,
                                    help_text="Alphanumeric sender IDs: allowed, only registered ones, or none.")
    numeric_sender = models.BooleanField(help_text="Numbers (long codes, short codes) may be the sender.")
    two_way = models.BooleanField(help_text="Recipients can reply.")
    registration = models.TextField(blank=True, help_text="Template and registration requirements, in words.")
    template_required = models.BooleanField(default=False, help_text="Every message must match a registered template.")
    signature_required = models.CharField(max_length=8, blank=True,
                                          help_text="The brackets a signature must open the message in, e.g. 【】; "
                                                    "blank: none.")
    marketing_opt_out_text = models.CharField(max_length=200, blank=True,
                                              help_text="The opt-out text marketing must carry; blank: none.")
    marketing_opt_out_keyword = models.CharField(max_length=64, blank=True,
                                                 help_text="What a marketing body must contain to satisfy the "
                                                           "opt-out rule (case-insensitive).")
    quiet_hours = models.JSONField(null=True, blank=True,
                                   help_text='The legal sending window: {"start": "08:00", "end": "21:00", "days": '
                                             '["mon", ...], "holidays": false, "applies_to": ["marketing"], "law": '
                                             '"...", "day_overrides": {"sat": {"start": ..., "end": ...}}}; null: none.')
    max_parts = models.PositiveSmallIntegerField(default=10)
    risk = models.CharField(max_length=8, choices=Risk.choices, default=Risk.LOW,
                            help_text="SMS-pumping and premium-rate exposure: high stays off until the owner enables it.")
    approval_required = models.BooleanField(default=False,
                                            help_text="An account manager must approve a tenant before it sends here.")
    source = models.TextField(help_text="Where the rule comes from: URLs or citations.")
    as_of = models.DateField(help_text="The date the source describes.")
    dataset_version = models.CharField(max_length=32, help_text="The dataset version last loaded into this row.")
    dataset_date = models.DateField()
    # {field: value} an account manager set (admin); the loader lays them over the dataset's values.
    overrides = models.JSONField(default=dict, blank=True)
    overridden = models.BooleanField(default=False, help_text="Some field differs from the dataset on purpose.")
    overridden_at = models.DateTimeField(null=True, blank=True,
                                         help_text="When an account manager last changed the row (override or clear).")
    override_reason = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["iso"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_parts__gte=1), name="country_rule_max_parts_positive"),
            models.CheckConstraint(condition=models.Q(alphanumeric__in=["allowed", "registration_required",
                                                                        "not_supported"]),
                                   name="country_rule_alphanumeric_valid"),
            models.CheckConstraint(condition=models.Q(risk__in=["low", "medium", "high"]), name="country_rule_risk_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.iso} {self.name}"


# --- Quiet hours (issue 12, section 7; compliance/quiet_hours.py) -----------------------------------------


class QuietHoursSetting(models.Model):
    """A tenant's own sending window, in the recipient's local time: it can only narrow the country's legal
    window (compliance/data/quiet_hours.json), never widen it. One row per tenant; no row: the legal window only."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    window_start = models.TimeField(null=True, blank=True, help_text="Earliest local time to send marketing.")
    window_end = models.TimeField(null=True, blank=True, help_text="Latest local time (exclusive).")
    # ISO weekdays (1 Monday .. 7 Sunday) on which the tenant sends no marketing at all.
    days_off = models.JSONField(default=list, blank=True)
    apply_to_transactional = models.BooleanField(
        default=False, help_text="Also defer transactional messages (OTP messages are never deferred).")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(window_start__isnull=True, window_end__isnull=True)
                           | models.Q(window_start__lt=models.F("window_end"))),
                name="quiet_hours_window_ordered"),
        ]

    def __str__(self) -> str:
        return f"quiet hours of tenant {self.tenant_id}"


# --- Fraud and SMS-pumping defence (issue 12, section 8; compliance/fraud.py) ----------------------------


class FraudRule(models.Model):
    """A velocity rule, as data (account managers edit it in admin): messages per window on one dimension,
    against that dimension's own baseline (an EWMA of its earlier windows, kept in Redis).

    It fires when a window's count reaches `min_count` and exceeds `baseline_multiplier` times the
    baseline (at least `baseline_floor` a window, so a new tenant's empty history is no baseline of zero).
    `sequential` rules also need `sequential_ratio` of the window's numbers next to another one of it
    (…0001, …0002): the shape of a pumping run through a number range."""

    class Kind(models.TextChoices):
        VELOCITY = "velocity", "Velocity against baseline"
        SEQUENTIAL = "sequential", "Burst to sequential numbers in one prefix"

    class Dimension(models.TextChoices):
        TENANT = "tenant", "Tenant"
        API_KEY = "api_key", "API key"
        PREFIX = "prefix", "Destination prefix"
        COUNTRY = "country", "Destination country"

    class Mode(models.TextChoices):
        BLOCK = "block", "Block (422 fraud_suspected)"
        SHADOW = "shadow", "Shadow (record a signal, send anyway)"
        OFF = "off", "Off"

    code = models.SlugField(max_length=50, unique=True, help_text="The reason code answered with fraud_suspected.")
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.VELOCITY)
    dimension = models.CharField(max_length=8, choices=Dimension.choices, default=Dimension.PREFIX)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.SHADOW)
    window_seconds = models.PositiveIntegerField(default=60)
    min_count = models.PositiveIntegerField(default=100, help_text="Messages in a window before the rule can fire.")
    baseline_multiplier = models.DecimalField(max_digits=6, decimal_places=2, default=10)
    baseline_floor = models.PositiveIntegerField(default=3, help_text="Least baseline a window (messages).")
    prefix_digits = models.PositiveSmallIntegerField(
        default=5, help_text="Digits of the E.164 number (country code included) that make a prefix.")
    sequential_ratio = models.DecimalField(max_digits=3, decimal_places=2, default=0.5)
    countries = models.JSONField(default=list, blank=True, help_text="ISO codes it watches (empty: every country).")
    message_types = models.JSONField(default=list, blank=True, help_text="otp, transactional, marketing (empty: all).")
    description = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(window_seconds__gte=1), name="fraud_rule_window_positive"),
            models.CheckConstraint(condition=models.Q(prefix_digits__gte=1, prefix_digits__lte=15),
                                   name="fraud_rule_prefix_digits_range"),
        ]

    def __str__(self) -> str:
        return self.code


class FraudSignal(models.Model):
    """One firing of a rule for one subject (at most one a window: later blocks of the same window answer
    the same evidence without a row each), for account managers to review in admin."""

    class Action(models.TextChoices):
        BLOCKED = "blocked", "Blocked"
        SHADOW = "shadow", "Shadow (sent)"

    class Review(models.TextChoices):
        OPEN = "open", "Open"
        ALLOWLISTED = "allowlisted", "Allow-listed"
        TENANT_SUSPENDED = "tenant_suspended", "Tenant suspended"
        DISMISSED = "dismissed", "Dismissed"

    public_id = models.CharField(max_length=32, unique=True, default=PublicId("frd"), editable=False)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(FraudRule, on_delete=models.PROTECT, related_name="signals")
    dimension = models.CharField(max_length=8, choices=FraudRule.Dimension.choices)
    subject = models.CharField(max_length=64, help_text="The prefix, country, API key or tenant that burst.")
    action = models.CharField(max_length=8, choices=Action.choices)
    evidence = models.CharField(max_length=300)
    figures = models.JSONField(default=dict, help_text="count, distinct, baseline, window_seconds, adjacent.")
    review = models.CharField(max_length=16, choices=Review.choices, default=Review.OPEN)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"]), models.Index(fields=["review", "created_at"])]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.subject}: {self.evidence}"


class FraudAllowance(models.Model):
    """An account manager's "this is fine": the rule no longer fires for this tenant's subject (a prefix,
    a country, a key) until `expires_at` (none: for good)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    rule = models.ForeignKey(FraudRule, on_delete=models.CASCADE, related_name="allowances")
    subject = models.CharField(max_length=64)
    reason = models.CharField(max_length=300, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "rule", "subject"], name="fraud_allowance_unique")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.subject}"


class ContentRule(models.Model):
    """One content-policy rule (docs/compliance.md, "Content policy and geo permissions"): platform data, seeded
    from compliance/data/content_rules.json by migration 0007 and edited by account managers in admin, never
    code in a view. Read through compliance.content (compiled once per process), never per message.

    `kind` says how `pattern` is read: `regex` (a Python regular expression, any case, searched in the text),
    `domains` (host names, one a line: a link to one of them or a subdomain matches, unless the tenant's own
    AllowedDomain list has it), or `required` (the element the country's rule asks for is missing: the
    category names which: `opt_out_missing`, `signature_missing`, `template_missing`; `pattern` unused)."""

    class Kind(models.TextChoices):
        REGEX = "regex", "Regular expression"
        DOMAINS = "domains", "Link domains"
        REQUIRED = "required", "Required element missing"

    class Action(models.TextChoices):
        BLOCK = "block", "Block (422 content_policy_violation)"
        FLAG = "flag", "Flag (send, and record a flag for review)"

    slug = models.SlugField(max_length=64, unique=True, help_text="The rule's id, shown in a refusal.")
    category = models.CharField(max_length=32, help_text="shaft, phishing, shortener, opt_out_missing, "
                                                         "signature_missing, template_missing, ...")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    pattern = models.TextField(blank=True, help_text="regex: the expression; domains: one host a line; required: unused.")
    countries = models.JSONField(default=list, blank=True, help_text='ISO codes it applies to, e.g. ["US"]; [] = every country.')
    message_types = models.JSONField(default=list, blank=True,
                                     help_text='Message types it applies to, e.g. ["marketing"]; [] = every type.')
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.BLOCK)
    reason = models.CharField(max_length=300, help_text="Why, in words a sender can act on (shown in the refusal).")
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["regex", "domains", "required"]),
                                   name="content_rule_kind_valid"),
            models.CheckConstraint(condition=models.Q(action__in=["block", "flag"]), name="content_rule_action_valid"),
        ]

    def __str__(self) -> str:
        return self.slug


class AllowedDomain(models.Model):
    """A tenant's own link domain: links to it (or its subdomains) pass the `domains` content rules, so a
    tenant that runs its own short-link host is not refused as a public shortener."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    domain = models.CharField(max_length=253, help_text="A host name, lower case, e.g. go.example.com.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["domain"]
        constraints = [models.UniqueConstraint(fields=["tenant", "domain"], name="allowed_domain_unique")]

    def __str__(self) -> str:
        return self.domain


class ContentFlag(models.Model):
    """A send a `flag` content rule matched: it went out, and account managers review it in admin. Written
    only by a send (never a quote), after the rule matched; keeps an excerpt, not the whole body."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    rule_slug = models.SlugField(max_length=64)
    category = models.CharField(max_length=32)
    to = models.CharField(max_length=20)
    country = models.CharField(max_length=2, blank=True)
    message_type = models.CharField(max_length=16)
    excerpt = models.CharField(max_length=160)
    reviewed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "created_at"])]

    def __str__(self) -> str:
        return f"{self.rule_slug} {self.to}"


class GeoPermission(models.Model):
    """A tenant's explicit choice for one destination country. Without a row a country follows the default
    (compliance.geo): the tenant's home country and the rules' low-risk countries are allowed, the rest are
    not. `enabled` is the owner's choice; a country whose rule has approval_required is allowed only once an
    account manager approved it (`approved_at`, through a GeoApprovalRequest)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, upper case.")
    enabled = models.BooleanField()
    approved_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["country"]
        constraints = [models.UniqueConstraint(fields=["tenant", "country"], name="geo_permission_unique")]

    def __str__(self) -> str:
        return f"{self.country} {'on' if self.enabled else 'off'}"


class GeoApprovalRequest(models.Model):
    """A tenant asked to send to a country whose rule needs an account manager's approval: the admin's
    high-risk approval queue. The decision is audited (geo_approval.approved / .rejected)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    country = models.CharField(max_length=2)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True, help_text="The account manager's reason for the decision.")
    reviewed_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "country"], condition=models.Q(status="pending"),
                                               name="geo_approval_one_pending")]

    def __str__(self) -> str:
        return f"{self.country} {self.status}"


# --- Consent ledger, suppressions, retention and erasure (issue 12, sections 1, 2 and 9; compliance/consent.py) -


class ConsentScope(models.TextChoices):
    """Where a consent record or a suppression applies: every sender of the tenant, one sender number, or one
    number pool (every number in it)."""

    TENANT = "tenant", "Whole tenant"
    SENDER = "sender", "One sender"
    POOL = "pool", "One number pool"


class ConsentRecord(models.Model):
    """One entry of the tenant's consent ledger: a number opted in or out, in a scope, with its proof.

    Append-only (compliance.consent.consent_record writes it): a number's state in a scope is its latest
    record there. `phone_hash` is a keyed hash (HMAC, CONSENT_HASH_KEY) of the number, written with every
    record, so the check still matches once an erasure blanked `phone` and the proof."""

    class Status(models.TextChoices):
        OPTED_IN = "opted_in", "Opted in"
        OPTED_OUT = "opted_out", "Opted out"

    class Source(models.TextChoices):
        WEB_FORM = "web_form", "Web form"
        CHECKOUT = "checkout", "Checkout"
        KEYWORD = "keyword", "Keyword (STOP, START)"
        IMPORT = "import", "Import"
        API = "api", "API"
        PORTAL = "portal", "Portal"
        ERASURE = "erasure", "Erasure request"

    public_id = models.CharField(max_length=32, unique=True, default=PublicId("cns"), editable=False)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164; blank once erased.")
    phone_hash = models.CharField(max_length=64, help_text="HMAC-SHA256 of the number (hex).")
    status = models.CharField(max_length=10, choices=Status.choices)
    scope = models.CharField(max_length=8, choices=ConsentScope.choices, default=ConsentScope.TENANT)
    sender = models.CharField(max_length=20, blank=True, help_text="Scope sender: the sender number (E.164).")
    pool_id = models.CharField(max_length=32, blank=True, help_text="Scope pool: the pool's public id (pool_…).")
    source = models.CharField(max_length=10, choices=Source.choices)
    consent_text = models.TextField(blank=True, help_text="The words the person agreed to (or the keyword sent).")
    consent_version = models.CharField(max_length=64, blank=True)
    consented_at = models.DateTimeField(default=timezone.now, help_text="When the person gave or withdrew consent.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    page_url = models.URLField(max_length=2000, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True, help_text="An erasure request blanked the number and proof.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # the send check: every record of a batch's numbers, one query (compliance.consent.consent_states)
            models.Index(fields=["tenant", "phone_hash", "created_at"], name="consent_tenant_hash_created"),
            models.Index(fields=["tenant", "created_at"], name="consent_tenant_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(scope="tenant", sender="", pool_id="")
                           | (models.Q(scope="sender", pool_id="") & ~models.Q(sender=""))
                           | (models.Q(scope="pool", sender="") & ~models.Q(pool_id=""))),
                name="consent_scope_target"),
            models.CheckConstraint(condition=models.Q(status__in=["opted_in", "opted_out"]),
                                   name="consent_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.phone or self.phone_hash[:12]} {self.status} ({self.scope})"


class Suppression(models.Model):
    """A number the tenant must not message in a scope, whatever the ledger says: a manual entry (API, portal,
    import) or what an erasure request leaves (only the keyed hash, `phone` blank). Deleting one (DELETE
    /v1/suppressions/{id}) is audited; an erasure's entry cannot be deleted through the API."""

    class Source(models.TextChoices):
        API = "api", "API"
        PORTAL = "portal", "Portal"
        IMPORT = "import", "Import"
        ERASURE = "erasure", "Erasure request"

    public_id = models.CharField(max_length=32, unique=True, default=PublicId("sup"), editable=False)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    phone = models.CharField(max_length=20, blank=True, help_text="E.164; blank for an erased number.")
    phone_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=ConsentScope.choices, default=ConsentScope.TENANT)
    sender = models.CharField(max_length=20, blank=True)
    pool_id = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "phone_hash"], name="suppression_tenant_hash"),
                   models.Index(fields=["tenant", "created_at"], name="suppression_tenant_created")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "phone_hash", "scope", "sender", "pool_id"],
                                    name="suppression_unique_per_scope"),
            models.CheckConstraint(
                condition=(models.Q(scope="tenant", sender="", pool_id="")
                           | (models.Q(scope="sender", pool_id="") & ~models.Q(sender=""))
                           | (models.Q(scope="pool", sender="") & ~models.Q(pool_id=""))),
                name="suppression_scope_target"),
        ]

    def __str__(self) -> str:
        return f"{self.phone or self.phone_hash[:12]} ({self.scope})"


class ConsentSettings(models.Model):
    """A tenant's consent and retention settings; no row: the defaults (scope `sender`, 90 days)."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    opt_out_scope = models.CharField(
        max_length=8, choices=[(ConsentScope.TENANT, "Whole tenant"), (ConsentScope.SENDER, "The sender (and its pool)")],
        default=ConsentScope.SENDER,
        help_text="Where a STOP applies: the number it was sent to (and its pool), or every sender of the tenant.")
    retention_days = models.PositiveIntegerField(default=90, help_text="Message bodies older than this are redacted.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        verbose_name_plural = "consent settings"
        constraints = [models.CheckConstraint(condition=models.Q(retention_days__gte=1),
                                              name="consent_settings_retention_positive")]

    def __str__(self) -> str:
        return f"consent settings of tenant {self.tenant_id}"


class ErasureRequest(models.Model):
    """One erasure of a number's data for the tenant (POST /v1/erasure-requests): what was redacted, counted.
    Keeps only the keyed hash of the number, never the number."""

    public_id = models.CharField(max_length=32, unique=True, default=PublicId("era"), editable=False)
    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    phone_hash = models.CharField(max_length=64)
    counts = models.JSONField(default=dict, help_text="Rows redacted, by kind (messages, inbound, consents).")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"erasure {self.public_id}"


# --- Sender IDs (issue 12 section 3; docs/compliance.md "Sender IDs") -----------------------------------------


class SenderId(models.Model):
    """A sender the tenant registered for some countries: an alphanumeric ID (3 to 11 GSM characters) or one of
    its numbers. Sends from an alphanumeric sender to a country whose rule says `registration_required` need an
    approved, unexpired one for that country (messaging/accept/policies/senders.py). Written only through
    compliance.sender_ids (register; an account manager's review, audited)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("sid"), editable=False)
    value = models.CharField(max_length=20, help_text="The alphanumeric sender ID, or an E.164 number.")
    countries = models.JSONField(default=list, help_text="ISO 3166-1 alpha-2 codes the ID is registered for.")
    use_case = models.TextField()
    sample_messages = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    reason = models.TextField(blank=True, help_text="The account manager's reason for the decision.")
    reviewed_by = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="An approval ends then; empty: no end.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "status"], name="sender_id_tenant_status_idx")]

    def __str__(self) -> str:
        return f"{self.value} {self.status}"


def _sender_id_document_path(instance: "SenderIdDocument", filename: str) -> str:
    # Never the uploader's file name in the path: a random name under the tenant's folder.
    return f"sender_ids/{instance.tenant_id}/{instance.public_id}"


class SenderIdDocument(models.Model):
    """A file backing a registration (a letter of authorization, a trade register extract): PDF, PNG or JPEG,
    at most SENDER_ID_DOCUMENT_MAX_BYTES (compliance.sender_ids checks the content, not only the name)."""

    tenant = models.ForeignKey("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=PublicId("sdoc"), editable=False)
    sender_id = models.ForeignKey(SenderId, on_delete=models.CASCADE, related_name="documents")
    file = models.FileField(upload_to=_sender_id_document_path, max_length=200)
    name = models.CharField(max_length=200, help_text="The file name as uploaded (shown, never used as a path).")
    content_type = models.CharField(max_length=64)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return self.name


class SenderSettings(models.Model):
    """A tenant's sender settings: the pool whose numbers replace an alphanumeric sender where the destination
    does not support one (US, CA, ...). Named, not a foreign key: pools are numbers', an app above compliance.
    No row, or a pool that is gone or has no number for the country: the platform's shared senders."""

    tenant = models.OneToOneField("accounts.Tenant", on_delete=models.CASCADE, related_name="+")
    fallback_pool = models.CharField(max_length=50, blank=True,
                                     help_text="The name of the tenant's number pool used for sender substitution.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantScopedManager()
    unscoped = models.Manager()

    class Meta:
        verbose_name_plural = "sender settings"

    def __str__(self) -> str:
        return f"sender settings of tenant {self.tenant_id}"
