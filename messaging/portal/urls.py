"""/portal routes of messaging, in the `portal` namespace (included from accounts/portal/urls.py)."""
from django.urls import path

from messaging.portal import views

urlpatterns = [
    path("messages/", views.message_list, name="messages"),
    # Before messages/<message_id>/, which would take "send" and "quote" for ids.
    path("messages/send/", views.message_send, name="message-send"),
    path("messages/quote/", views.message_quote, name="message-quote"),
    path("messages/<public_id:message_id>/", views.message_detail, name="message-detail"),
    path("messages/<public_id:message_id>/cancel/", views.message_cancel, name="message-cancel"),
    path("templates/", views.template_list, name="templates"),
    path("templates/new/", views.template_create, name="template-create"),
    path("templates/<public_id:template_id>/edit/", views.template_edit, name="template-edit"),
    path("templates/<public_id:template_id>/delete/", views.template_delete, name="template-delete"),
]
