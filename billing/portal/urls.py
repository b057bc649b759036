"""/portal/billing/ routes, in the `portal` namespace (included from accounts/portal/urls.py). The invoices
pages are mounted beside these at billing/invoices/ (billing/portal/invoice_urls.py)."""
from django.urls import path

from billing.portal import views

urlpatterns = [
    path("", views.overview, name="billing"),
    path("ledger/", views.ledger, name="billing-ledger"),
    path("usage/", views.usage, name="billing-usage"),
    path("prices/", views.prices, name="billing-prices"),
    path("savings/", views.savings_calculator, name="billing-savings"),
    path("settings/", views.settings_page, name="billing-settings"),
]
