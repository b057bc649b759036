"""Models of compliance: for now the keyword events (opt-out, opt-in, help) of inbound messages."""
from django.db import models

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
