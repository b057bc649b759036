"""/portal/compliance/sender-ids/ routes, in the `portal` namespace (included from accounts/portal/urls.py)."""
from django.urls import path

from compliance.portal import sender_ids

urlpatterns = [
    path("", sender_ids.sender_id_list, name="sender-ids"),
]
