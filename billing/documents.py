"""An invoice as a document: the data to print (`invoice_document`), the printable HTML
page the admin shows too (`invoice_html`) and the same page as a PDF (`invoice_pdf`,
fpdf2, pure Python).

Every amount is formatted from integer minor units by core.money (never a float); dates
are the invoice's own (recorded on the customer's clock), shown as UTC dates. The seller
comes from settings: BILLING_SELLER_NAME and BILLING_SELLER_ADDRESS (lines separated by
newlines). The PDF uses a core font (Helvetica, Windows-1252: Latin-1 and the euro sign);
a character it cannot encode is replaced (an accent dropped, else "?"), never an error.
The output is deterministic: the PDF's creation date is the invoice's.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

from django.conf import settings
from django.template.loader import render_to_string
from fpdf import FPDF
from fpdf.fonts import FontFace

from billing.models import Invoice, InvoiceStatus
from core.money import display

DRAFT = "DRAFT"
# PDF core fonts take one byte per character; Windows-1252 is Latin-1 plus the euro sign,
# typographic quotes and dashes.
PDF_ENCODING = "cp1252"


def _date(value: datetime | None) -> str:
    return value.astimezone(UTC).date().isoformat() if value else ""


def _money(minor: int, currency: str) -> str:
    """Money for people: "$29.00", "-$5.80", "EUR 10.00" (a sign before the symbol)."""
    text = display(abs(minor), currency)
    return f"-{text}" if minor < 0 else text


def _seller_address() -> list[str]:
    address = getattr(settings, "BILLING_SELLER_ADDRESS", "") or ""
    lines = address.splitlines() if isinstance(address, str) else [str(x) for x in address]
    return [line.strip() for line in lines if line.strip()]


def invoice_document(invoice: Invoice) -> dict:
    """What an invoice document shows, every value a display string."""
    cur = invoice.currency
    customer = invoice.customer
    plan = invoice.plan
    is_draft = not invoice.number or invoice.status == InvoiceStatus.DRAFT
    number = invoice.number or DRAFT
    issued = invoice.finalized_at or invoice.created_at
    money = {
        "subtotal": _money(invoice.subtotal_minor, cur),
        "discount": _money(invoice.discount_minor, cur),
        "credit_applied": _money(invoice.credit_applied_minor, cur),
        "total": _money(invoice.total_minor, cur),
        "amount_paid": _money(invoice.amount_paid_minor, cur),
        "amount_due": _money(invoice.amount_due_minor, cur),
        "refunded": _money(invoice.amount_refunded_minor, cur),
    }
    # The totals block, in print order; discount, credit and refunds only when there are.
    totals = [{"label": "Subtotal", "value": money["subtotal"], "strong": False}]
    if invoice.discount_minor:
        totals.append(
            {"label": "Discount", "value": _money(-invoice.discount_minor, cur), "strong": False}
        )
    if invoice.credit_applied_minor:
        totals.append(
            {
                "label": "Credit applied",
                "value": _money(-invoice.credit_applied_minor, cur),
                "strong": False,
            }
        )
    totals += [
        {"label": "Total", "value": money["total"], "strong": True},
        {"label": "Amount paid", "value": money["amount_paid"], "strong": False},
        {"label": "Amount due", "value": money["amount_due"], "strong": True},
    ]
    if invoice.amount_refunded_minor:
        totals.append({"label": "Refunded", "value": money["refunded"], "strong": False})
    dates = {
        "issued": _date(issued),
        "paid": _date(invoice.paid_at),
        "voided": _date(invoice.voided_at),
        "next_attempt": _date(invoice.next_attempt_at),
    }
    period = {"start": _date(invoice.period_start), "end": _date(invoice.period_end)}
    details = [
        {"label": "Invoice number", "value": number},
        {"label": "Status", "value": invoice.get_status_display()},
        {"label": "Issued", "value": dates["issued"]},
        {"label": "Period", "value": f"{period['start']} to {period['end']}"},
    ]
    if plan is not None:
        details.append({"label": "Plan", "value": plan.name})
    for key, label in (("paid", "Paid"), ("voided", "Voided"), ("next_attempt", "Next attempt")):
        if dates[key]:
            details.append({"label": label, "value": dates[key]})
    return {
        "title": f"Draft invoice {invoice.pk}" if is_draft else f"Invoice {number}",
        "id": str(invoice.pk),
        "number": number,
        "is_draft": is_draft,
        "status": invoice.status,
        "status_label": invoice.get_status_display(),
        "currency": cur,
        "seller": {
            "name": getattr(settings, "BILLING_SELLER_NAME", "Growth Engine"),
            "address": _seller_address(),
        },
        "customer": {
            "id": customer.customer_id,
            "name": customer.name,
            "email": customer.email,
        },
        "plan": plan.name if plan is not None else "",
        "dates": dates,
        "period": period,
        "details": details,
        "lines": [
            {
                "kind": line.kind,
                "description": line.description,
                "quantity": line.quantity,
                "amount": _money(line.amount_minor, cur),
            }
            for line in invoice.lines.all()
        ],
        **money,
        "totals": totals,
    }


def invoice_html(invoice: Invoice) -> str:
    """A clean printable page (templates/billing/invoice.html); the admin shows it too."""
    return render_to_string("billing/invoice.html", {"doc": invoice_document(invoice)})


# --- PDF ----------------------------------------------------------------------------------


def pdf_text(value: object) -> str:
    """`value` as text the PDF core font can encode: characters outside Windows-1252 lose
    their accents ("ő" -> "o") or become "?"; control characters become spaces."""
    out = []
    for char in str(value):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(" ")
            continue
        try:
            char.encode(PDF_ENCODING)
        except UnicodeEncodeError:
            base = "".join(
                c
                for c in unicodedata.normalize("NFKD", char)
                if not unicodedata.combining(c) and _encodable(c)
            )
            out.append(base or "?")
        else:
            out.append(char)
    return "".join(out)


def _encodable(char: str) -> bool:
    try:
        char.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    return True


INK = (31, 41, 51)
MUTED = (100, 110, 120)
RULE = (210, 214, 220)


class _InvoicePdf(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self._footer_text = footer_text
        self.core_fonts_encoding = PDF_ENCODING

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"{self._footer_text} - page {self.page_no()}/{{nb}}", align="C")


def invoice_pdf(invoice: Invoice, *, compress: bool = True) -> bytes:
    """The invoice document as a PDF (A4). `compress=False` leaves the page content
    readable (tests look for the text in it)."""
    doc = invoice_document(invoice)
    t = pdf_text
    seller = doc["seller"]
    pdf = _InvoicePdf(footer_text=t(f"{seller['name']} - {doc['title']}"))
    pdf.set_compression(compress)
    pdf.set_creation_date(invoice.finalized_at or invoice.created_at)
    pdf.set_title(doc["title"])
    pdf.set_author(str(seller["name"]))
    pdf.set_creator("Growth Engine billing")
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    width = pdf.epw

    # Header: the seller on the left, the document's name and number on the right.
    top = pdf.get_y()
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(width * 0.6, 8, t(seller["name"]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=9)
    pdf.set_text_color(*MUTED)
    for line in seller["address"]:
        pdf.multi_cell(width * 0.6, 4.5, t(line), new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()
    pdf.set_xy(pdf.l_margin + width * 0.6, top)
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 18)
    heading = "DRAFT INVOICE" if doc["is_draft"] else "INVOICE"
    pdf.cell(width * 0.4, 8, heading, align="R", new_x="LEFT", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    pdf.cell(width * 0.4, 6, t(doc["number"]), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(left_bottom, pdf.get_y()) + 6)

    # Billed to, and the invoice's details.
    block_top = pdf.get_y()
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(width / 2, 5, "BILLED TO", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*INK)
    customer = doc["customer"]
    pdf.set_font("Helvetica", "B", 10)
    pdf.multi_cell(
        width / 2 - 4, 5, t(customer["name"] or customer["id"]), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Helvetica", size=9)
    for value in (customer["email"], f"Customer {customer['id']}"):
        if value:
            pdf.multi_cell(width / 2 - 4, 4.5, t(value), new_x="LMARGIN", new_y="NEXT")
    left_bottom = pdf.get_y()
    pdf.set_y(block_top)
    for row in doc["details"]:
        pdf.set_x(pdf.l_margin + width / 2)
        pdf.set_font("Helvetica", size=9)
        pdf.set_text_color(*MUTED)
        pdf.cell(width * 0.2, 5, t(row["label"]))
        pdf.set_text_color(*INK)
        pdf.multi_cell(width * 0.3, 5, t(row["value"]), align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(left_bottom, pdf.get_y()) + 8)

    # The lines.
    pdf.set_draw_color(*RULE)
    pdf.set_font("Helvetica", size=9)
    heading_style = FontFace(emphasis="BOLD", color=INK, fill_color=(241, 243, 245))
    with pdf.table(
        col_widths=(62, 14, 24),
        text_align=("LEFT", "RIGHT", "RIGHT"),
        headings_style=heading_style,
        borders_layout="HORIZONTAL_LINES",
        line_height=6,
        padding=1.5,
    ) as table:
        header = table.row()
        for name in ("Description", "Qty", "Amount"):
            header.cell(name)
        for line in doc["lines"]:
            row = table.row()
            row.cell(t(line["description"]))
            row.cell(str(line["quantity"]))
            row.cell(t(line["amount"]))
    pdf.ln(4)

    # Totals, right-aligned.
    for total in doc["totals"]:
        pdf.set_x(pdf.l_margin + width * 0.5)
        pdf.set_font("Helvetica", "B" if total["strong"] else "", 10)
        pdf.cell(width * 0.3, 6.5, t(total["label"]))
        pdf.cell(width * 0.2, 6.5, t(total["value"]), align="R", new_x="LMARGIN", new_y="NEXT")

    if doc["is_draft"]:
        pdf.ln(8)
        pdf.set_font("Helvetica", "B", 11)
        pdf.set_text_color(180, 35, 24)
        pdf.multi_cell(
            width,
            6,
            "DRAFT - this invoice is not final; nothing is due yet.",
            new_x="LMARGIN",
            new_y="NEXT",
        )
    return bytes(pdf.output())
