"""/portal/compliance/ routes, in the `portal` namespace (included from accounts/portal/urls.py)."""
from django.urls import path

from compliance.portal import overview

urlpatterns = [
    path("", overview.compliance_overview, name="compliance-overview"),
]
