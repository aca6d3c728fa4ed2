"""The email after each failed renewal charge (API.md dunning): HTML and text, with a
link to update the card and when the next attempt is; a last one when dunning ends."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from billing.models import Invoice
from core.money import display

logger = logging.getLogger(__name__)


def dunning_email_send(*, invoice_id: str, attempt: int, final: bool) -> bool:
    invoice = Invoice.objects.select_related("customer", "plan").filter(pk=invoice_id).first()
    if invoice is None or not invoice.customer.email:
        logger.info("dunning email for %s not sent: no invoice or no email", invoice_id)
        return False
    customer = invoice.customer
    context = {
        "customer": customer,
        "invoice": invoice,
        "attempt": attempt,
        "final": final,
        "amount": display(invoice.total_minor - invoice.amount_paid_minor, invoice.currency),
        "plan_name": invoice.plan.name if invoice.plan else "",
        "next_attempt_at": invoice.next_attempt_at,
        "update_url": settings.BILLING_UPDATE_CARD_URL.format(customer_id=customer.customer_id),
    }
    subject = (
        f"Your subscription was cancelled: invoice {invoice.number} could not be paid"
        if final
        else f"Payment failed for invoice {invoice.number}: please update your card"
    )
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("billing/email/dunning.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[customer.email],
    )
    message.attach_alternative(render_to_string("billing/email/dunning.html", context), "text/html")
    message.send()
    return True
