"""Admin for account managers: keyword events (read-only); country rules, with audited overrides; content rules,
allowed domains and content flags; the geo approval queue (audited decisions)."""
import re

from django import forms
from django.contrib import admin, messages

from accounts.portal.decorators import actor_for
from accounts.services import audit_record
from compliance import consent_services, geo, services
from compliance.content import domains_parse
from compliance.country_data import (
    RULE_FIELDS,
    country_rule_override,
    country_rule_override_clear,
    rule_fields_check,
    rule_value_json,
)
from compliance.models import (
    AllowedDomain,
    ConsentRecord,
    ConsentSettings,
    ContentFlag,
    ContentRule,
    CountryRule,
    ErasureRequest,
    FraudAllowance,
    FraudRule,
    FraudSignal,
    GeoApprovalRequest,
    KeywordEvent,
    Suppression,
)


@admin.register(KeywordEvent)
class KeywordEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "number", "sender", "kind"]
    list_filter = ["kind"]
    search_fields = ["number", "sender", "tenant__slug"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class CountryRuleForm(forms.ModelForm):
    change_reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                                    help_text="Why this country differs from the dataset (kept in the audit trail).")

    class Meta:
        model = CountryRule
        fields = [*RULE_FIELDS]

    def clean(self):
        cleaned = super().clean()
        changes = {name: rule_value_json(name, cleaned.get(name)) for name in self.changed_data if name in RULE_FIELDS}
        try:
            rule_fields_check(changes, iso=self.instance.iso, partial=True)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return cleaned


@admin.register(CountryRule)
class CountryRuleAdmin(admin.ModelAdmin):
    """A country's rules from the dataset; a change here is an override: kept across dataset reloads, audited
    (country_rule.overridden, before and after) and published by GET /v1/countries. "Clear overrides" puts the
    dataset's values back."""

    form = CountryRuleForm
    list_display = ["iso", "name", "region", "alphanumeric", "risk", "approval_required", "max_parts", "overridden",
                    "as_of", "dataset_version"]
    list_filter = ["region", "alphanumeric", "risk", "approval_required", "overridden"]
    search_fields = ["iso", "name"]
    readonly_fields = ["iso", "overrides", "overridden", "overridden_at", "override_reason", "dataset_version",
                       "dataset_date", "updated_at"]
    fieldsets = [
        (None, {"fields": ["iso", "name", "region"]}),
        ("Senders", {"fields": ["alphanumeric", "numeric_sender", "two_way", "registration", "template_required",
                                "signature_required"]}),
        ("Content and timing", {"fields": ["marketing_opt_out_text", "marketing_opt_out_keyword", "quiet_hours",
                                           "max_parts"]}),
        ("Risk", {"fields": ["risk", "approval_required"]}),
        ("Source", {"fields": ["source", "as_of", "dataset_version", "dataset_date"]}),
        ("Override", {"fields": ["change_reason", "overridden", "overrides", "overridden_at", "override_reason",
                                 "updated_at"]}),
    ]
    actions = ["clear_overrides"]

    def has_add_permission(self, request):
        return False  # countries come from the dataset (country_rules_load)

    def has_delete_permission(self, request, obj=None):
        return False  # a reload would bring it back; override it instead

    def save_model(self, request, obj, form, change):
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in RULE_FIELDS}
        if changes:
            country_rule_override(iso=obj.iso, changes=changes, reason=form.cleaned_data["change_reason"],
                                  actor=actor_for(request))
        obj.refresh_from_db()

    @admin.action(description="Clear overrides (back to the dataset)")
    def clear_overrides(self, request, queryset):
        isos = [row.iso for row in queryset if row.overrides]
        for iso in isos:
            country_rule_override_clear(iso=iso, actor=actor_for(request))
        self.message_user(request, f"{len(isos)} countries back to the dataset.", messages.SUCCESS)


# --- Fraud rules and signals (issue 12, section 8) ---------------------------------------------------------


@admin.register(FraudRule)
class FraudRuleAdmin(admin.ModelAdmin):
    """The rules are data: thresholds and mode (block, shadow, off) are edited here, every change audited."""

    list_display = ["code", "kind", "dimension", "mode", "window_seconds", "min_count", "baseline_multiplier",
                    "baseline_floor", "updated_at"]
    list_filter = ["mode", "kind", "dimension"]
    list_editable = ["mode"]
    search_fields = ["code", "description"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changes = {name: str(form.cleaned_data.get(name)) for name in form.changed_data}
        audit_record(action="fraud_rule.updated" if change else "fraud_rule.created", actor=actor_for(request),
                     target=obj, changes=changes)

    def has_delete_permission(self, request, obj=None):
        # Signals name their rule: switch a rule off instead.
        return False


@admin.register(FraudSignal)
class FraudSignalAdmin(admin.ModelAdmin):
    """Signals to review: allow-list the case (the rule stops firing for that tenant's subject), suspend the
    tenant, or dismiss. Each review is audited."""

    list_display = ["created_at", "tenant", "rule", "subject", "action", "evidence", "review"]
    list_filter = ["review", "action", "rule"]
    search_fields = ["tenant__slug", "subject", "evidence", "public_id"]
    list_select_related = ["tenant", "rule"]
    actions = ["allowlist", "suspend_tenant", "dismiss"]

    def get_queryset(self, request):
        # unscoped: account managers review every tenant's signals
        return FraudSignal.unscoped.select_related("tenant", "rule")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Allow-list the case (the rule stops firing for this tenant's subject)",
                  permissions=["change"])
    def allowlist(self, request, queryset):
        for signal in queryset:
            services.fraud_signal_allowlist(signal=signal, actor=actor_for(request),
                                            reason=f"reviewed signal {signal.public_id}")
        self.message_user(request, f"Allow-listed {queryset.count()} case(s).", messages.SUCCESS)

    @admin.action(description="Suspend the tenant (API refused, portal read-only)", permissions=["change"])
    def suspend_tenant(self, request, queryset):
        for signal in queryset:
            services.fraud_signal_tenant_suspend(signal=signal, actor=actor_for(request))
        self.message_user(request, f"Suspended the tenants of {queryset.count()} signal(s).", messages.SUCCESS)

    @admin.action(description="Dismiss", permissions=["change"])
    def dismiss(self, request, queryset):
        for signal in queryset:
            services.fraud_signal_dismiss(signal=signal, actor=actor_for(request))
        self.message_user(request, f"Dismissed {queryset.count()} signal(s).", messages.SUCCESS)


@admin.register(FraudAllowance)
class FraudAllowanceAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "rule", "subject", "expires_at", "created_by", "reason"]
    list_select_related = ["tenant", "rule", "created_by"]
    search_fields = ["tenant__slug", "subject"]

    def get_queryset(self, request):
        # unscoped: account managers see every tenant's allowances
        return FraudAllowance.unscoped.select_related("tenant", "rule", "created_by")


class ContentRuleForm(forms.ModelForm):
    class Meta:
        model = ContentRule
        fields = ["slug", "category", "kind", "pattern", "countries", "message_types", "action", "reason", "enabled"]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") == ContentRule.Kind.REGEX:
            try:
                re.compile(cleaned.get("pattern") or "")
            except re.error as exc:
                raise forms.ValidationError({"pattern": f"Not a regular expression: {exc}"}) from None
        if cleaned.get("kind") == ContentRule.Kind.DOMAINS and not domains_parse(cleaned.get("pattern") or ""):
            raise forms.ValidationError({"pattern": "List at least one host name, one a line."})
        for name in ("countries", "message_types"):
            value = cleaned.get(name)
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise forms.ValidationError({name: 'A JSON list of strings, e.g. ["US"]; [] for all.'})
        cleaned["countries"] = [c.upper() for c in cleaned["countries"]]
        return cleaned


@admin.register(ContentRule)
class ContentRuleAdmin(admin.ModelAdmin):
    """The content policy as data: every change takes effect in each process within COMPLIANCE_CACHE_SECONDS
    (at once in this one) and is audited (content_rule.changed, before and after)."""

    form = ContentRuleForm
    list_display = ["slug", "category", "kind", "action", "countries", "message_types", "enabled", "updated_at"]
    list_filter = ["category", "action", "enabled"]
    search_fields = ["slug", "reason", "pattern"]

    def save_model(self, request, obj, form, change):
        before = {name: form.initial.get(name) for name in form.changed_data} if change else {}
        super().save_model(request, obj, form, change)
        audit_record(action="content_rule.changed" if change else "content_rule.created", actor=actor_for(request),
                     target=obj, changes={"before": before,
                                          "after": {name: form.cleaned_data.get(name) for name in form.changed_data}})

    def delete_model(self, request, obj):
        audit_record(action="content_rule.deleted", actor=actor_for(request), target=obj, changes={"slug": obj.slug})
        super().delete_model(request, obj)


@admin.register(AllowedDomain)
class AllowedDomainAdmin(admin.ModelAdmin):
    """A tenant's own link domains: they pass the link-domain rules (public shorteners)."""

    list_display = ["domain", "tenant", "created_at"]
    search_fields = ["domain", "tenant__slug"]
    list_select_related = ["tenant"]


    def save_model(self, request, obj, form, change):
        obj.domain = obj.domain.strip().strip(".").lower()
        super().save_model(request, obj, form, change)
        audit_record(action="allowed_domain.saved", actor=actor_for(request), tenant=obj.tenant, target=obj,
                     changes={"domain": obj.domain})


@admin.register(ContentFlag)
class ContentFlagAdmin(admin.ModelAdmin):
    """Sends a `flag` rule matched: they went out; an account manager reviews them."""

    list_display = ["created_at", "tenant", "rule_slug", "category", "to", "country", "message_type", "reviewed"]
    list_filter = ["category", "reviewed", "country"]
    search_fields = ["to", "rule_slug", "tenant__slug", "excerpt"]
    list_select_related = ["tenant"]
    actions = ["mark_reviewed"]


    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark reviewed")
    def mark_reviewed(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        queryset.update(reviewed=True)
        audit_record(action="content_flag.reviewed", actor=actor_for(request), changes={"ids": ids})
        self.message_user(request, f"{len(ids)} flags marked reviewed.", messages.SUCCESS)


class GeoApprovalForm(forms.ModelForm):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    decision_reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                                      help_text="Why (kept in the audit trail).")

    class Meta:
        model = GeoApprovalRequest
        fields = []


@admin.register(GeoApprovalRequest)
class GeoApprovalRequestAdmin(admin.ModelAdmin):
    """The high-risk approval queue: a tenant enabled a country whose rule needs an account manager's
    approval. Open a pending request, choose approve or reject with a reason: decided and audited."""

    form = GeoApprovalForm
    list_display = ["created_at", "tenant", "country", "status", "reviewed_by", "reviewed_at"]
    list_filter = ["status", "country"]
    search_fields = ["tenant__slug", "country"]
    list_select_related = ["tenant", "reviewed_by"]
    readonly_fields = ["tenant", "country", "status", "reason", "reviewed_by", "reviewed_at", "created_at"]


    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or obj.status == "pending")

    def save_model(self, request, obj, form, change):
        geo.geo_approval_decide(request_id=obj.pk, approve=form.cleaned_data["decision"] == "approve",
                                reason=form.cleaned_data["decision_reason"], actor=actor_for(request))
        obj.refresh_from_db()


# --- Consent ledger, suppressions, consent settings, erasure requests (issue 12, sections 1, 2 and 9) ----------


class _ReadOnly(admin.ModelAdmin):
    """Rows written only by the services (append-only ledger, erasure records): shown, never edited here."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(_ReadOnly):
    list_display = ["created_at", "tenant", "phone", "status", "scope", "sender", "pool_id", "source", "erased_at"]
    list_filter = ["status", "scope", "source"]
    search_fields = ["tenant__slug", "phone", "public_id"]
    list_select_related = ["tenant"]

    def get_queryset(self, request):
        # unscoped: account managers see every tenant's consent ledger
        return ConsentRecord.unscoped.select_related("tenant")


@admin.register(Suppression)
class SuppressionAdmin(_ReadOnly):
    list_display = ["created_at", "tenant", "phone", "scope", "sender", "pool_id", "source", "reason"]
    list_filter = ["scope", "source"]
    search_fields = ["tenant__slug", "phone", "public_id"]
    list_select_related = ["tenant"]
    actions = ["lift"]

    def get_queryset(self, request):
        # unscoped: account managers see every tenant's suppressions
        return Suppression.unscoped.select_related("tenant")

    @admin.action(description="Lift the suppression (audited)", permissions=["change"])
    def lift(self, request, queryset):
        lifted = 0
        for row in queryset:
            consent_services.suppression_delete(tenant=row.tenant, public_id=row.public_id, actor=actor_for(request))
            lifted += 1
        self.message_user(request, f"Lifted {lifted} suppression(s).", messages.SUCCESS)


@admin.register(ConsentSettings)
class ConsentSettingsAdmin(_ReadOnly):
    list_display = ["tenant", "opt_out_scope", "retention_days", "updated_at"]
    list_select_related = ["tenant"]

    def get_queryset(self, request):
        # unscoped: account managers see every tenant's consent settings
        return ConsentSettings.unscoped.select_related("tenant")


@admin.register(ErasureRequest)
class ErasureRequestAdmin(_ReadOnly):
    list_display = ["created_at", "tenant", "public_id", "counts"]
    search_fields = ["tenant__slug", "public_id"]
    list_select_related = ["tenant"]

    def get_queryset(self, request):
        # unscoped: account managers see every tenant's erasure requests
        return ErasureRequest.unscoped.select_related("tenant")


# --- Sender IDs (issue 12 section 3): the review queue, audited decisions ------------------------------------

from compliance import sender_ids  # noqa: E402 - appended with sender IDs
from compliance.models import SenderId, SenderIdDocument, SenderSettings  # noqa: E402


class SenderIdReviewForm(forms.ModelForm):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    decision_reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}),
                                      help_text="Why (sent to the tenant, and kept in the audit trail).")
    approval_expires_at = forms.DateTimeField(required=False, help_text="An approval ends then (empty: no end).")

    class Meta:
        model = SenderId
        fields = []


@admin.register(SenderId)
class SenderIdAdmin(admin.ModelAdmin):
    """The sender-ID review queue: open a pending registration, read its use case, samples and documents, then
    approve (optionally until a date) or reject with a reason: compliance.sender_ids.sender_id_review decides,
    audits, emails the tenant and emits sender_id.reviewed."""

    form = SenderIdReviewForm
    list_display = ["created_at", "tenant", "value", "countries", "status", "reviewed_by", "reviewed_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["tenant__slug", "value", "public_id"]
    list_select_related = ["tenant", "reviewed_by"]
    readonly_fields = ["public_id", "tenant", "value", "countries", "use_case", "sample_messages", "document_list",
                       "status", "reason", "reviewed_by", "reviewed_at", "expires_at", "created_at"]

    @admin.display(description="Documents")
    def document_list(self, obj) -> str:
        # Names, types and sizes: the files stay in MEDIA_ROOT (no URL serves them).
        return ", ".join(f"{d.name} ({d.content_type}, {d.size} bytes, {d.file.name})"
                         for d in SenderIdDocument.objects.filter(sender_id=obj)) or "none"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and (obj is None or obj.status == "pending")

    def save_model(self, request, obj, form, change):
        sender_ids.sender_id_review(sender_id_pk=obj.pk, approve=form.cleaned_data["decision"] == "approve",
                                    reason=form.cleaned_data["decision_reason"], actor=actor_for(request),
                                    expires_at=form.cleaned_data.get("approval_expires_at"))
        obj.refresh_from_db()


@admin.register(SenderSettings)
class SenderSettingsAdmin(admin.ModelAdmin):
    """A tenant's fallback pool for sender substitution (the name of one of its number pools). Audited."""

    list_display = ["tenant", "fallback_pool", "updated_at"]
    search_fields = ["tenant__slug", "fallback_pool"]
    list_select_related = ["tenant"]
    fields = ["tenant", "fallback_pool"]

    def get_readonly_fields(self, request, obj=None):
        return ["tenant"] if obj else []

    def save_model(self, request, obj, form, change):
        sender_ids.sender_settings_set(tenant=obj.tenant, fallback_pool=obj.fallback_pool, actor=actor_for(request))
