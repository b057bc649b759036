"""/portal/webhooks/ routes; accounts/portal/urls.py splices them into the `portal` namespace."""
from django.urls import path

from smsportal.events.portal import views as webhooks

urlpatterns = [
    path("webhooks/", webhooks.webhooks, name="webhooks"),
    path("webhooks/new/", webhooks.endpoint_create, name="webhook-endpoint-create"),
    path("webhooks/callback-secret/", webhooks.callback_secret, name="webhook-callback-secret"),
    path("webhooks/deliveries/<str:delivery_id>/resend/", webhooks.delivery_resend, name="webhook-delivery-resend"),
    path("webhooks/<str:endpoint_id>/", webhooks.endpoint_detail, name="webhook-endpoint"),
    path("webhooks/<str:endpoint_id>/enabled/", webhooks.endpoint_enabled, name="webhook-endpoint-enabled"),
    path("webhooks/<str:endpoint_id>/test/", webhooks.endpoint_test, name="webhook-endpoint-test"),
    path("webhooks/<str:endpoint_id>/rotate/", webhooks.endpoint_rotate, name="webhook-endpoint-rotate"),
    path("webhooks/<str:endpoint_id>/delete/", webhooks.endpoint_delete, name="webhook-endpoint-delete"),
]
