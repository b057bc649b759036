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

# Sender IDs (issue 12 section 3): compliance/api/sender_ids.py
from compliance.api import sender_ids as sender_id_views  # noqa: E402

urlpatterns += [
    path("sender-ids", sender_id_views.SenderIdListView.as_view(), name="sender-id-list"),
    path("sender-ids/<public_id:sender_id>", sender_id_views.SenderIdDetailView.as_view(), name="sender-id-detail"),
    path("sender-ids/<public_id:sender_id>/documents", sender_id_views.SenderIdDocumentsView.as_view(),
         name="sender-id-documents"),
]
