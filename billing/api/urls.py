"""/v1 routes of billing."""
from django.urls import path

from billing.api import views

urlpatterns = [
    path("balance", views.BalanceView.as_view(), name="balance"),
    path("balance/transactions", views.TransactionListView.as_view(), name="balance-transactions"),
    path("pricing", views.PricingView.as_view(), name="pricing"),
    path("billing/savings", views.SavingsView.as_view(), name="billing-savings"),
    path("invoices", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/<public_id:invoice_id>", views.InvoiceDetailView.as_view(), name="invoice-detail"),
    path("invoices/<public_id:invoice_id>/pdf", views.InvoicePdfView.as_view(), name="invoice-pdf"),
]
