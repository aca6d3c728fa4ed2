"""Row locks for the billing services, always in one order so two transactions never
deadlock: the customer, then its subscription, then invoices (by pk), then the invoice
counter last (held only for the few statements of a finalisation).

Customer and subscription rows are locked `FOR NO KEY UPDATE` (their keys never change;
inserts of invoices and transitions pointing at them need not wait)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from billing.models import BillingCustomer, Invoice, Subscription


def customer_lock(pk: int) -> BillingCustomer:
    return BillingCustomer.objects.select_for_update(no_key=True).get(pk=pk)


def subscription_lock(pk) -> Subscription:
    return (
        Subscription.objects.select_for_update(no_key=True, of=("self",))
        .select_related("plan", "customer", "pending_plan")
        .get(pk=pk)
    )


def invoices_lock(ids: Iterable) -> list[Invoice]:
    return list(Invoice.objects.select_for_update(no_key=True).filter(pk__in=ids).order_by("pk"))


def invoice_lock(pk) -> Invoice:
    return Invoice.objects.select_for_update(no_key=True).get(pk=pk)


def counter_take(name: str, count: int = 1) -> int:
    """Take `count` consecutive numbers; returns the first. The counter row stays locked
    until the caller's transaction ends, so a rollback gives the numbers back (gapless).
    One statement (the row is created on first use), so the lock is taken as late and
    held as briefly as possible."""
    with connection.cursor() as cursor:
        cursor.execute(_COUNTER_SQL, [name, count])
        (last,) = cursor.fetchone()
    return last - count + 1


_COUNTER_SQL = """
INSERT INTO billing_invoicecounter AS c (name, last_number) VALUES (%s, %s)
ON CONFLICT (name) DO UPDATE SET last_number = c.last_number + EXCLUDED.last_number
RETURNING last_number
"""
