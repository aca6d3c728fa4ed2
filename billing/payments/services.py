"""Charging an invoice in three steps (STYLE "money moves in three steps"):

1. `attempt_start`: in a transaction, lock the invoice, record a `pending` attempt (at
   most one per invoice: the partial unique index paymentattempt_one_pending).
2. `_call`: outside any transaction or lock, ask the gateway to charge, with the
   attempt's id as the idempotency key.
3. `attempt_record`: in a transaction, lock the subscription and invoice again and record
   the answer (paid, or a decline and what dunning makes of it).

A crash or a gateway that does not answer between 1 and 3 leaves the attempt `pending`;
`attempts_reconcile` (beat) asks the gateway again with the same key, which either
returns the first answer or charges now: never twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from billing import clock, events, invoicing, locks
from billing.models import Invoice, InvoiceStatus, PaymentAttempt
from billing.payments.gateway import ChargeRequest, ChargeResult, GatewayError, get_gateway

logger = logging.getLogger(__name__)

NO_PAYMENT_METHOD = "no_payment_method"


@dataclass(frozen=True)
class Outcome:
    """What a charge came to: `paid`, `declined` (with `failure_code` and what dunning did),
    `pending` (no answer yet), or `nothing_due`."""

    status: str
    failure_code: str = ""
    failure_message: str = ""
    effect: str = ""


def attempt_create(invoice: Invoice) -> PaymentAttempt | Outcome:
    """Step 1 inside the caller's transaction, on a locked invoice: a `pending` attempt
    for what is due, or `nothing_due`, or `pending` when one is already in flight. The
    dunning schedule's `next_attempt_at` is cleared: the attempt's answer sets it again."""
    due = invoice.total_minor - invoice.amount_paid_minor
    if invoice.status != InvoiceStatus.OPEN or due <= 0:
        return Outcome("nothing_due")
    try:
        with transaction.atomic():
            attempt = PaymentAttempt.objects.create(
                invoice=invoice,
                amount_minor=due,
                currency=invoice.currency,
                payment_method=invoice.customer.payment_method,
            )
    except IntegrityError:
        return Outcome("pending")
    invoice.attempt_count += 1
    invoice.next_attempt_at = None
    Invoice.objects.filter(pk=invoice.pk).update(
        attempt_count=invoice.attempt_count, next_attempt_at=None
    )
    return attempt


def attempt_start(*, invoice_id) -> PaymentAttempt | Outcome:
    """Step 1 in a transaction of its own."""
    with transaction.atomic():
        return attempt_create(locks.invoice_lock(invoice_id))


def in_transaction() -> bool:
    """Inside an atomic block of our own (a test case's wrapping transaction, which
    stands for autocommit in tests, does not count)."""
    blocks = transaction.get_connection().atomic_blocks
    return any(not getattr(block, "_from_testcase", False) for block in blocks)


def attempt_call(attempt: PaymentAttempt) -> ChargeResult | None:
    """Step 2: never inside a transaction (asserted) and never under a lock."""
    if in_transaction():
        raise RuntimeError("the gateway is never called inside a transaction")
    try:
        return get_gateway().charge(
            idempotency_key=str(attempt.pk),
            amount_minor=attempt.amount_minor,
            currency=attempt.currency,
            payment_method=attempt.payment_method,
        )
    except GatewayError:
        logger.warning("payment attempt %s: no answer from the gateway", attempt.pk)
        return None


def attempts_call(attempts: list[PaymentAttempt]) -> dict:
    """Step 2 for a batch (the renewal job): attempt pk -> the gateway's answer; an
    attempt missing from it has no answer yet and stays pending (reconciled later)."""
    if in_transaction():
        raise RuntimeError("the gateway is never called inside a transaction")
    by_key = {str(attempt.pk): attempt for attempt in attempts}
    try:
        answers = get_gateway().charge_many(
            [
                ChargeRequest(key, a.amount_minor, a.currency, a.payment_method)
                for key, a in by_key.items()
            ]
        )
    except GatewayError:
        logger.warning("%d payment attempts: no answer from the gateway", len(attempts))
        return {}
    return {by_key[key].pk: result for key, result in answers.items() if key in by_key}


def attempt_record(*, attempt_id, result: ChargeResult) -> Outcome:
    """Step 3, its own transaction: the answer, once (a settled attempt is left alone)."""
    with transaction.atomic():
        head = PaymentAttempt.objects.select_related("invoice").get(pk=attempt_id)
        sub = None
        if head.invoice.subscription_id is not None:
            sub = locks.subscription_lock(head.invoice.subscription_id)
        invoice = locks.invoice_lock(head.invoice_id)
        attempt = PaymentAttempt.objects.select_for_update().get(pk=attempt_id)
        if attempt.status != PaymentAttempt.Status.PENDING:
            return _settled(attempt)
        now = clock.now_for(invoice.customer)
        attempt.status = "succeeded" if result.succeeded else "failed"
        attempt.provider_ref = result.provider_ref
        attempt.failure_code = result.failure_code
        attempt.failure_message = result.failure_message[:300]
        attempt.completed_at = timezone.now()
        attempt.save(
            update_fields=[
                "status",
                "provider_ref",
                "failure_code",
                "failure_message",
                "completed_at",
            ]
        )
        if result.succeeded:
            if invoice.status != InvoiceStatus.OPEN:
                # Paid meanwhile by another way (never with one pending attempt): refund-worthy.
                logger.error("invoice %s charged while %s", invoice.pk, invoice.status)
                return Outcome("paid")
            invoicing.invoice_paid(invoice=invoice, sub=sub, at=now)
            return Outcome("paid")
        if invoice.status != InvoiceStatus.OPEN:
            return Outcome("declined", result.failure_code, result.failure_message)
        effect = invoicing.invoice_failed(
            invoice=invoice, sub=sub, code=result.failure_code, at=now
        )
        return Outcome("declined", result.failure_code, result.failure_message, effect)


_ATTEMPTS_PAID_SQL = """
UPDATE billing_paymentattempt a SET status = 'succeeded', provider_ref = v.ref, completed_at = %s
  FROM unnest(%s::uuid[], %s::text[]) AS v(id, ref)
 WHERE a.id = v.id
"""
_INVOICES_PAID_SQL = """
UPDATE billing_invoice SET status = 'paid', amount_paid_minor = total_minor, paid_at = %s,
       next_attempt_at = NULL
 WHERE id = ANY(%s::uuid[])
"""


# The batch's invoices locked in pk order (billing.locks), with what the plain case needs
# and the event's payload, as columns: no models are built for the batch.
_PAID_LOCK_SQL = """
SELECT i.id, i.number, c.customer_id, i.subscription_id, i.billing_reason, i.status,
       i.currency, i.total_minor, i.amount_paid_minor, p.code, i.period_start, i.period_end,
       c.test_clock_id IS NULL AND s.status = 'active'
  FROM billing_invoice i
  JOIN billing_billingcustomer c ON c.id = i.customer_id
  LEFT JOIN billing_subscription s ON s.id = i.subscription_id
  LEFT JOIN billing_plan p ON p.id = i.plan_id
 WHERE i.id = ANY(%s::uuid[])
 ORDER BY i.id
   FOR NO KEY UPDATE OF i
"""


def attempts_record_paid(paid: list[tuple[PaymentAttempt, ChargeResult]]) -> None:
    """Step 3 for a batch of successful renewal charges, in one transaction: the attempts
    and invoices locked together (invoices first, by pk, as billing.locks orders them),
    moved in bulk, one invoice.paid event each. Anything that is not the plain case (an
    attempt settled meanwhile, an invoice no longer open, a subscription whose status
    the payment moves) goes through attempt_record one by one."""
    by_invoice = {attempt.invoice_id: (attempt, result) for attempt, result in paid}
    rest: list[tuple[PaymentAttempt, ChargeResult]] = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_PAID_LOCK_SQL, [list(by_invoice)])
            invoices = cursor.fetchall()
        pending = set(
            PaymentAttempt.objects.select_for_update()
            .filter(pk__in=[a.pk for a, _ in paid], status=PaymentAttempt.Status.PENDING)
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        moved: list[tuple[PaymentAttempt, ChargeResult]] = []
        payloads = []
        for row in invoices:
            pk, number, customer_id, sub_id, reason, status, currency = row[:7]
            total, amount_paid, plan_code, period_start, period_end, live_subscription = row[7:]
            attempt, result = by_invoice[pk]
            plain = (
                attempt.pk in pending
                and status == InvoiceStatus.OPEN
                and live_subscription
                and reason == "subscription_cycle"
                and attempt.amount_minor == total - amount_paid
            )
            if not plain:
                rest.append((attempt, result))
                continue
            moved.append((attempt, result))
            payloads.append(
                invoicing.payload_of(
                    invoice_id=pk,
                    number=number,
                    customer_id=customer_id,
                    subscription_id=sub_id,
                    billing_reason=reason,
                    status=InvoiceStatus.PAID,
                    currency=currency,
                    total_minor=total,
                    amount_paid_minor=total,
                    plan_code=plan_code,
                    period_start=period_start,
                    period_end=period_end,
                )
            )
        with connection.cursor() as cursor:  # two statements for the batch
            cursor.execute(
                _ATTEMPTS_PAID_SQL,
                [now, [a.pk for a, _ in moved], [r.provider_ref for _, r in moved]],
            )
            cursor.execute(_INVOICES_PAID_SQL, [now, [a.invoice_id for a, _ in moved]])
        events.emit_many([(events.INVOICE_PAID, payload) for payload in payloads], at=now)
    for attempt, result in rest:
        attempt_record(attempt_id=attempt.pk, result=result)


def _settled(attempt: PaymentAttempt) -> Outcome:
    if attempt.status == PaymentAttempt.Status.SUCCEEDED:
        return Outcome("paid")
    return Outcome("declined", attempt.failure_code, attempt.failure_message)


def invoice_pay(*, invoice_id) -> Outcome:
    """Charge what the invoice owes now: the three steps."""
    started = attempt_start(invoice_id=invoice_id)
    if isinstance(started, Outcome):
        return started
    return attempt_settle(started)


def attempt_settle(attempt: PaymentAttempt) -> Outcome:
    """Steps 2 and 3 for a recorded attempt. No card on file is declined as a card would
    be, without asking the gateway."""
    if not attempt.payment_method:
        return attempt_record(
            attempt_id=attempt.pk,
            result=ChargeResult(
                succeeded=False,
                failure_code=NO_PAYMENT_METHOD,
                failure_message="No payment method on file.",
            ),
        )
    result = attempt_call(attempt)
    if result is None:
        return Outcome("pending")
    return attempt_record(attempt_id=attempt.pk, result=result)


def attempts_reconcile(*, stale_seconds: int | None = None, limit: int = 500) -> int:
    """Settle attempts left `pending` by a crash or a gateway that did not answer: the
    same idempotency key again returns the first answer, or charges now. Beat job."""
    age = settings.BILLING_ATTEMPT_STALE_SECONDS if stale_seconds is None else stale_seconds
    cutoff = timezone.now() - timedelta(seconds=age)
    stale = list(
        PaymentAttempt.objects.filter(status="pending", created_at__lte=cutoff).order_by(
            "created_at"
        )[:limit]
    )
    settled = 0
    for attempt in stale:
        if attempt_settle(attempt).status != "pending":
            settled += 1
    return settled
