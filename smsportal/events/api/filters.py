"""Filters for GET /v1/webhook-deliveries: ids are public ids."""
import django_filters

from messaging.webhooks.models import EVENT_TYPES, DeliveryStatus, WebhookDelivery


class WebhookDeliveryFilter(django_filters.FilterSet):
    endpoint = django_filters.CharFilter(field_name="endpoint__public_id", help_text="An endpoint id (whe_…).")
    message = django_filters.CharFilter(field_name="message__public_id", help_text="A message id (msg_…).")
    status = django_filters.ChoiceFilter(choices=DeliveryStatus.choices)
    event_type = django_filters.ChoiceFilter(choices=[(event, event) for event in EVENT_TYPES])

    class Meta:
        model = WebhookDelivery
        fields = ["endpoint", "message", "status", "event_type"]
