"""/v1 routes of accounts."""
from django.urls import path

from accounts.api import views

urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("api-keys", views.ApiKeyListView.as_view(), name="api-key-list"),
    path("api-keys/<public_id:api_key_id>", views.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("ip-allowlist", views.IpAllowlistListView.as_view(), name="ip-allowlist-list"),
    path("ip-allowlist/<public_id:entry_id>", views.IpAllowlistDetailView.as_view(), name="ip-allowlist-detail"),
]
