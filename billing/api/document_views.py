"""Invoice documents over the API (API.md "Invoices": GET .../invoices/{id}/pdf).

The PDF goes out as a plain Django HttpResponse, so no DRF renderer touches it; only
errors pass through the renderers, and always as the JSON error body: the negotiation
below ignores `Accept`, so a client asking for `application/pdf` gets the PDF (or a
JSON error), never a 406."""

from __future__ import annotations

import uuid

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from billing import documents, selectors
from core.api.schema import ERRORS, ErrorOut
from core.auth import HasStorefrontScope
from core.errors import Forbidden, NotFound


class JsonErrorsNegotiation(BaseContentNegotiation):
    """Whatever the client accepts: the first parser, the first renderer (JSON)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _invoice(invoice_id: str):
    """selectors.invoice_get, with an id that is not a UUID also 404: the selector catches
    ValueError, but Django's UUIDField raises ValidationError (a 400) for such ids."""
    try:
        uuid.UUID(invoice_id)
    except ValueError:
        raise NotFound("invoice_not_found", "No such invoice.") from None
    return selectors.invoice_get(invoice_id)


def _filename(invoice) -> str:
    """The file name without `.pdf`: the number, or `DRAFT-<id>` for a draft without one."""
    name = invoice.number or f"{documents.DRAFT}-{invoice.pk}"
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)


class InvoicePdfApi(APIView):
    permission_classes = [HasStorefrontScope]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonErrorsNegotiation

    @extend_schema(
        operation_id="billing_invoices_pdf",
        responses={(200, "application/pdf"): OpenApiTypes.BINARY, 404: ErrorOut, **ERRORS},
        tags=["billing"],
    )
    def get(self, request, invoice_id: str):
        invoice = _invoice(invoice_id)
        principal = request.user
        if principal.kind == "customer" and principal.customer_id != invoice.customer.customer_id:
            raise Forbidden("forbidden", "This belongs to another customer.")
        response = HttpResponse(documents.invoice_pdf(invoice), content_type="application/pdf")
        response["Content-Disposition"] = f'inline; filename="{_filename(invoice)}.pdf"'
        return response
