"""Admin for account managers: keyword events (read-only), fraud rules, the fraud signals to review."""
from django.contrib import admin, messages

from accounts.portal.decorators import actor_for
from accounts.services import audit_record
from compliance import services
from compliance.models import FraudAllowance, FraudRule, FraudSignal, KeywordEvent


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
