"""Portal pages of invoices: the list, one invoice as a page that reads like the PDF, and the PDF downloads."""
from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.portal.decorators import portal_view
from billing import invoices, selectors
from billing.errors import InvoiceNotFound
from billing.models import Invoice
from billing.pdf import pdf_response


def _invoice(request: HttpRequest, invoice_id: str) -> Invoice:
    # Another tenant's invoice, or a draft, is the same 404 as a missing one.
    try:
        return selectors.invoice_get(tenant=request.tenant, public_id=invoice_id)
    except InvoiceNotFound:
        raise Http404("not found") from None


@portal_view("billing.view", methods=("GET", "HEAD"))
def invoice_list(request: HttpRequest) -> HttpResponse:
    rows = selectors.invoice_list(tenant=request.tenant).order_by("-period", "-pk")
    return render(request, "portal/billing/invoices/list.html", {"invoices": rows})


@portal_view("billing.view", methods=("GET", "HEAD"))
def invoice_detail(request: HttpRequest, invoice_id: str) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    notes = list(invoice.credit_notes.all())
    return render(request, "portal/billing/invoices/detail.html", {
        "invoice": invoice, "lines": list(invoice.lines.all()), "credit_notes": notes,
        "net_total": invoices.invoice_net_total(invoice=invoice) if notes else None,
        "tax_percent": invoice.tax_rate * 100, "payment_note": settings.INVOICE_PAYMENT_NOTE,
        "issuer_email": settings.INVOICE_ISSUER_EMAIL})


@portal_view("billing.view", methods=("GET", "HEAD"))
def invoice_pdf(request: HttpRequest, invoice_id: str) -> HttpResponse:
    return pdf_response(_invoice(request, invoice_id))


@portal_view("billing.view", methods=("GET", "HEAD"))
def credit_note_pdf(request: HttpRequest, invoice_id: str, credit_note_id: str) -> HttpResponse:
    invoice = _invoice(request, invoice_id)
    try:
        note = selectors.credit_note_get(tenant=request.tenant, invoice=invoice, public_id=credit_note_id)
    except InvoiceNotFound:
        raise Http404("not found") from None
    return pdf_response(note)
