"""Admin for account managers: messages (read-only, with their route attempts), templates, and routing
(messaging/routing/admin.py: carriers, routes and rate decks, circuits, quality, tenant policies)."""
from django.contrib import admin

from messaging.models import Message, MessageEvent, MessageTemplate, SimulatorSubmission
from messaging.routing.admin import MessageAttemptInline  # also registers the routing models


class MessageEventInline(admin.TabularInline):
    model = MessageEvent
    extra = 0
    can_delete = False
    fields = ["sequence", "status", "source", "detail", "error_code", "carrier_error_code", "created_at"]
    readonly_fields = fields
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Read-only: every change of a message goes through the pipeline, never through a form."""

    list_display = ["public_id", "tenant", "to", "sender", "message_type", "status", "mode", "segments",
                    "created_at"]
    list_filter = ["status", "message_type", "mode", "carrier"]
    search_fields = ["=public_id", "=to", "=carrier_message_id", "=client_reference", "tenant__slug"]
    date_hierarchy = "created_at"
    list_select_related = ["tenant"]
    inlines = [MessageEventInline, MessageAttemptInline]
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Message._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "message_type", "updated_at"]
    list_filter = ["message_type"]
    search_fields = ["name", "tenant__slug"]
    readonly_fields = ["public_id", "created_at", "updated_at"]


@admin.register(SimulatorSubmission)
class SimulatorSubmissionAdmin(admin.ModelAdmin):
    list_display = ["carrier_message_id", "reference", "to", "submits", "created_at"]
    search_fields = ["=reference", "=carrier_message_id", "=to"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
