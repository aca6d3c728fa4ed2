"""Billing writes: plans, billing customers, subscriptions (subscribe, change, cancel,
resume) and refunds. Each public function owns its transactions; the gateway is called
between them, never inside one (billing.payments). Errors are core.errors domain errors
with API.md's reason codes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from billing import clock, events, invoicing, lifecycle_log, locks
from billing.engine import periods, proration
from billing.invoicing import Charge
from billing.models import (
    LIVE_STATUSES,
    BillingCustomer,
    BillingReason,
    CreditEntry,
    CreditNote,
    Invoice,
    InvoiceStatus,
    PaymentAttempt,
    Plan,
    Subscription,
    SubscriptionStatus,
    TestClock,
)
from billing.payments import services as payments
from billing.payments.gateway import get_gateway
from core.errors import Conflict, Invalid, NotFound, PaymentRequired, Unavailable, Unprocessable
from core.idempotency import create_once
from core.money import display, format_amount
from coupons import services as coupon_services

logger = logging.getLogger(__name__)

PLAN_PRICE_FIELDS = frozenset({"amount_minor", "currency", "interval"})
PLAN_FIELDS = (
    frozenset({"name", "active", "features", "trial_days", "is_default"}) | PLAN_PRICE_FIELDS
)


# --- plans ------------------------------------------------------------------------------


def _take_default(plan: Plan) -> None:
    """Setting `default` on a plan takes it off the previous one (one statement each, in
    this transaction; the partial unique index plan_one_default backs it)."""
    Plan.objects.filter(is_default=True).exclude(pk=plan.pk).update(is_default=False)


@transaction.atomic
def plan_create(*, fields: dict) -> Plan:
    if Plan.objects.filter(code=fields["code"]).exists():
        raise Conflict("plan_exists", f"A plan with code {fields['code']!r} exists.")
    plan = Plan(**fields)
    if plan.is_default:
        Plan.objects.select_for_update().filter(is_default=True).exists()
        _take_default(plan)
    try:
        with transaction.atomic():
            plan.save(force_insert=True)
    except IntegrityError:
        raise Conflict("plan_exists", f"A plan with code {fields['code']!r} exists.") from None
    _plan_event(plan)
    return plan


def _plan_event(plan: Plan) -> None:
    events.emit(
        events.PLAN_UPDATED,
        {"plan": plan.code, "features": plan.features, "active": plan.active},
        at=timezone.now(),
    )


def plan_has_subscribers(plan: Plan) -> bool:
    return Subscription.objects.filter(Q(plan=plan) | Q(pending_plan=plan)).exists() or (
        Invoice.objects.filter(plan=plan).exists()
    )


@transaction.atomic
def plan_update(*, code: str, fields: dict) -> Plan:
    unknown = set(fields) - PLAN_FIELDS
    if unknown:
        raise Invalid(
            "invalid_request", "Unknown fields.", fields={f: ["Not editable."] for f in unknown}
        )
    try:
        plan = Plan.objects.select_for_update().get(code=code)
    except Plan.DoesNotExist:
        raise NotFound("plan_not_found", f"No plan {code!r}.") from None
    changing_price = {
        name for name in PLAN_PRICE_FIELDS & set(fields) if getattr(plan, name) != fields[name]
    }
    if changing_price and plan_has_subscribers(plan):
        raise Conflict(
            "plan_immutable",
            "This plan has had subscribers: its amount, currency and interval are fixed "
            "(a new price is a new plan).",
            fields={name: ["Fixed once the plan has had a subscriber."] for name in changing_price},
        )
    for name, value in fields.items():
        setattr(plan, name, value)
    if fields.get("is_default"):
        _take_default(plan)
    plan.save()
    _plan_event(plan)
    return plan


# --- customers --------------------------------------------------------------------------


@dataclass(frozen=True)
class CustomerResult:
    customer: BillingCustomer
    retried_invoices: list


def customer_upsert(*, customer_id: str, fields: dict) -> CustomerResult:
    """Create or update the billing customer. A new payment method while an invoice is
    past due retries that invoice at once (API.md), after this commit. `signed_up_at` is
    the creation on the customer's clock; a clock set or changed later (only before the
    first subscription) dates it again at that clock's now."""
    clock_id = fields.pop("test_clock", None) if "test_clock" in fields else ...
    with transaction.atomic():
        customer, created = BillingCustomer.objects.get_or_create(customer_id=customer_id)
        customer = locks.customer_lock(customer.pk)
        if clock_id is not ...:
            if clock_id is not None and (
                not settings.BILLING_TEST_CLOCKS_ENABLED
                or not TestClock.objects.filter(pk=clock_id).exists()
            ):
                raise Invalid(
                    "invalid_request",
                    "No such test clock.",
                    fields={"test_clock": ["No such test clock (or test clocks are off)."]},
                )
            if str(customer.test_clock_id or "") != str(clock_id or "") and (
                not created and customer.subscriptions.exists()
            ):
                raise Conflict(
                    "test_clock_fixed",
                    "A customer's test clock cannot change once it has subscriptions.",
                    fields={"test_clock": ["Fixed once the customer has subscriptions."]},
                )
            if created or str(customer.test_clock_id or "") != str(clock_id or ""):
                # The signup on the customer's clock: created now on it, or moved onto
                # it (or off one) before its first subscription, which dates it again.
                customer.test_clock_id = clock_id
                customer.signed_up_at = clock.now_for(customer)
        method_changed = (
            "payment_method" in fields and fields["payment_method"] != customer.payment_method
        )
        for name, value in fields.items():
            setattr(customer, name, value)
        customer.save()
        retry = []
        if method_changed and customer.payment_method:
            retry = list(
                Invoice.objects.filter(
                    customer=customer,
                    status=InvoiceStatus.OPEN,
                    subscription__status=SubscriptionStatus.PAST_DUE,
                ).values_list("pk", flat=True)
            )
    for invoice_id in retry:
        invoice_retry_now(invoice_id=invoice_id)
    customer.refresh_from_db()
    return CustomerResult(customer=customer, retried_invoices=retry)


def invoice_retry_now(*, invoice_id) -> payments.Outcome:
    """Charge an open invoice now (a new card, the admin's "retry now")."""
    return payments.invoice_pay(invoice_id=invoice_id)


def _customer_for(customer_id: str) -> BillingCustomer:
    """The billing customer, created on first use (a subscribe before any PUT)."""
    customer, _ = BillingCustomer.objects.select_related("test_clock").get_or_create(
        customer_id=customer_id
    )
    return customer


@transaction.atomic
def credit_grant(
    *,
    customer_id: str,
    amount_minor: int,
    currency: str,
    kind: str,
    reference: str,
    description: str = "",
) -> CreditEntry:
    """Add credit once per `reference` (a referral reward, a goodwill credit): the ledger
    row and the balance move together; a repeated reference returns the first row."""
    customer = locks.customer_lock(_customer_for(customer_id).pk)
    earlier = CreditEntry.objects.filter(customer=customer, reference=reference).first()
    if earlier is not None:
        return earlier
    entry = CreditEntry.objects.create(
        customer=customer,
        kind=kind,
        amount_minor=amount_minor,
        currency=currency,
        reference=reference,
        description=description,
    )
    BillingCustomer.objects.filter(pk=customer.pk).update(
        credit_balance_minor=F("credit_balance_minor") + amount_minor
    )
    return entry


def testclock_work_register(next_due, run) -> None:
    """For other apps: their due work on a test clock (a referral's hold), run by an
    advance at each moment it needs (billing.testclocks.register)."""
    from billing import testclocks

    testclocks.register(next_due, run)


@transaction.atomic
def credit_clawback(
    *, customer_id: str, amount_minor: int, currency: str, reference: str, description: str = ""
) -> int:
    """Take back up to `amount_minor` of credit granted earlier, once per `reference`:
    only what is still unused (the balance never goes negative). Returns what was taken."""
    customer = locks.customer_lock(_customer_for(customer_id).pk)
    earlier = CreditEntry.objects.filter(customer=customer, reference=reference).first()
    if earlier is not None:
        return -earlier.amount_minor
    taken = max(0, min(amount_minor, customer.credit_balance_minor))
    CreditEntry.objects.create(
        customer=customer,
        kind=CreditEntry.Kind.CLAWBACK,
        amount_minor=-taken,
        currency=currency,
        reference=reference,
        description=description,
    )
    if taken:
        BillingCustomer.objects.filter(pk=customer.pk).update(
            credit_balance_minor=F("credit_balance_minor") - taken
        )
    return taken


# --- subscribe --------------------------------------------------------------------------


def _plan_for(code: str) -> Plan:
    try:
        return Plan.objects.get(code=code, active=True)
    except Plan.DoesNotExist:
        raise NotFound("plan_not_found", f"No active plan {code!r}.") from None


def _exists() -> Conflict:
    return Conflict("subscription_exists", "This customer already has a live subscription.")


def subscription_create(
    *,
    customer_id: str,
    plan_code: str,
    coupon_code: str | None = None,
    trial: bool | None = None,
    idempotency: dict | None = None,
) -> Subscription:
    """Subscribe (API.md): a trial starts at once with no charge; without one the first
    invoice is charged now and a decline (402) leaves the subscription `expired`.

    1. A coupon is redeemed through the coupon engine (its limits taken atomically there),
       on an order id of this subscription's.
    2. One transaction creates the subscription (the partial unique index
       subscription_one_live_per_customer refuses a second live one) and its first
       invoice, with a pending attempt; an Idempotency-Key finds the row a crashed first
       attempt created (core.idempotency.create_once).
    3. After commit, the gateway; then the result is recorded."""
    plan = _plan_for(plan_code)
    customer = _customer_for(customer_id)
    idem = idempotency or {"principal": "", "key": "", "fingerprint": ""}
    if idem["key"]:
        earlier = Subscription.objects.filter(
            idempotency_principal=idem["principal"], idempotency_key=idem["key"]
        ).first()
        if earlier is not None:
            return _finish_subscribe(earlier, idem)
    if Subscription.objects.filter(customer=customer, status__in=LIVE_STATUSES).exists():
        raise _exists()
    with_trial = (plan.trial_days > 0) if trial is None else (trial and plan.trial_days > 0)
    sub_id = uuid.uuid4()
    order_id = f"subscription:{sub_id}"
    coupon = None
    if coupon_code:
        coupon = coupon_services.subscription_coupon_redeem(
            code=coupon_code,
            customer_id=customer_id,
            order_id=order_id,
            sku=plan.code,
            amount_minor=plan.amount_minor,
            currency=plan.currency,
        )
    try:
        sub, attempt = _subscribe_tx(sub_id, customer, plan, coupon, order_id, with_trial, idem)
    except BaseException:
        if coupon is not None:
            coupon_services.subscription_coupon_release(order_id=order_id)
        raise
    if coupon is not None and sub.coupon_order_id != order_id:  # an earlier attempt's row
        coupon_services.subscription_coupon_release(order_id=order_id)
    if coupon is not None and sub.status == SubscriptionStatus.TRIALING:
        coupon_services.subscription_coupon_confirm(order_id=order_id)
    if attempt is not None:
        payments.attempt_settle(attempt)
    return _finish_subscribe(Subscription.objects.get(pk=sub.pk), idem)


@transaction.atomic(durable=True)
def _subscribe_tx(sub_id, customer, plan, coupon, order_id, with_trial, idem):
    customer = locks.customer_lock(customer.pk)
    now = clock.now_for(customer)

    def create(fields: dict) -> Subscription:
        if Subscription.objects.filter(customer=customer, status__in=LIVE_STATUSES).exists():
            raise _exists()
        if with_trial:
            anchor = now + timedelta(days=plan.trial_days)
            start, end, status = now, anchor, SubscriptionStatus.TRIALING
        else:
            anchor = now
            start, end = periods.bounds(anchor, plan.interval, 0)
            status = SubscriptionStatus.INCOMPLETE
        sub = Subscription(
            id=sub_id,
            customer=customer,
            plan=plan,
            status=status,
            anchor=anchor,
            period_index=0,
            current_period_start=start,
            current_period_end=end,
            trial_end=anchor if with_trial else None,
            coupon_code=coupon.code if coupon else "",
            coupon_id=coupon.coupon_id if coupon else None,
            coupon_order_id=order_id if coupon else "",
            discount_remaining=coupon.invoices if coupon else None,
            created_at=now,
            **fields,
        )
        try:
            with transaction.atomic():
                sub.save(force_insert=True)
        except IntegrityError:
            raise _exists() from None
        lifecycle_log.created(sub, "trial_started" if with_trial else "subscribed", now)
        return sub

    sub, created = create_once(
        Subscription.objects.all(),
        principal=idem["principal"],
        key=idem["key"],
        fingerprint=idem["fingerprint"],
        create=create,
    )
    if not created:
        return sub, None
    sub.customer = customer
    if with_trial:
        # A $0 invoice for the trial (it does not count against a coupon's duration).
        invoicing.invoice_create(
            sub=sub,
            plan=plan,
            reason=BillingReason.SUBSCRIPTION_CREATE,
            period_start=sub.current_period_start,
            period_end=sub.current_period_end,
            charges=[Charge("subscription", f"Trial of {plan.name}", 0)],
            at=now,
        )
        return sub, None
    invoice = invoicing.invoice_create(
        sub=sub,
        plan=plan,
        reason=BillingReason.SUBSCRIPTION_CREATE,
        period_start=sub.current_period_start,
        period_end=sub.current_period_end,
        charges=[Charge("subscription", plan.name, plan.amount_minor)],
        at=now,
    )
    if invoice.status == InvoiceStatus.PAID:  # a free plan, or fully discounted / credited
        lifecycle_log.transition(sub, "active", "nothing_to_charge", now)
        if coupon is not None:
            transaction.on_commit(
                lambda: coupon_services.subscription_coupon_confirm(order_id=order_id)
            )
        return sub, None
    started = payments.attempt_create(invoice)
    return sub, started if isinstance(started, PaymentAttempt) else None


def _finish_subscribe(sub: Subscription, idem: dict) -> Subscription:
    """The subscribe's answer from the row's state: a charge still unanswered is settled
    now with the same attempt (a retry of a crashed call), a decline is 402."""
    if sub.status == SubscriptionStatus.INCOMPLETE:
        pending = PaymentAttempt.objects.filter(invoice__subscription=sub, status="pending").first()
        if pending is not None:
            payments.attempt_settle(pending)
        sub.refresh_from_db()
        if sub.status == SubscriptionStatus.INCOMPLETE:
            raise Unavailable(
                "payment_pending",
                "The payment provider has not answered yet; retry with the same Idempotency-Key.",
                retryable=True,
                retry_after=5,
            )
    if sub.status == SubscriptionStatus.EXPIRED and not sub.trial_end:
        failed = (
            PaymentAttempt.objects.filter(invoice__subscription=sub, status="failed")
            .order_by("-created_at")
            .first()
        )
        raise PaymentRequired(
            "payment_declined",
            failed.failure_message
            if failed and failed.failure_message
            else "The payment was declined.",
            fields={"decline_code": failed.failure_code} if failed else {},
        )
    return sub


# --- change plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangePreview:
    plan: Plan
    effective: str  # now | period_end
    lines: list[Charge]
    amount_due: int
    currency: str
    proration_date: datetime


def _monthly_price(plan: Plan) -> tuple[int, int]:
    """A comparable price: (amount per month numerator, denominator)."""
    return (plan.amount_minor, 1) if plan.interval == "month" else (plan.amount_minor, 12)


def _is_upgrade(old: Plan, new: Plan) -> bool:
    a, b = _monthly_price(old), _monthly_price(new)
    return new_over_old(a, b)


def new_over_old(old: tuple[int, int], new: tuple[int, int]) -> bool:
    return new[0] * old[1] > old[0] * new[1]


def _change_plan_checks(sub: Subscription, plan: Plan) -> None:
    if sub.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
        raise Unprocessable(
            "subscription_not_active", f"A {sub.status} subscription cannot change plan."
        )
    if plan.pk == sub.plan_id:
        raise Unprocessable("same_plan", "The subscription is already on this plan.")
    if plan.currency != sub.plan.currency:
        raise Unprocessable("currency_mismatch", "The new plan is in another currency.")


def _preview(sub: Subscription, plan: Plan, at: datetime) -> ChangePreview:
    _change_plan_checks(sub, plan)
    if (
        sub.status == SubscriptionStatus.TRIALING
        or not _is_upgrade(sub.plan, plan)
        or plan.interval != sub.plan.interval
    ):
        # A downgrade, or a move to another interval (a new anchor), waits for the period
        # end; a change during a trial applies now. Nothing is charged now.
        effective = "now" if sub.status == SubscriptionStatus.TRIALING else "period_end"
        return ChangePreview(plan, effective, [], 0, plan.currency, at)
    if not (sub.current_period_start <= at < sub.current_period_end):
        raise Invalid(
            "invalid_request",
            "proration_date must fall inside the current period.",
            fields={"proration_date": ["Outside the current period."]},
        )
    lines = [
        Charge("proration", x.description, x.amount)
        for x in proration.prorate(
            old_amount=sub.plan.amount_minor,
            new_amount=plan.amount_minor,
            old_name=sub.plan.name,
            new_name=plan.name,
            start=sub.current_period_start,
            end=sub.current_period_end,
            at=at,
        )
    ]
    amount = max(0, sum(x.amount for x in lines))
    return ChangePreview(plan, "now", lines, amount, plan.currency, at)


def subscription_get(sub_id) -> Subscription:
    try:
        return Subscription.objects.select_related("plan", "customer", "pending_plan").get(
            pk=sub_id
        )
    except (Subscription.DoesNotExist, ValueError, ValidationError):
        raise NotFound("subscription_not_found", "No such subscription.") from None


def subscription_preview_change(
    *, sub_id, plan_code: str, proration_date: datetime | None = None
) -> ChangePreview:
    sub = subscription_get(sub_id)
    plan = _plan_for(plan_code)
    at = proration_date or clock.now_for(sub.customer)
    return _preview(sub, plan, at)


def subscription_change(
    *, sub_id, plan_code: str, proration_date: datetime | None = None
) -> Subscription:
    """Upgrade now, charging the prorated difference as its own invoice (402 and nothing
    changes on a decline); downgrade at the period end (`pending_plan`). During a trial
    the plan simply changes (nothing has been charged)."""
    plan = _plan_for(plan_code)
    with transaction.atomic():
        head = subscription_get(sub_id)
        locks.customer_lock(head.customer_id)
        sub = locks.subscription_lock(sub_id)
        now = clock.now_for(sub.customer)
        at = proration_date or now
        preview = _preview(sub, plan, at)
        attempt = None
        if sub.status == SubscriptionStatus.TRIALING:
            invoicing.plan_switch(sub, plan, now, "plan_changed_in_trial")
            Subscription.objects.filter(pk=sub.pk).update(pending_plan=None)
        elif preview.effective == "period_end":
            sub.pending_plan = plan
            Subscription.objects.filter(pk=sub.pk).update(pending_plan=plan)
            lifecycle_log.record(sub, sub.status, "downgrade_scheduled", now)
            events.emit(events.SUBSCRIPTION_UPDATED, lifecycle_log.payload(sub), at=now)
        else:
            # pending_plan is cleared only when the upgrade is paid (invoicing.plan_switch):
            # a declined upgrade changes nothing, a scheduled downgrade included.
            invoice = invoicing.invoice_create(
                sub=sub,
                plan=plan,
                reason=BillingReason.SUBSCRIPTION_UPDATE,
                period_start=at,
                period_end=sub.current_period_end,
                charges=preview.lines,
                at=now,
            )
            if invoice.status == InvoiceStatus.PAID:  # fully credited: switch now
                invoicing.plan_switch(sub, plan, now, "upgrade_paid")
            else:
                started = payments.attempt_create(invoice)
                attempt = started if isinstance(started, PaymentAttempt) else None
    if attempt is not None:
        outcome = payments.attempt_settle(attempt)
        if outcome.status == "declined":
            raise PaymentRequired(
                "payment_declined",
                outcome.failure_message or "The payment was declined.",
                fields={"decline_code": outcome.failure_code},
            )
        if outcome.status == "pending":
            raise Unavailable(
                "payment_pending",
                "The payment provider has not answered yet; the change applies once it does.",
                retryable=True,
                retry_after=5,
            )
    return subscription_get(sub_id)


# --- cancel / resume --------------------------------------------------------------------


def subscription_cancel(*, sub_id, at_period_end: bool) -> Subscription:
    """Cancel now (`cancelled` at once) or at the period end; idempotent."""
    with transaction.atomic():
        head = subscription_get(sub_id)
        locks.customer_lock(head.customer_id)
        sub = locks.subscription_lock(sub_id)
        now = clock.now_for(sub.customer)
        if not sub.is_live:
            return sub
        if at_period_end and sub.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING):
            if not sub.cancel_at_period_end:
                sub.cancel_at_period_end = True
                sub.cancelled_at = now
                Subscription.objects.filter(pk=sub.pk).update(
                    cancel_at_period_end=True, cancelled_at=now
                )
                lifecycle_log.record(sub, sub.status, "cancel_at_period_end", now)
                events.emit(events.SUBSCRIPTION_UPDATED, lifecycle_log.payload(sub), at=now)
            return sub
        if sub.status == SubscriptionStatus.INCOMPLETE:
            raise Conflict(
                "payment_pending", "The first payment is still being processed.", retryable=True
            )
        # Now: open invoices of this subscription will not be collected.
        for invoice in locks.invoices_lock(
            sub.invoices.filter(status=InvoiceStatus.OPEN).values_list("pk", flat=True)
        ):
            invoicing.invoice_void(invoice, now)
        invoicing.subscription_end(sub, "cancelled", "cancelled_by_request", now)
        return sub


def subscription_resume(*, sub_id) -> Subscription:
    """Undo a pending cancel; idempotent. A cancelled subscription cannot resume."""
    with transaction.atomic():
        head = subscription_get(sub_id)
        locks.customer_lock(head.customer_id)
        sub = locks.subscription_lock(sub_id)
        now = clock.now_for(sub.customer)
        if not sub.is_live:
            raise Unprocessable(
                "subscription_not_resumable", f"A {sub.status} subscription cannot be resumed."
            )
        if sub.cancel_at_period_end:
            sub.cancel_at_period_end = False
            sub.cancelled_at = None
            Subscription.objects.filter(pk=sub.pk).update(
                cancel_at_period_end=False, cancelled_at=None
            )
            lifecycle_log.record(sub, sub.status, "resumed", now)
            events.emit(events.SUBSCRIPTION_UPDATED, lifecycle_log.payload(sub), at=now)
        return sub


# --- refunds ----------------------------------------------------------------------------


def invoice_refund(*, invoice_id, amount_minor: int | None = None, reason: str = "") -> CreditNote:
    """A credit note for (part of) a paid invoice, then the money back through the
    gateway after commit (the note's id is the refund's idempotency key). More than was
    paid less earlier refunds is 422 refund_exceeds_payment."""
    with transaction.atomic():
        try:
            head = Invoice.objects.get(pk=invoice_id)
        except (Invoice.DoesNotExist, ValueError, ValidationError):
            raise NotFound("invoice_not_found", "No such invoice.") from None
        invoice = locks.invoice_lock(head.pk)
        refundable = invoice.amount_paid_minor - invoice.amount_refunded_minor
        amount = refundable if amount_minor is None else amount_minor
        if amount <= 0 or amount > refundable:
            raise Unprocessable(
                "refund_exceeds_payment",
                f"At most {display(max(refundable, 0), invoice.currency)} can be refunded.",
            )
        now = clock.now_for(invoice.customer)
        number = locks.counter_take("credit_note")
        note = CreditNote.objects.create(
            number=f"CN-{number:06d}",
            invoice=invoice,
            amount_minor=amount,
            currency=invoice.currency,
            reason=reason,
            created_at=now,
        )
        Invoice.objects.filter(pk=invoice.pk).update(
            amount_refunded_minor=F("amount_refunded_minor") + amount
        )
        events.emit(
            events.CREDIT_NOTE_CREATED,
            {
                "credit_note_id": str(note.pk),
                "invoice_id": str(invoice.pk),
                "customer_id": invoice.customer.customer_id,
                "subscription_id": str(invoice.subscription_id)
                if invoice.subscription_id
                else None,
                "amount": format_amount(amount, invoice.currency),
                "currency": invoice.currency,
            },
            at=now,
        )
    credit_note_refund(note_id=note.pk)
    note.refresh_from_db()
    return note


def credit_note_refund(*, note_id) -> None:
    """Move the money back (outside any transaction); safe to repeat."""
    note = CreditNote.objects.get(pk=note_id)
    if note.refunded_at is not None:
        return
    try:
        ref = get_gateway().refund(
            idempotency_key=f"refund:{note.pk}",
            amount_minor=note.amount_minor,
            currency=note.currency,
        )
    except Exception:
        logger.warning("credit note %s: refund not sent yet", note.pk)
        return
    CreditNote.objects.filter(pk=note.pk, refunded_at__isnull=True).update(
        refund_ref=ref, refunded_at=clock.now_for(note.invoice.customer)
    )
