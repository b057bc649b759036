"""/v1 routes of webhooks."""
from django.urls import path

from smsportal.events.api import views

urlpatterns = [
    path("webhook-endpoints", views.WebhookEndpointListView.as_view(), name="webhook-endpoint-list"),
    # Before <endpoint_id>, which would otherwise take "callback-secret" for an id.
    path("webhook-endpoints/callback-secret", views.CallbackSecretView.as_view(), name="webhook-callback-secret"),
    path("webhook-endpoints/<public_id:endpoint_id>", views.WebhookEndpointDetailView.as_view(),
         name="webhook-endpoint-detail"),
    path("webhook-endpoints/<public_id:endpoint_id>/rotate-secret", views.WebhookEndpointRotateSecretView.as_view(),
         name="webhook-endpoint-rotate-secret"),
    path("webhook-endpoints/<public_id:endpoint_id>/test", views.WebhookEndpointTestView.as_view(),
         name="webhook-endpoint-test"),
    path("webhook-deliveries", views.WebhookDeliveryListView.as_view(), name="webhook-delivery-list"),
    path("webhook-deliveries/<public_id:delivery_id>", views.WebhookDeliveryDetailView.as_view(),
         name="webhook-delivery-detail"),
    path("webhook-deliveries/<public_id:delivery_id>/resend", views.WebhookDeliveryResendView.as_view(),
         name="webhook-delivery-resend"),
]
