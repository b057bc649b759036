"""/portal/billing/invoices/ routes, in the `portal` namespace (included from accounts/portal/urls.py)."""
from django.urls import path

from billing.portal import invoices

urlpatterns = [
    path("", invoices.invoice_list, name="invoices"),
    path("<public_id:invoice_id>/", invoices.invoice_detail, name="invoice-detail"),
    path("<public_id:invoice_id>/pdf/", invoices.invoice_pdf, name="invoice-pdf"),
    path("<public_id:invoice_id>/credit-notes/<public_id:credit_note_id>/pdf/", invoices.credit_note_pdf,
         name="credit-note-pdf"),
]
