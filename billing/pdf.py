"""Invoices and credit notes as PDF (reportlab, A4): issuer, bill-to, number and dates, numbered lines, totals.

Everything printed comes from the stored document (an issued invoice never changes), except the payment note
(INVOICE_PAYMENT_NOTE). Text from tenants and staff is escaped: reportlab's Paragraph reads markup.
"""
from __future__ import annotations

import io
from decimal import Decimal
from xml.sax.saxutils import escape

from django.conf import settings
from django.http import HttpResponse
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.models import CreditNote, Invoice
from billing.money import money_text

INK, MUTED, RULE, BAND = (colors.HexColor(c) for c in ("#111827", "#6b7280", "#d1d5db", "#f3f4f6"))
_styles = getSampleStyleSheet()
BODY = ParagraphStyle("body", parent=_styles["Normal"], fontName="Helvetica", fontSize=9, leading=12, textColor=INK)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8, leading=10, textColor=MUTED)
TITLE = ParagraphStyle("title", parent=BODY, fontName="Helvetica-Bold", fontSize=20, leading=24)
RIGHT = ParagraphStyle("right", parent=BODY, alignment=TA_RIGHT)
RIGHT_BOLD = ParagraphStyle("right_bold", parent=RIGHT, fontName="Helvetica-Bold", fontSize=10)
HEAD = ParagraphStyle("head", parent=BODY, fontName="Helvetica-Bold", fontSize=8, textColor=MUTED)
HEAD_RIGHT = ParagraphStyle("head_right", parent=HEAD, alignment=TA_RIGHT)


def _text(value: str, style: ParagraphStyle = BODY) -> Paragraph:
    return Paragraph(escape(value or "").replace("\n", "<br/>"), style)


def _amount(value: Decimal | None, currency: str = "") -> str:
    if value is None:
        return ""
    return f"{value:,.2f} {currency}".strip()


def _block(title: str, name: str, address: str, tax_id: str) -> list:
    cells = [_text(title.upper(), HEAD), Paragraph(f"<b>{escape(name)}</b>", BODY)]
    if address:
        cells.append(_text(address))
    if tax_id:
        cells.append(_text(f"Tax ID: {tax_id}"))
    return cells


def _document(*, heading: str, title: str, facts: list[tuple[str, str]], issuer: tuple, bill_to: tuple, head: list[str],
              rows: list[list], widths: list[float], totals: list[tuple[str, str]], notes: list[str]) -> bytes:
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
                            bottomMargin=18 * mm, title=title, author=issuer[0], subject=title)
    facts_table = Table([[_text(k, SMALL), _text(v, RIGHT)] for k, v in facts], colWidths=[32 * mm, 48 * mm])
    facts_table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    header = Table([[[Paragraph(escape(heading), TITLE), Spacer(1, 4 * mm), *_block("From", *issuer)],
                     facts_table]], colWidths=[94 * mm, 80 * mm])
    header.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    bill = Table([[_block("Bill to", *bill_to)]], colWidths=[174 * mm])
    bill.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), BAND), ("BOX", (0, 0), (-1, -1), 0.5, RULE),
                              ("LEFTPADDING", (0, 0), (-1, -1), 8), ("TOPPADDING", (0, 0), (-1, -1), 6),
                              ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
    # Numbers (every column after the description) are right-aligned, their headings too.
    lines = Table([[_text(h, HEAD if n < 2 else HEAD_RIGHT) for n, h in enumerate(head)], *rows], colWidths=widths,
                  repeatRows=1)
    lines.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, INK), ("LINEBELOW", (0, 1), (-1, -1), 0.25, RULE),
        ("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (2, 1), (-1, -1), "RIGHT"),
        ("FONTNAME", (0, 1), (-1, -1), "Helvetica"), ("FONTSIZE", (0, 1), (-1, -1), 9)]))
    # The last of the totals (the total) in bold.
    styles = [RIGHT] * (len(totals) - 1) + [RIGHT_BOLD]
    sums = Table([[_text(label, style), _text(value, style)] for (label, value), style in zip(totals, styles, strict=True)],
                 colWidths=[50 * mm, 40 * mm], hAlign="RIGHT")
    sums.setStyle(TableStyle([("LINEABOVE", (0, -1), (-1, -1), 0.8, INK)]))
    story = [header, Spacer(1, 8 * mm), bill, Spacer(1, 8 * mm), lines, Spacer(1, 4 * mm), sums, Spacer(1, 10 * mm)]
    story += [_text(note, SMALL) for note in notes if note]
    doc.build(story)
    return buffer.getvalue()


def _issuer(doc: Invoice | CreditNote, invoice: Invoice) -> tuple:
    return (doc.issuer, invoice.issuer_address, invoice.issuer_tax_id)


def invoice_pdf(*, invoice: Invoice, lines, credit_notes=()) -> bytes:
    """The invoice as an A4 PDF; its credit notes, if any, named under the totals."""
    currency = invoice.currency
    facts = [("Invoice number", invoice.number or ("DRAFT: the month so far, not an invoice" if invoice.to_date
                                                  else "DRAFT")),
             ("Invoice date", f"{invoice.issued_at:%d %B %Y}" if invoice.issued_at else "not issued"),
             ("Period", f"{invoice.period:%B %Y} (UTC)"), ("Currency", currency),
             ("Status", invoice.get_status_display())]
    rows = [[str(line.position), _text(line.description), f"{line.quantity:,}" if line.quantity else "",
             f"{line.segments:,}" if line.segments else "",
             f"{line.unit_price.normalize():f}" if line.unit_price is not None else "", _amount(line.amount)]
            for line in lines]
    totals = [("Subtotal", _amount(invoice.subtotal, currency)),
              (f"Tax ({invoice.tax_rate * 100:.2f} %)", _amount(invoice.tax, currency)),
              ("Total", _amount(invoice.total, currency))]
    notes = [f"Corrected by credit note {note.number} of {note.issued_at:%d %B %Y}: "
             f"{_amount(note.total, currency)} ({note.reason})" for note in credit_notes]
    if invoice.status == "void":
        notes.insert(0, "This invoice is void.")
    notes.append(f"Held at the end of the period for messages not yet sent: {money_text(invoice.held_unsettled)} "
                 f"{currency} (not billed here: each is billed on the invoice of the month it is sent).")
    notes.append(settings.INVOICE_PAYMENT_NOTE)
    notes.append(f"Questions about this invoice: {settings.INVOICE_ISSUER_EMAIL}")
    return _document(
        heading="Invoice", title=f"Invoice {invoice.number}", facts=facts, issuer=_issuer(invoice, invoice),
        bill_to=(invoice.bill_to_name, invoice.bill_to_address, invoice.bill_to_tax_id),
        head=["#", "Description", "Qty", "Segments", "Unit price", f"Amount ({currency})"],
        widths=[8 * mm, 74 * mm, 18 * mm, 20 * mm, 22 * mm, 32 * mm], rows=rows, totals=totals, notes=notes)


def credit_note_pdf(*, note: CreditNote, invoice: Invoice, lines) -> bytes:
    """A credit note as an A4 PDF, naming the invoice it corrects."""
    currency = note.currency
    facts = [("Credit note number", note.number), ("Date", f"{note.issued_at:%d %B %Y}"),
             ("Corrects invoice", invoice.number), ("Invoice period", f"{invoice.period:%B %Y}"),
             ("Currency", currency)]
    rows = [[str(line.position), _text(line.description), _amount(line.amount)] for line in lines]
    totals = [("Subtotal", _amount(note.subtotal, currency)),
              (f"Tax ({note.tax_rate * 100:.2f} %)", _amount(note.tax, currency)),
              ("Total", _amount(note.total, currency))]
    return _document(
        heading="Credit note", title=f"Credit note {note.number}", facts=facts, issuer=_issuer(note, invoice),
        bill_to=(invoice.bill_to_name, invoice.bill_to_address, invoice.bill_to_tax_id),
        head=["#", "Description", f"Amount ({currency})"], widths=[8 * mm, 134 * mm, 32 * mm], rows=rows,
        totals=totals, notes=[f"Reason: {note.reason}", "A negative total is credited to you.",
                              f"Questions: {settings.INVOICE_ISSUER_EMAIL}"])


def pdf_response(document: Invoice | CreditNote) -> HttpResponse:
    """An invoice's or credit note's PDF as a download (`Content-Disposition: attachment`), named by its number.
    Call under the document's tenant (its lines are read through the scoped managers)."""
    if isinstance(document, CreditNote):
        body = credit_note_pdf(note=document, invoice=document.invoice, lines=document.lines.all())
    else:
        body = invoice_pdf(invoice=document, lines=document.lines.all(), credit_notes=document.credit_notes.all())
    response = HttpResponse(body, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{document.number or document.public_id}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response
