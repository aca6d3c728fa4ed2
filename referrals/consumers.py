"""Billing's outbox events for referrals (at least once; each handler is idempotent by
the referral's state, under its row lock): the invitee's paid invoice converts, a credit
note (refund) rejects or claws back."""

from __future__ import annotations

from billing import events
from billing import services as billing_services
from core.money import MoneyError, parse_amount
from referrals import services


def on_invoice_paid(event_id: int, event_type: str, payload: dict) -> None:
    if not payload.get("customer_id") or not payload.get("invoice_id"):
        return  # not an invoice of a customer: nothing to convert
    currency = payload.get("currency") or "USD"
    try:
        amount = parse_amount(payload.get("amount_paid") or "0", currency)
    except MoneyError:
        amount = 0
    services.invoice_paid(
        customer_id=payload["customer_id"],
        invoice_id=payload["invoice_id"],
        amount_minor=amount,
        currency=currency,
    )


def on_credit_note(event_id: int, event_type: str, payload: dict) -> None:
    if not payload.get("customer_id") or not payload.get("invoice_id"):
        return
    services.invoice_refunded(customer_id=payload["customer_id"], invoice_id=payload["invoice_id"])


def connect() -> None:
    events.subscribe(events.INVOICE_PAID, on_invoice_paid)
    events.subscribe(events.CREDIT_NOTE_CREATED, on_credit_note)
    billing_services.testclock_work_register(services.next_due_on_clock, services.run_on_clock)
