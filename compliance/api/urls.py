"""/v1 routes of compliance."""
from django.urls import path

from compliance.api import consents, views

urlpatterns = [
    path("countries", views.CountryListView.as_view(), name="country-list"),
    path("countries/<str:iso>", views.CountryDetailView.as_view(), name="country-detail"),
    path("geo-permissions", views.GeoPermissionsView.as_view(), name="geo-permissions"),
    path("consents", consents.ConsentListView.as_view(), name="consent-list"),
    path("suppressions", consents.SuppressionListView.as_view(), name="suppression-list"),
    path("suppressions/<public_id:suppression_id>", consents.SuppressionDetailView.as_view(), name="suppression-detail"),
    path("erasure-requests", consents.ErasureRequestView.as_view(), name="erasure-request-create"),
]
