"""Invoices for tests that need one without a month of traffic (the two-tenant world, cross-tenant checks)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.utils import timezone

from billing.models import CreditNote, CreditNoteLine, Invoice, InvoiceLine, InvoiceLineKind, InvoiceStatus


def invoice_issued(tenant, *, period: date = date(2025, 1, 1), number: str | None = None,
                   amount: Decimal = Decimal("12.50")) -> Invoice:
    """An issued invoice of one adjustment line, made directly (a draft with its line, then issued, as the
    PostgreSQL trigger allows), numbered in a test issuer's series so no real sequence is touched."""
    invoice = Invoice.unscoped.create(tenant=tenant, issuer="Test issuer Ltd", period=period, currency="EUR",
                                      bill_to_name=tenant.name, subtotal=amount, total=amount)
    InvoiceLine.unscoped.create(tenant=tenant, invoice=invoice, position=1, kind=InvoiceLineKind.ADJUSTMENT,
                                description=f"Set-up fee {tenant.slug}", quantity=1, amount=amount)
    invoice.number = number or f"T-{tenant.slug}-{period:%Y%m}"
    invoice.status, invoice.issued_at = InvoiceStatus.ISSUED, timezone.now()
    invoice.save(update_fields=["number", "status", "issued_at"])
    return invoice


def credit_note_issued(invoice: Invoice, *, amount: Decimal = Decimal("-2.50")) -> CreditNote:
    note = CreditNote.unscoped.create(tenant_id=invoice.tenant_id, invoice=invoice, issuer=invoice.issuer,
                                      number=f"TCN-{invoice.number}", currency=invoice.currency,
                                      reason="Set-up fee reduced", subtotal=amount, tax_rate=invoice.tax_rate,
                                      tax=Decimal(0), total=amount)
    CreditNoteLine.unscoped.create(tenant_id=invoice.tenant_id, credit_note=note, position=1,
                                   description="Set-up fee reduced", amount=amount)
    return note
