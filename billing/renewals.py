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
import time
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing import events, invoicing, lifecycle_log, locks
from billing.engine import invoices as composer
from billing.engine import periods
from billing.invoicing import Charge
from billing.models import (
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PaymentAttempt,
    Plan,
    Subscription,
    SubscriptionStatus,
)
from billing.payments import services as payments
from core import bulk

logger = logging.getLogger(__name__)


def _scope(clock_id) -> Q:
    if clock_id is None:
        return Q(customer__test_clock__isnull=True)
    return Q(customer__test_clock_id=clock_id)


# Two simple filters, each served by its own partial index (subscription_due_idx,
# subscription_trial_end_idx): one OR of both made PostgreSQL scan and sort every due
# row for each batch.
DUE_KINDS = (
    ("trial_end", lambda now: Q(status=SubscriptionStatus.TRIALING, trial_end__lte=now)),
    (
        "current_period_end",
        lambda now: Q(status=SubscriptionStatus.ACTIVE, current_period_end__lte=now),
    ),
)


def run_due(
    *,
    clock_id=None,
    now: datetime | None = None,
    batch: int | None = None,
    budget_seconds: float | None = None,
) -> int:
    """Everything due up to `now` (the wall clock, or the clock's time): returns how many
    subscriptions and retries it handled. With `budget_seconds`, stops after the batch
    that passes it (the caller queues a continuation: see `run_due_within`)."""
    return run_due_within(clock_id=clock_id, now=now, batch=batch, budget_seconds=budget_seconds)[0]


def run_due_within(
    *,
    clock_id=None,
    now: datetime | None = None,
    batch: int | None = None,
    budget_seconds: float | None = None,
) -> tuple[int, bool]:
    """(handled, finished): finished is False when the time budget ran out first."""
    now = now or timezone.now()
    size = batch or settings.BILLING_RENEWAL_BATCH
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    handled = 0

    def out_of_time() -> bool:
        return deadline is not None and time.monotonic() > deadline

    for order, due in DUE_KINDS:
        while True:
            attempts, count = _subscriptions_batch(clock_id, now, size, due(now), order)
            _charge(attempts)
            handled += count
            if count < size:
                break
            if out_of_time():
                return handled, False
    while True:
        attempts, count = _retries_batch(clock_id, now, size)
        _charge(attempts)
        handled += count
        if count < size:
            break
        if out_of_time():
            return handled, False
    while True:
        count = _grace_batch(clock_id, now, size)
        handled += count
        if count < size:
            break
    return handled, True


def grace_ends_before(now: datetime):
    """Past-due subscriptions whose grace ran out by `now` (first failure + GRACE_DAYS)."""
    return Q(
        status=SubscriptionStatus.PAST_DUE,
        grace_ended_at__isnull=True,
        past_due_since__lte=now - timedelta(days=settings.BILLING_GRACE_DAYS),
    )


def _grace_batch(clock_id, now: datetime, size: int) -> int:
    """A grace's end changes no status, but access falls back to the default plan: it is
    recorded, and told to the other apps (subscription.updated, `access: default`), so
    entitlements can drop their cached answer at the right moment."""
    with transaction.atomic():
        rows = list(
            Subscription.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
            .select_related("plan", "customer")
            .filter(_scope(clock_id), grace_ends_before(now))
            .order_by("past_due_since")[:size]
        )
        for sub in rows:
            if sub.past_due_since is None:  # excluded by the filter; narrowed for mypy
                continue
            at = sub.past_due_since + timedelta(days=settings.BILLING_GRACE_DAYS)
            sub.grace_ended_at = at
            Subscription.objects.filter(pk=sub.pk).update(grace_ended_at=at)
            lifecycle_log.record(sub, sub.status, "grace_ended", at)
            events.emit(
                events.SUBSCRIPTION_UPDATED,
                {**lifecycle_log.payload(sub), "access": "default"},
                at=at,
            )
    return len(rows)


def _charge(attempts: list[PaymentAttempt]) -> None:
    """Charge the batch's attempts (one gateway batch call, outside any transaction),
    then record the successes together and every other answer one by one."""
    cards = []
    for attempt in attempts:
        if attempt.payment_method:
            cards.append(attempt)
            continue
        try:  # declined as no_payment_method, no gateway call
            payments.attempt_settle(attempt)
        except Exception:  # one bad charge must not stop the batch; reconcile retries it
            logger.exception("payment attempt %s failed to settle", attempt.pk)
    if not cards:
        return
    answers = payments.attempts_call(cards)
    paid = []
    for attempt in cards:
        result = answers.get(attempt.pk)
        if result is None:  # no answer: left pending for attempts_reconcile
            continue
        if result.succeeded:
            paid.append((attempt, result))
            continue
        try:
            payments.attempt_record(attempt_id=attempt.pk, result=result)
        except Exception:
            logger.exception("payment attempt %s failed to settle", attempt.pk)
    if paid:
        payments.attempts_record_paid(paid)


def _subscriptions_batch(
    clock_id, now: datetime, size: int, due: Q, order: str
) -> tuple[list[PaymentAttempt], int]:
    attempts: list[PaymentAttempt] = []
    with transaction.atomic():
        rows = list(
            Subscription.objects.select_for_update(
                skip_locked=True, no_key=True, of=("self", "customer")
            )
            .select_related("plan", "customer", "pending_plan")
            .filter(_scope(clock_id), due)
            .order_by(order)[:size]
        )
        plain = [sub for sub in rows if clock_id is None and _plain_renewal(sub)]
        if plain:
            attempts.extend(_renew_plain(plain))
        done = {sub.pk for sub in plain}
        for sub in rows:
            if sub.pk in done:
                continue
            try:
                with transaction.atomic():
                    attempt = roll(sub, now)
            except Exception:
                logger.exception("subscription %s: roll failed; left for the next run", sub.pk)
                continue
            if attempt is not None:
                attempts.append(attempt)
    return attempts, len(rows)


_PERIODS_SQL = """
UPDATE billing_subscription s
   SET period_index = v.i, current_period_start = v.s, current_period_end = v.e,
       updated_at = now()
  FROM unnest(%s::uuid[], %s::int[], %s::timestamptz[], %s::timestamptz[]) AS v(id, i, s, e)
 WHERE s.id = v.id
"""


def _plain_renewal(sub: Subscription) -> bool:
    """A renewal with nothing but the plan's price to charge: no pending change or
    cancel, no coupon, no credit to apply. Most renewals are; they are written in bulk."""
    return (
        sub.status == SubscriptionStatus.ACTIVE
        and not sub.cancel_at_period_end
        and sub.pending_plan_id is None
        and sub.coupon_id is None
        and sub.customer.credit_balance_minor == 0
        and sub.plan.amount_minor > 0
    )


def _renew_plain(subs: list[Subscription]) -> list[PaymentAttempt]:
    """roll() for many plain renewals at once (locked rows, the caller's transaction):
    the same rows as invoice_create + attempt_create would write, in a few statements
    instead of ~20 per renewal (docs/decisions.md)."""
    rows = []
    for sub in subs:
        index = sub.period_index + 1
        start, end = periods.bounds(sub.anchor, sub.plan.interval, index)
        at = sub.current_period_end
        sub.period_index, sub.current_period_start, sub.current_period_end = index, start, end
        rows.append((sub, at))
    with connection.cursor() as cursor:  # one statement (bulk_update's CASE costs more)
        cursor.execute(
            _PERIODS_SQL,
            [
                [s.pk for s in subs],
                [s.period_index for s in subs],
                [s.current_period_start for s in subs],
                [s.current_period_end for s in subs],
            ],
        )
    invoices: list[Invoice] = []
    lines: list[InvoiceLine] = []
    attempts: list[PaymentAttempt] = []
    created = timezone.now()
    for sub, at in rows:
        plan = sub.plan
        charge = Charge(
            "subscription",
            f"{plan.name} ({_period_text(sub.current_period_start, sub.current_period_end)})",
            plan.amount_minor,
        )
        composed = composer.compose([composer.Line(charge.kind, charge.description, charge.amount)])
        invoice = Invoice(
            id=uuid.uuid4(),
            customer_id=sub.customer_id,
            subscription_id=sub.pk,
            plan_id=plan.pk,
            billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
            status=InvoiceStatus.OPEN,
            currency=plan.currency,
            period_start=sub.current_period_start,
            period_end=sub.current_period_end,
            subtotal_minor=composed.subtotal,
            total_minor=composed.total,
            attempt_count=1,
            finalized_at=at,
            created_at=at,
        )
        invoices.append(invoice)
        lines.extend(
            InvoiceLine(
                invoice_id=invoice.pk,
                position=i,
                kind=line.kind,
                description=line.description[:200],
                quantity=line.quantity,
                amount_minor=line.amount,
            )
            for i, line in enumerate(composed.lines)
        )
        attempts.append(
            PaymentAttempt(
                id=uuid.uuid4(),
                invoice_id=invoice.pk,
                amount_minor=composed.total,
                currency=plan.currency,
                payment_method=sub.customer.payment_method,
                created_at=created,
            )
        )
    # Lines and attempts first (their foreign keys to the invoices are checked at
    # commit), then the numbers and the invoices: the counter row, which every invoice
    # finalisation waits for, is locked for the last statement and the commit only.
    bulk.copy_models(lines)
    bulk.copy_models(attempts)
    first = locks.counter_take(invoicing.COUNTER, len(invoices))
    for offset, invoice in enumerate(invoices):
        invoice.number = invoicing.number_text(first + offset)
    bulk.copy_models(invoices)
    return attempts


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
