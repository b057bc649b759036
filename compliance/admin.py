"""Admin for account managers: keyword events (read-only)."""
from django.contrib import admin

from compliance.models import KeywordEvent


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
