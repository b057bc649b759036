"""Admin for account managers: webhook endpoints (never a secret) and deliveries with their attempts, read-only."""
from django.contrib import admin, messages

from smsportal.events import errors, services
from smsportal.events.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


class ReadOnlyAdmin(admin.ModelAdmin):
    """Changes go through the services (validated, audited), never through a form."""

    hidden_fields: tuple[str, ...] = ()

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in self.hidden_fields]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(ReadOnlyAdmin):
    # Encrypted or not, a secret has no business on an admin page.
    hidden_fields = ("id", "secret_encrypted", "previous_secret_encrypted")
    list_display = ["public_id", "tenant", "url", "enabled", "consecutive_failures", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["=public_id", "url", "tenant__slug"]
    list_select_related = ["tenant"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    fields = ["cycle", "number", "started_at", "finished_at", "status_code", "latency_ms", "error_class"]
    readonly_fields = fields
    ordering = ["cycle", "number"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    hidden_fields = ("id",)
    list_display = ["public_id", "tenant", "event_type", "status", "attempts", "last_status_code", "last_error_class",
                    "created_at"]
    list_filter = ["status", "event_type"]
    search_fields = ["=public_id", "=event_id", "=subject", "tenant__slug"]
    list_select_related = ["tenant"]
    raw_id_fields = ["endpoint"]
    inlines = [WebhookAttemptInline]
    actions = ["resend"]
    show_full_result_count = False

    @admin.action(description="Resend the selected deliveries (same webhook-id, new attempt cycle)")
    def resend(self, request, queryset):
        resent, refused = 0, 0
        for delivery in queryset.select_related("tenant"):
            try:
                services.webhook_delivery_resend(tenant=delivery.tenant, delivery=delivery)
                resent += 1
            except errors.WebhookEndpointDisabled:
                refused += 1
        self.message_user(request, f"{resent} deliveries resent.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} not resent: their endpoint is disabled.", messages.WARNING)
