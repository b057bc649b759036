"""/portal/compliance/geo/ routes, in the `portal` namespace (included from accounts/portal/urls.py)."""
from django.urls import path

from compliance.portal import geo_views

urlpatterns = [
    path("", geo_views.geo_permissions, name="geo-permissions"),
]
