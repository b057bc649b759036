"""/v1 routes of compliance."""
from django.urls import path

from compliance.api import views

urlpatterns = [
    path("countries", views.CountryListView.as_view(), name="country-list"),
    path("countries/<str:iso>", views.CountryDetailView.as_view(), name="country-detail"),
    path("geo-permissions", views.GeoPermissionsView.as_view(), name="geo-permissions"),
]
