"""Root URLs: /v1 (API), /portal (people), /admin (account managers), /healthz."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from messaging.carriers import views as carrier_views
from smsportal.health import healthz

# Django tries the patterns in order: messaging's first, as a send is most of the traffic.
api_v1 = [
    path("", include("messaging.api.urls")),
    path("", include("accounts.api.urls")),
    path("", include("smsportal.events.api.urls")),
    path("", include("numbers.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("compliance.api.urls")),
    path("openapi.json", SpectacularJSONAPIView.as_view(permission_classes=[], authentication_classes=[]), name="openapi"),
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="openapi", permission_classes=[], authentication_classes=[]),
         name="docs"),
]

urlpatterns = [
    path("v1/", include(api_v1)),  # first: the API is most of the traffic
    path("", RedirectView.as_view(pattern_name="portal:dashboard", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("portal/", include("accounts.portal.urls")),
    # Open to everyone: the savings calculator before sign-up (billing/portal/public_urls.py).
    path("pricing/", include("billing.portal.public_urls")),
    path("admin/", admin.site.urls),
    # Carrier callbacks (delivery receipts, inbound messages), authenticated per carrier.
    path("carriers/<slug:name>/receipts", carrier_views.carrier_receipts, name="carrier-receipts"),
    path("carriers/<slug:name>/inbound", carrier_views.carrier_inbound, name="carrier-inbound"),
]

# The database down is a 503 page with Retry-After, not a 500 (smsportal/unavailable.py).
handler500 = "smsportal.unavailable.server_error"
