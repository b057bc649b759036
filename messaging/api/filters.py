"""Filters for GET /v1/messages."""
import django_filters

from messaging.models import Message, MessageType, Status
from smsportal.api.filters import DateTimeFilter


class MessageFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    to = django_filters.CharFilter()
    message_type = django_filters.ChoiceFilter(choices=MessageType.choices)
    client_reference = django_filters.CharFilter()
    created_after = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = DateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Message
        fields = ["status", "to", "message_type", "client_reference", "created_after", "created_before"]
