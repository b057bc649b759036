"""Filters for GET /v1/webhook-deliveries: ids are public ids."""
import django_filters

from smsportal.events.models import DeliveryStatus, WebhookDelivery
from smsportal.events.registry import event_types


class WebhookDeliveryFilter(django_filters.FilterSet):
    endpoint = django_filters.CharFilter(field_name="endpoint__public_id", help_text="An endpoint id (whe_…).")
    message = django_filters.CharFilter(field_name="subject", help_text="A message id (msg_…).")
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event_type = django_filters.ChoiceFilter(choices=[(event, event) for event in event_types()])

    class Meta:
        model = WebhookDelivery
        fields = ["endpoint", "message", "status", "event_type"]
