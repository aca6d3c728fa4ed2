"""Invoice documents (billing.documents) and GET /api/v1/billing/invoices/{id}/pdf: the
data printed, the HTML page, the PDF (fpdf2), who may fetch it, and text the PDF's core
font cannot encode."""

from __future__ import annotations

import uuid

import pytest
from django.test import override_settings

from billing import documents, services
from billing.models import Invoice
from billing.tests import support as t
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db


def url(invoice_id) -> str:
    return f"/api/v1/billing/invoices/{invoice_id}/pdf"


def first_invoice(customer_id="u-1", plan="pro", coupon_code=None) -> Invoice:
    sub = services.subscription_create(
        customer_id=customer_id, plan_code=plan, coupon_code=coupon_code
    )
    return Invoice.objects.get(subscription=sub)


def fetched(invoice: Invoice) -> Invoice:
    """The invoice as the view reads it (customer and ordered lines prefetched)."""
    from billing import selectors

    return selectors.invoice_get(invoice.pk)


@pytest.fixture
def pro(db):
    return t.plan("pro", 2900)


@pytest.fixture
def paid(pro) -> Invoice:
    """u-1's first Pro invoice, 20% off: $29.00 - $5.80 = $23.20, paid."""
    CouponFactory(code="PROMO20", percent_bp=2000, duration="repeating", duration_invoices=3)
    t.customer("u-1", name="Ada Lovelace")
    invoice = first_invoice(coupon_code="PROMO20")
    assert invoice.status == "paid"
    return fetched(invoice)


# --- the document ------------------------------------------------------------------------


def test_the_document_holds_every_amount_as_display_strings(paid):
    doc = documents.invoice_document(paid)
    assert doc["number"] == paid.number
    assert doc["number"].startswith("INV-")
    assert not doc["is_draft"]
    assert doc["seller"] == {"name": "Growth Engine", "address": []}
    assert doc["customer"] == {"id": "u-1", "name": "Ada Lovelace", "email": "u-1@example.com"}
    assert doc["status"] == "paid"
    assert doc["plan"] == "Pro"
    assert [(x["kind"], x["amount"]) for x in doc["lines"]] == [
        ("subscription", "$29.00"),
        ("discount", "-$5.80"),
    ]
    assert (doc["subtotal"], doc["discount"], doc["credit_applied"]) == ("$29.00", "$5.80", "$0.00")
    assert (doc["total"], doc["amount_paid"], doc["amount_due"]) == ("$23.20", "$23.20", "$0.00")
    assert doc["refunded"] == "$0.00"
    assert [(x["label"], x["value"]) for x in doc["totals"]] == [
        ("Subtotal", "$29.00"),
        ("Discount", "-$5.80"),
        ("Total", "$23.20"),
        ("Amount paid", "$23.20"),
        ("Amount due", "$0.00"),
    ]
    assert doc["dates"]["paid"] == paid.paid_at.date().isoformat()
    assert doc["period"]["start"] == paid.period_start.date().isoformat()


@override_settings(BILLING_SELLER_NAME="Acme GmbH", BILLING_SELLER_ADDRESS="1 Main St\n\nBerlin")
def test_the_seller_comes_from_settings(paid):
    doc = documents.invoice_document(paid)
    assert doc["seller"] == {"name": "Acme GmbH", "address": ["1 Main St", "Berlin"]}
    html = documents.invoice_html(paid)
    assert "Acme GmbH" in html
    assert "1 Main St<br>Berlin" in html


def test_the_html_shows_each_line_and_the_totals(paid):
    html = documents.invoice_html(paid)
    assert html.startswith("<!doctype html>")
    assert paid.number in html
    assert "Ada Lovelace" in html
    for line in paid.lines.all():
        assert line.description in html
    for amount in ("$29.00", "-$5.80", "$23.20", "$0.00"):
        assert amount in html
    for label in ("Subtotal", "Discount", "Total", "Amount paid", "Amount due"):
        assert f"<td>{label}</td>" in html
    assert "DRAFT" not in html


def test_the_pdf_is_a_pdf_with_the_number_and_the_totals(paid):
    pdf = documents.invoice_pdf(paid, compress=False)
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert paid.number.encode() in pdf
    for text in (b"Ada Lovelace", b"$23.20", b"-$5.80", b"Amount due"):
        assert text in pdf
    # compressed (the default) it is still a PDF, and smaller
    compressed = documents.invoice_pdf(paid)
    assert compressed.startswith(b"%PDF-")
    assert len(compressed) < len(pdf)


def test_the_pdf_is_deterministic(paid):
    assert documents.invoice_pdf(paid) == documents.invoice_pdf(fetched(paid))


def test_unicode_names_and_the_euro_do_not_crash(db):
    t.plan("pro-eur", 1900, currency="EUR", name="Pro ★ Europa")
    t.customer("u-zoe", name="Zoë Ünal 名前", email="zoë@example.com", currency="EUR")
    invoice = fetched(first_invoice("u-zoe", plan="pro-eur"))
    with override_settings(BILLING_SELLER_NAME="Größe € Ltd ✓"):
        doc = documents.invoice_document(invoice)
        html = documents.invoice_html(invoice)
        pdf = documents.invoice_pdf(invoice, compress=False)
    assert doc["total"] == "€19.00"
    assert "Zoë Ünal 名前" in html
    assert "€19.00" in html
    assert pdf.startswith(b"%PDF-")
    # Windows-1252 in the page content: what it has stays, what it has not is replaced
    assert "Zoë Ünal ??".encode("cp1252") in pdf
    assert "€19.00".encode("cp1252") in pdf
    assert "Größe € Ltd ?".encode("cp1252") in pdf


def test_pdf_text_keeps_what_the_core_font_has_and_replaces_the_rest():
    assert documents.pdf_text("Zoë Ünal 名前 €5 “ok”") == "Zoë Ünal ?? €5 “ok”"
    assert documents.pdf_text("Łódź ő") == "?ódz o"
    assert documents.pdf_text("a\x00b\nc\u2028d") == "a b c d"


def test_a_draft_without_a_number_renders_as_draft(paid):
    Invoice.objects.filter(pk=paid.pk).update(
        status="draft", number=None, amount_paid_minor=0, paid_at=None
    )
    draft = fetched(paid)
    doc = documents.invoice_document(draft)
    assert (doc["number"], doc["is_draft"]) == ("DRAFT", True)
    assert "DRAFT INVOICE" in documents.invoice_html(draft)
    pdf = documents.invoice_pdf(draft, compress=False)
    assert b"DRAFT INVOICE" in pdf


# --- the endpoint --------------------------------------------------------------------------


def test_the_storefront_gets_the_pdf_inline(storefront, paid):
    response = storefront.get(url(paid.pk))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="{paid.number}.pdf"'
    assert response.content.startswith(b"%PDF-")
    assert response.content == documents.invoice_pdf(paid)


@pytest.mark.parametrize("accept", ["application/pdf", "application/json", "text/html", "*/*"])
def test_any_accept_header_gets_the_pdf_not_406(storefront, paid, accept):
    response = storefront.get(url(paid.pk), HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/pdf"


def test_an_end_customer_gets_only_their_own_invoice(customer_client, paid):
    own = customer_client("u-1").get(url(paid.pk))
    assert own.status_code == 200, own.content
    assert own.content.startswith(b"%PDF-")
    other = customer_client("u-2").get(url(paid.pk), HTTP_ACCEPT="application/pdf")
    assert other.status_code == 403
    assert other["Content-Type"] == "application/json"
    assert other.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("invoice_id", [uuid.uuid4(), "not-a-uuid", "12345", "%C3%BC"])
def test_unknown_invoice_is_404_in_json_whatever_the_accept(storefront, db, invoice_id):
    response = storefront.get(url(invoice_id), HTTP_ACCEPT="application/pdf")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "invoice_not_found"


def test_without_credentials_it_is_401(client, paid):
    response = client.get(url(paid.pk))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_draft_is_served_with_a_draft_filename(storefront, paid):
    Invoice.objects.filter(pk=paid.pk).update(
        status="draft", number=None, amount_paid_minor=0, paid_at=None
    )
    response = storefront.get(url(paid.pk))
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"] == f'inline; filename="DRAFT-{paid.pk}.pdf"'
