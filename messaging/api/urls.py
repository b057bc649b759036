"""/v1 routes of messaging."""
from django.urls import path

from messaging.api import views

urlpatterns = [
    path("messages", views.MessageListView.as_view(), name="message-list"),
    path("messages/quote", views.MessageQuoteView.as_view(), name="message-quote"),
    path("messages/batch", views.MessageBatchView.as_view(), name="message-batch"),
    path("messages/<public_id:message_id>", views.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<public_id:message_id>/cancel", views.MessageCancelView.as_view(), name="message-cancel"),
    path("usage", views.UsageView.as_view(), name="usage"),
    path("templates", views.TemplateListView.as_view(), name="template-list"),
    path("templates/<public_id:template_id>", views.TemplateDetailView.as_view(), name="template-detail"),
]
