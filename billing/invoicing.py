"""Invoices: build and finalise one (lines, discount, credit, a gapless number), and
what a payment's outcome does to the invoice and its subscription (paid, a decline,
dunning's end). Everything here runs inside the caller's transaction, with the
subscription and customer already locked (billing.locks order); nothing here calls the
gateway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F

from billing import events, lifecycle_log, locks
from billing.engine import invoices as composer
from billing.models import (
    BillingCustomer,
    BillingReason,
    CreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Plan,
    Subscription,
)
from core.money import format_amount
from coupons import selectors as coupon_selectors
from coupons import services as coupon_services

logger = logging.getLogger(__name__)

COUNTER = "invoice"


@dataclass(frozen=True)
class Charge:
    kind: str
    description: str
    amount: int


def invoice_payload(invoice: Invoice) -> dict:
    return payload_of(
        invoice_id=invoice.pk,
        number=invoice.number,
        customer_id=invoice.customer.customer_id,
        subscription_id=invoice.subscription_id,
        billing_reason=invoice.billing_reason,
        status=invoice.status,
        currency=invoice.currency,
        total_minor=invoice.total_minor,
        amount_paid_minor=invoice.amount_paid_minor,
        plan_code=invoice.plan.code if invoice.plan is not None else None,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
    )


def payload_of(
    *,
    invoice_id,
    number,
    customer_id,
    subscription_id,
    billing_reason,
    status,
    currency,
    total_minor,
    amount_paid_minor,
    plan_code,
    period_start,
    period_end,
) -> dict:
    """An invoice event's payload from its values (the bulk paths read them as columns,
    without building models)."""
    return {
        "invoice_id": str(invoice_id),
        "number": number,
        "customer_id": customer_id,
        "subscription_id": str(subscription_id) if subscription_id else None,
        "billing_reason": billing_reason,
        "status": status,
        "currency": currency,
        "total": format_amount(total_minor, currency),
        "amount_paid": format_amount(amount_paid_minor, currency),
        "plan": plan_code,
        "period_start": period_start.isoformat(),
        "period_end": period_end.isoformat(),
    }


def _discount_for(sub: Subscription, plan: Plan, subtotal: int, reason: str) -> tuple[int, str]:
    """The coupon's discount on this invoice, counting it against the coupon's duration:
    only period invoices with something to charge count (API.md)."""
    if sub.coupon_id is None or subtotal <= 0 or reason == BillingReason.SUBSCRIPTION_UPDATE:
        return 0, ""
    if sub.discount_remaining is not None and sub.discount_remaining <= 0:
        return 0, ""
    discount, description = coupon_selectors.subscription_discount(
        coupon_id=sub.coupon_id, sku=plan.code, amount_minor=subtotal, currency=plan.currency
    )
    if sub.discount_remaining is not None:
        sub.discount_remaining -= 1
        Subscription.objects.filter(pk=sub.pk).update(discount_remaining=sub.discount_remaining)
    return discount, description


def _take_credit(customer: BillingCustomer, wanted: int) -> int:
    """Use up to `wanted` of the customer's credit (conditional update, never below 0)."""
    if wanted <= 0:
        return 0
    balance = BillingCustomer.objects.filter(pk=customer.pk).values_list(
        "credit_balance_minor", flat=True
    )[0]
    take = min(balance, wanted)
    if take <= 0:
        return 0
    moved = BillingCustomer.objects.filter(pk=customer.pk, credit_balance_minor__gte=take).update(
        credit_balance_minor=F("credit_balance_minor") - take
    )
    return take if moved else 0


def invoice_create(
    *,
    sub: Subscription,
    plan: Plan,
    reason: str,
    period_start: datetime,
    period_end: datetime,
    charges: list[Charge],
    at: datetime,
) -> Invoice:
    """Build, finalise and number an invoice for `sub` (locked by the caller). A zero
    total is paid at once; otherwise it is `open` and the caller charges it after commit.
    The unique constraint invoice_one_per_period stops a second invoice for a period."""
    customer = sub.customer
    subtotal = sum(c.amount for c in charges)
    discount, discount_text = _discount_for(sub, plan, subtotal, reason)
    credit = _take_credit(customer, subtotal - discount)
    composed = composer.compose(
        [composer.Line(c.kind, c.description, c.amount) for c in charges],
        discount=discount,
        discount_description=discount_text,
        credit_available=credit,
    )
    if composed.credit_applied != credit:  # never: compose caps credit by the same bound
        raise AssertionError("credit taken and applied differ")
    invoice = Invoice(
        customer=customer,
        subscription=sub,
        plan=plan,
        billing_reason=reason,
        status=InvoiceStatus.DRAFT,
        currency=plan.currency,
        period_start=period_start,
        period_end=period_end,
        subtotal_minor=composed.subtotal,
        discount_minor=composed.discount,
        credit_applied_minor=composed.credit_applied,
        total_minor=composed.total,
        created_at=at,
    )
    invoice.save(force_insert=True)
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=i,
            kind=line.kind,
            description=line.description[:200],
            quantity=line.quantity,
            amount_minor=line.amount,
        )
        for i, line in enumerate(composed.lines)
    )
    if credit:
        CreditEntry.objects.create(
            customer=customer,
            kind=CreditEntry.Kind.APPLIED,
            amount_minor=-credit,
            currency=plan.currency,
            invoice=invoice,
            description="Applied to an invoice",
        )
    _finalise(invoice, at)
    if invoice.total_minor == 0:
        _mark_paid(invoice, sub, at)
    return invoice


def number_text(number: int) -> str:
    return f"{settings.BILLING_INVOICE_PREFIX}-{number:06d}"


def _finalise(invoice: Invoice, at: datetime) -> None:
    """draft -> open with the next number. The counter is locked last and held to the
    commit: gapless, at the cost of finalisations taking turns (docs/decisions.md)."""
    invoice.number = number_text(locks.counter_take(COUNTER))
    invoice.status = InvoiceStatus.OPEN
    invoice.finalized_at = at
    Invoice.objects.filter(pk=invoice.pk).update(
        number=invoice.number, status=invoice.status, finalized_at=at
    )


def _mark_paid(invoice: Invoice, sub: Subscription | None, at: datetime) -> None:
    invoice.status = InvoiceStatus.PAID
    invoice.amount_paid_minor = invoice.total_minor
    invoice.paid_at = at
    invoice.next_attempt_at = None
    Invoice.objects.filter(pk=invoice.pk).update(
        status=invoice.status,
        amount_paid_minor=invoice.amount_paid_minor,
        paid_at=at,
        next_attempt_at=None,
    )
    events.emit(events.INVOICE_PAID, invoice_payload(invoice), at=at)


def invoice_paid(*, invoice: Invoice, sub: Subscription | None, at: datetime) -> None:
    """A charge of the whole amount due succeeded (locked rows)."""
    _mark_paid(invoice, sub, at)
    if sub is None:
        return
    if invoice.billing_reason == BillingReason.SUBSCRIPTION_UPDATE and invoice.plan is not None:
        plan_switch(sub, invoice.plan, at, "upgrade_paid")
    if sub.status in ("incomplete", "past_due", "trialing"):
        if sub.status == "past_due":
            sub.past_due_since = sub.grace_ended_at = None
            Subscription.objects.filter(pk=sub.pk).update(past_due_since=None, grace_ended_at=None)
        lifecycle_log.transition(sub, "active", "payment_succeeded", at)
        if sub.coupon_order_id and invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE:
            order_id = sub.coupon_order_id
            transaction.on_commit(
                lambda: coupon_services.subscription_coupon_confirm(order_id=order_id)
            )


def plan_switch(sub: Subscription, plan: Plan, at: datetime, reason: str) -> None:
    """The plan changes now (a paid upgrade, a change in a trial); a scheduled change it
    overrides is dropped."""
    old = sub.plan.code
    sub.plan, sub.pending_plan = plan, None
    Subscription.objects.filter(pk=sub.pk).update(plan=plan, pending_plan=None)
    lifecycle_log.record(sub, sub.status, reason, at)
    events.emit(
        events.SUBSCRIPTION_UPDATED,
        {**lifecycle_log.payload(sub), "previous_plan": old},
        at=at,
    )


def invoice_failed(*, invoice: Invoice, sub: Subscription | None, code: str, at: datetime) -> str:
    """A charge was declined (locked rows). What it means depends on the invoice: the
    first charge of a subscribe or of a trial's end ends the subscription (`expired`), an
    upgrade's leaves everything as it was, a renewal's starts or continues dunning.
    Returns what happened: "expired", "upgrade_declined", "retry_scheduled",
    "uncollectible"."""
    events.emit(
        events.INVOICE_PAYMENT_FAILED,
        {**invoice_payload(invoice), "failure_code": code, "attempt_count": invoice.attempt_count},
        at=at,
    )
    if sub is None:
        return "retry_scheduled"
    if invoice.billing_reason == BillingReason.SUBSCRIPTION_UPDATE:
        invoice_void(invoice, at)
        return "upgrade_declined"
    if sub.status in ("incomplete", "trialing"):
        invoice_void(invoice, at)
        lifecycle_log.transition(sub, "expired", "first_payment_failed", at)
        Subscription.objects.filter(pk=sub.pk).update(ended_at=at)
        if sub.coupon_order_id:
            order_id = sub.coupon_order_id
            transaction.on_commit(
                lambda: coupon_services.subscription_coupon_release(order_id=order_id)
            )
        return "expired"
    return _dunning_step(invoice, sub, at)


def invoice_void(invoice: Invoice, at: datetime) -> None:
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = at
    invoice.next_attempt_at = None
    Invoice.objects.filter(pk=invoice.pk).update(status="void", voided_at=at, next_attempt_at=None)
    _return_credit(invoice, at)


def _return_credit(invoice: Invoice, at: datetime) -> None:
    """Credit applied to an invoice that will never be paid goes back to the customer."""
    if not invoice.credit_applied_minor:
        return
    CreditEntry.objects.create(
        customer_id=invoice.customer_id,
        kind=CreditEntry.Kind.ADJUSTMENT,
        amount_minor=invoice.credit_applied_minor,
        currency=invoice.currency,
        invoice=invoice,
        reference=f"unapplied:{invoice.pk}",
        description=f"Credit returned from {invoice.number}",
    )
    BillingCustomer.objects.filter(pk=invoice.customer_id).update(
        credit_balance_minor=F("credit_balance_minor") + invoice.credit_applied_minor
    )


def retry_schedule() -> list[int]:
    return list(settings.BILLING_DUNNING_RETRY_DAYS)


def _dunning_step(invoice: Invoice, sub: Subscription, at: datetime) -> str:
    """Dunning (API.md): retries on BILLING_DUNNING_RETRY_DAYS counted from the first
    failure, an email after each failure; after the last, uncollectible + cancelled."""
    days = retry_schedule()
    first_failed = invoice.first_failed_at or at
    failures = invoice.attempt_count  # every attempt of an open invoice so far failed
    if failures <= len(days):
        invoice.first_failed_at = first_failed
        invoice.next_attempt_at = first_failed + timedelta(days=days[failures - 1])
        Invoice.objects.filter(pk=invoice.pk).update(
            first_failed_at=first_failed, next_attempt_at=invoice.next_attempt_at
        )
        if sub.status == "active":
            lifecycle_log.transition(sub, "past_due", "renewal_payment_failed", at)
            sub.past_due_since = at
            Subscription.objects.filter(pk=sub.pk).update(past_due_since=at)
        _email_after_commit(invoice, final=False)
        return "retry_scheduled"
    invoice.status = InvoiceStatus.UNCOLLECTIBLE
    invoice.next_attempt_at = None
    Invoice.objects.filter(pk=invoice.pk).update(status="uncollectible", next_attempt_at=None)
    _return_credit(invoice, at)
    subscription_end(sub, "cancelled", "dunning_exhausted", at)
    _email_after_commit(invoice, final=True)
    return "uncollectible"


def subscription_end(sub: Subscription, status: str, reason: str, at: datetime) -> None:
    lifecycle_log.transition(sub, status, reason, at)
    sub.ended_at = at
    sub.cancelled_at = sub.cancelled_at or at
    Subscription.objects.filter(pk=sub.pk).update(ended_at=at, cancelled_at=sub.cancelled_at)
    events.emit(events.SUBSCRIPTION_CANCELLED, lifecycle_log.payload(sub), at=at)


def _email_after_commit(invoice: Invoice, *, final: bool) -> None:
    from billing import tasks  # tasks import the services

    invoice_id, attempt = str(invoice.pk), invoice.attempt_count
    transaction.on_commit(lambda: tasks.queue(tasks.send_dunning_email, invoice_id, attempt, final))
