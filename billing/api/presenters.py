"""Billing rows -> API.md's bodies (money as decimal strings of the currency)."""

from __future__ import annotations

from billing.models import BillingCustomer, CreditNote, Invoice, Plan, Subscription, TestClock
from billing.services import ChangePreview
from core.money import format_amount


def plan_body(plan: Plan) -> dict:
    return {
        "code": plan.code,
        "name": plan.name,
        "amount": format_amount(plan.amount_minor, plan.currency),
        "currency": plan.currency,
        "interval": plan.interval,
        "trial_days": plan.trial_days,
        "default": plan.is_default,
        "active": plan.active,
        "features": plan.features,
    }


def customer_body(c: BillingCustomer) -> dict:
    return {
        "customer_id": c.customer_id,
        "email": c.email,
        "name": c.name,
        "payment_method": c.payment_method or None,
        "credit_balance": format_amount(c.credit_balance_minor, c.currency),
        "currency": c.currency,
        "test_clock": str(c.test_clock_id) if c.test_clock_id else None,
    }


def _time(value):
    return value.isoformat() if value else None


def subscription_body(sub: Subscription, latest_invoice) -> dict:
    discount = None
    if sub.coupon_code:
        discount = {"coupon": sub.coupon_code, "remaining_invoices": sub.discount_remaining}
    return {
        "id": str(sub.pk),
        "customer_id": sub.customer.customer_id,
        "plan": sub.plan.code,
        "status": sub.status,
        "current_period_start": _time(sub.current_period_start),
        "current_period_end": _time(sub.current_period_end),
        "trial_end": _time(sub.trial_end),
        "cancel_at_period_end": sub.cancel_at_period_end,
        "pending_plan": sub.pending_plan.code if sub.pending_plan is not None else None,
        "discount": discount,
        "latest_invoice": str(latest_invoice) if latest_invoice else None,
        "created_at": _time(sub.created_at),
        "ended_at": _time(sub.ended_at),
    }


def line_body(kind: str, description: str, quantity: int, amount: int, currency: str) -> dict:
    return {
        "kind": kind,
        "description": description,
        "quantity": quantity,
        "amount": format_amount(amount, currency),
    }


def invoice_body(inv: Invoice) -> dict:
    cur = inv.currency
    return {
        "id": str(inv.pk),
        "number": inv.number,
        "customer_id": inv.customer.customer_id,
        "subscription_id": str(inv.subscription_id) if inv.subscription_id else None,
        "status": inv.status,
        "billing_reason": inv.billing_reason,
        "currency": cur,
        "period_start": _time(inv.period_start),
        "period_end": _time(inv.period_end),
        "lines": [
            line_body(x.kind, x.description, x.quantity, x.amount_minor, cur)
            for x in inv.lines.all()
        ],
        "subtotal": format_amount(inv.subtotal_minor, cur),
        "discount": format_amount(inv.discount_minor, cur),
        "credit_applied": format_amount(inv.credit_applied_minor, cur),
        "total": format_amount(inv.total_minor, cur),
        "amount_paid": format_amount(inv.amount_paid_minor, cur),
        "amount_due": format_amount(inv.amount_due_minor, cur),
        "amount_refunded": format_amount(inv.amount_refunded_minor, cur),
        "attempt_count": inv.attempt_count,
        "next_attempt_at": _time(inv.next_attempt_at),
        "paid_at": _time(inv.paid_at),
        "created_at": _time(inv.created_at),
    }


def preview_body(p: ChangePreview) -> dict:
    return {
        "plan": p.plan.code,
        "effective": p.effective,
        "amount_due": format_amount(p.amount_due, p.currency),
        "currency": p.currency,
        "lines": [line_body(x.kind, x.description, 1, x.amount, p.currency) for x in p.lines],
        "proration_date": _time(p.proration_date),
    }


def credit_note_body(note: CreditNote) -> dict:
    return {
        "id": str(note.pk),
        "number": note.number,
        "invoice": str(note.invoice_id),
        "amount": format_amount(note.amount_minor, note.currency),
        "currency": note.currency,
        "reason": note.reason,
    }


def clock_body(clock: TestClock) -> dict:
    return {
        "id": str(clock.pk),
        "name": clock.name,
        "frozen_time": _time(clock.frozen_time),
        "status": clock.status,
    }
