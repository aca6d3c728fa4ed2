"""The due work of billing, run by beat (wall-clock customers) and by test clocks (their
own customers, on the clock's time): trial ends, period ends (renewal, a scheduled
downgrade, a cancel at period end) and dunning retries.

Each batch is one transaction that picks due rows with `FOR UPDATE SKIP LOCKED` (the
subscription and its customer), rolls each one forward (the next period's invoice, and a
`pending` payment attempt), and commits; the gateway is called after the commit, one
attempt at a time (billing.payments). Several workers can run this at once: a row one
of them holds is skipped by the others, a rolled row is no longer due, and the unique
constraint invoice_one_per_period backs it: a period is never invoiced twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing import invoicing, lifecycle_log
from billing.engine import periods
from billing.invoicing import Charge
from billing.models import (
    BillingReason,
    Invoice,
    InvoiceStatus,
    PaymentAttempt,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from billing.payments import services as payments

logger = logging.getLogger(__name__)


def _scope(clock_id) -> Q:
    if clock_id is None:
        return Q(customer__test_clock__isnull=True)
    return Q(customer__test_clock_id=clock_id)


def _due_subscriptions(clock_id, now: datetime) -> Q:
    return _scope(clock_id) & (
        Q(status=SubscriptionStatus.TRIALING, trial_end__lte=now)
        | Q(status=SubscriptionStatus.ACTIVE, current_period_end__lte=now)
    )


def run_due(*, clock_id=None, now: datetime | None = None, batch: int | None = None) -> int:
    """Everything due up to `now` (the wall clock, or the clock's time): returns how many
    subscriptions and retries it handled."""
    now = now or timezone.now()
    size = batch or settings.BILLING_RENEWAL_BATCH
    handled = 0
    while True:
        attempts, count = _subscriptions_batch(clock_id, now, size)
        _charge(attempts)
        handled += count
        if count < size:
            break
    while True:
        attempts, count = _retries_batch(clock_id, now, size)
        _charge(attempts)
        handled += count
        if count < size:
            break
    return handled


def _charge(attempts: list[PaymentAttempt]) -> None:
    for attempt in attempts:
        try:
            payments.attempt_settle(attempt)
        except Exception:  # one bad charge must not stop the batch; reconcile retries it
            logger.exception("payment attempt %s failed to settle", attempt.pk)


def _subscriptions_batch(clock_id, now: datetime, size: int) -> tuple[list[PaymentAttempt], int]:
    attempts: list[PaymentAttempt] = []
    with transaction.atomic():
        rows = list(
            Subscription.objects.select_for_update(
                skip_locked=True, no_key=True, of=("self", "customer")
            )
            .select_related("plan", "customer", "pending_plan")
            .filter(_due_subscriptions(clock_id, now))
            .order_by("current_period_end")[:size]
        )
        for sub in rows:
            try:
                with transaction.atomic():
                    attempt = roll(sub, now)
            except Exception:
                logger.exception("subscription %s: roll failed; left for the next run", sub.pk)
                continue
            if attempt is not None:
                attempts.append(attempt)
    return attempts, len(rows)


def _retries_batch(clock_id, now: datetime, size: int) -> tuple[list[PaymentAttempt], int]:
    attempts: list[PaymentAttempt] = []
    with transaction.atomic():
        invoices = list(
            Invoice.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
            .select_related("customer")
            .filter(_scope(clock_id), status=InvoiceStatus.OPEN, next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:size]
        )
        for invoice in invoices:
            started = payments.attempt_create(invoice)
            if isinstance(started, PaymentAttempt):
                attempts.append(started)
    return attempts, len(invoices)


def roll(sub: Subscription, now: datetime) -> PaymentAttempt | None:
    """Move one due subscription (locked) forward by what is due; the attempt to charge
    after commit, if any. Times are the due moments (trial end, period end), not `now`:
    a clock that jumps a month lands every event at its own time."""
    if sub.status == SubscriptionStatus.TRIALING:
        return _trial_end(sub)
    return _period_end(sub)


def _trial_end(sub: Subscription) -> PaymentAttempt | None:
    at = sub.trial_end or sub.current_period_end
    if sub.cancel_at_period_end:
        invoicing.subscription_end(sub, "cancelled", "cancelled_at_trial_end", at)
        return None
    start, end = periods.bounds(sub.anchor, sub.plan.interval, 0)
    return _invoice_period(sub, 0, start, end, at)


def _period_end(sub: Subscription) -> PaymentAttempt | None:
    at = sub.current_period_end
    if sub.cancel_at_period_end:
        invoicing.subscription_end(sub, "cancelled", "cancelled_at_period_end", at)
        return None
    index = sub.period_index + 1
    if sub.pending_plan_id is not None:
        new_plan = Plan.objects.get(pk=sub.pending_plan_id)
        if new_plan.interval != sub.plan.interval:
            # A new interval counts its periods from here.
            sub.anchor, index = at, 0
        old = sub.plan.code
        sub.plan, sub.pending_plan = new_plan, None
        Subscription.objects.filter(pk=sub.pk).update(
            plan=new_plan, pending_plan=None, anchor=sub.anchor
        )
        lifecycle_log.record(sub, sub.status, f"downgraded_from_{old}"[:60], at)
    start, end = periods.bounds(sub.anchor, sub.plan.interval, index)
    return _invoice_period(sub, index, start, end, at)


def _invoice_period(
    sub: Subscription, index: int, start: datetime, end: datetime, at: datetime
) -> PaymentAttempt | None:
    sub.period_index, sub.current_period_start, sub.current_period_end = index, start, end
    Subscription.objects.filter(pk=sub.pk).update(
        period_index=index, current_period_start=start, current_period_end=end
    )
    plan = sub.plan
    invoice = invoicing.invoice_create(
        sub=sub,
        plan=plan,
        reason=BillingReason.SUBSCRIPTION_CYCLE,
        period_start=start,
        period_end=end,
        charges=[
            Charge("subscription", f"{plan.name} ({_period_text(start, end)})", plan.amount_minor)
        ],
        at=at,
    )
    if invoice.status == InvoiceStatus.PAID:
        if sub.status == SubscriptionStatus.TRIALING:
            lifecycle_log.transition(sub, "active", "trial_ended", at)
        return None
    started = payments.attempt_create(invoice)
    return started if isinstance(started, PaymentAttempt) else None


def _period_text(start: datetime, end: datetime) -> str:
    return f"{start:%b %d, %Y} - {end:%b %d, %Y}"
