"""Admin for account managers: keyword events (read-only); country rules, with audited overrides."""
from django import forms
from django.contrib import admin, messages

from accounts.services import ip_text
from accounts.services.audit import Actor
from compliance.country_data import (
    RULE_FIELDS,
    country_rule_override,
    country_rule_override_clear,
    rule_fields_check,
    rule_value_json,
)
from compliance.models import CountryRule, KeywordEvent


def _actor(request) -> Actor:
    return Actor(user=request.user, ip=ip_text(getattr(request, "client_ip", None)))


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
                                  actor=_actor(request))
        obj.refresh_from_db()

    @admin.action(description="Clear overrides (back to the dataset)")
    def clear_overrides(self, request, queryset):
        isos = [row.iso for row in queryset if row.overrides]
        for iso in isos:
            country_rule_override_clear(iso=iso, actor=_actor(request))
        self.message_user(request, f"{len(isos)} countries back to the dataset.", messages.SUCCESS)
