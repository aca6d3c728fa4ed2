"""Billing's tables: plans, billing customers and their credit ledger, subscriptions and
their transitions, invoices with lines, payment attempts, credit notes, test clocks and
the outbox of billing events.

All money is integer minor units next to an ISO-4217 currency; check constraints keep
amounts non-negative and invoices consistent (total = subtotal - discount - credit), so
a bug elsewhere fails loudly instead of writing a wrong invoice. Billing keys its
customers by the same storefront id the coupon engine uses and keeps its own table.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from core.models import IdempotentCreation, history_user


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Plan(models.Model):
    """A price for a set of features. A new tier or a new price is a new row: amount,
    currency and interval never change once somebody subscribed (plan_immutable)."""

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    interval = models.CharField(max_length=5, choices=Interval.choices, default=Interval.MONTH)
    trial_days = models.PositiveSmallIntegerField(default=0)
    is_default = models.BooleanField(
        default=False, help_text="The free plan customers without a live subscription fall back to."
    )
    active = models.BooleanField(default=True)
    features = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["amount_minor", "code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gte=0, amount_minor__lte=10**13),
                name="plan_amount_in_range",
            ),
            models.CheckConstraint(condition=Q(trial_days__lte=730), name="plan_trial_days_max"),
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="plan_one_default"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class TestClock(models.Model):
    """Simulated time for the customers attached to it (Stripe test clocks)."""

    __test__ = False  # not a pytest test class

    class Status(models.TextChoices):
        READY = "ready"
        ADVANCING = "advancing"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    frozen_time = models.DateTimeField()
    target_time = models.DateTimeField(null=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name or str(self.id)


class BillingCustomer(models.Model):
    """The payer. `credit_balance_minor` is the sum of the ledger, moved only by
    conditional updates next to the ledger row that explains each change."""

    customer_id = models.CharField(max_length=100, unique=True)
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=200, blank=True)
    payment_method = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    credit_balance_minor = models.BigIntegerField(default=0, editable=False)
    test_clock = models.ForeignKey(
        TestClock, null=True, blank=True, on_delete=models.PROTECT, related_name="customers"
    )
    # The signup: the moment of creation on the customer's clock (its test clock's time
    # when it has one; customer_upsert sets it). Moving the customer onto another clock
    # (or off one), which is allowed only before its first subscription, dates it again at
    # the new clock's now. created_at stays the wall clock's row time.
    signed_up_at = models.DateTimeField(
        default=timezone.now,
        db_index=True,
        editable=False,
        help_text="On the customer's clock (a test clock's time for a customer on one).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(credit_balance_minor__gte=0), name="billingcustomer_credit_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.customer_id


class CreditEntry(models.Model):
    """One movement of a customer's credit: positive adds, negative uses. `reference`
    makes a grant from another app (a referral reward) happen once."""

    class Kind(models.TextChoices):
        CREDIT_NOTE = "credit_note", "Credit note"
        REFERRAL_REWARD = "referral_reward", "Referral reward"
        APPLIED = "applied", "Applied to an invoice"
        CLAWBACK = "clawback", "Clawed back"
        ADJUSTMENT = "adjustment", "Adjustment"

    customer = models.ForeignKey(BillingCustomer, on_delete=models.PROTECT, related_name="credits")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    invoice = models.ForeignKey(
        "Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="credits"
    )
    reference = models.CharField(max_length=100, blank=True, default="")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "credit entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "reference"],
                condition=~Q(reference=""),
                name="creditentry_reference_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_minor}"


class SubscriptionStatus(models.TextChoices):
    INCOMPLETE = "incomplete", "Incomplete"  # first charge in flight (seconds)
    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"


LIVE_STATUSES = ("incomplete", "trialing", "active", "past_due")


class Subscription(IdempotentCreation):
    """A customer on a plan. Periods are counted from `anchor` (period k starts at
    anchor + k intervals, clamped to the month's end), so Jan 31 -> Feb 28 -> Mar 31.
    `status` moves only through billing.engine.lifecycle, each move a transition row."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        BillingCustomer, on_delete=models.PROTECT, related_name="subscriptions"
    )
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=12, choices=SubscriptionStatus.choices)
    anchor = models.DateTimeField(help_text="Start of the first paid period.")
    period_index = models.PositiveIntegerField(default=0)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    trial_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    pending_plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The coupon, as the coupon engine redeemed it for this subscription.
    coupon_code = models.CharField(max_length=64, blank=True)
    coupon_id = models.BigIntegerField(null=True, blank=True)
    coupon_order_id = models.CharField(max_length=100, blank=True)
    discount_remaining = models.PositiveIntegerField(
        null=True, blank=True, help_text="Invoices still discounted; empty: forever."
    )
    past_due_since = models.DateTimeField(null=True, blank=True)
    grace_ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When a past-due grace ran out (features fell back)."
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            *IdempotentCreation.Meta.constraints,
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status__in=LIVE_STATUSES),
                name="subscription_one_live_per_customer",
            ),
            models.CheckConstraint(
                condition=Q(current_period_end__gt=F("current_period_start")),
                name="subscription_period_forward",
            ),
        ]
        indexes = [
            models.Index(
                fields=["current_period_end"],
                condition=Q(status__in=("active", "trialing")),
                name="subscription_due_idx",
            ),
            models.Index(
                fields=["trial_end"],
                condition=Q(status="trialing"),
                name="subscription_trial_end_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer.customer_id} on {self.plan.code} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES


class SubscriptionTransition(models.Model):
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="transitions"
    )
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12)
    reason = models.CharField(max_length=60)
    at = models.DateTimeField(help_text="On the customer's clock.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status} ({self.reason})"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class BillingReason(models.TextChoices):
    SUBSCRIPTION_CREATE = "subscription_create"
    SUBSCRIPTION_CYCLE = "subscription_cycle"
    SUBSCRIPTION_UPDATE = "subscription_update"


class InvoiceCounter(models.Model):
    """Gapless invoice numbers: the row is locked and moved in the transaction that
    finalises the invoice, so a rolled-back finalisation gives its number back."""

    name = models.CharField(max_length=20, primary_key=True)
    last_number = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.last_number}"


class Invoice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=30, unique=True, null=True, blank=True)
    customer = models.ForeignKey(BillingCustomer, on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    plan = models.ForeignKey(
        Plan,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The plan this invoice charges for (an upgrade's: the new plan).",
    )
    billing_reason = models.CharField(max_length=20, choices=BillingReason.choices)
    status = models.CharField(max_length=15, choices=InvoiceStatus.choices)
    currency = models.CharField(max_length=3)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    subtotal_minor = models.BigIntegerField(default=0)
    discount_minor = models.BigIntegerField(default=0)
    credit_applied_minor = models.BigIntegerField(default=0)
    total_minor = models.BigIntegerField(default=0)
    amount_paid_minor = models.BigIntegerField(default=0)
    amount_refunded_minor = models.BigIntegerField(default=0)
    attempt_count = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-number"]
        constraints = [
            # One invoice per subscription period (renewals racing each other).
            models.UniqueConstraint(
                fields=["subscription", "period_start"],
                condition=Q(billing_reason__in=("subscription_create", "subscription_cycle")),
                name="invoice_one_per_period",
            ),
            models.CheckConstraint(
                condition=Q(
                    subtotal_minor__gte=0,
                    discount_minor__gte=0,
                    credit_applied_minor__gte=0,
                    total_minor__gte=0,
                    amount_paid_minor__gte=0,
                    amount_refunded_minor__gte=0,
                ),
                name="invoice_amounts_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(
                    total_minor=F("subtotal_minor")
                    - F("discount_minor")
                    - F("credit_applied_minor")
                ),
                name="invoice_total_adds_up",
            ),
            models.CheckConstraint(
                condition=Q(amount_paid_minor__lte=F("total_minor"))
                & Q(amount_refunded_minor__lte=F("amount_paid_minor")),
                name="invoice_paid_within_total",
            ),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(number__isnull=False),
                name="invoice_finalised_has_number",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="open"),
                name="invoice_retry_due_idx",
            ),
            models.Index(fields=["customer", "-created_at"], name="invoice_customer_idx"),
        ]

    def __str__(self) -> str:
        return self.number or f"draft {self.id}"

    @property
    def amount_due_minor(self) -> int:
        if self.status != InvoiceStatus.OPEN:
            return 0
        return self.total_minor - self.amount_paid_minor


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        SUBSCRIPTION = "subscription"
        PRORATION = "proration"
        DISCOUNT = "discount"
        CREDIT = "credit"
        USAGE = "usage"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=15, choices=Kind.choices)
    description = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    amount_minor = models.BigIntegerField(help_text="Signed: discounts and credits are negative.")

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoiceline_position"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_minor}"


class PaymentAttempt(models.Model):
    """One charge of an invoice, recorded before the gateway is called; its id is the
    gateway's idempotency key, so asking again after a crash can never charge twice."""

    class Status(models.TextChoices):
        PENDING = "pending"  # recorded, the gateway call not answered yet
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="attempts")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    provider_ref = models.CharField(max_length=100, blank=True)
    failure_code = models.CharField(max_length=60, blank=True)
    failure_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # At most one charge of an invoice in flight.
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(status="pending"), name="paymentattempt_one_pending"
            ),
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0), name="paymentattempt_amount_positive"
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="paymentattempt_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invoice_id} {self.status}"


class CreditNote(models.Model):
    """A refund of (part of) a paid invoice; the money goes back through the gateway
    after commit (`refund_ref` set when the gateway answered)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=40, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=200, blank=True)
    refund_ref = models.CharField(max_length=100, blank=True)
    refunded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0), name="creditnote_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.number


class OutboxEvent(models.Model):
    """A billing event written in the same transaction as the change it reports and
    delivered after commit to in-process consumers, at least once (billing.events)."""

    type = models.CharField(max_length=40)
    payload = models.JSONField()
    occurred_at = models.DateTimeField(help_text="On the customer's clock.")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], condition=Q(delivered_at__isnull=True), name="outbox_undelivered"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class TestGatewayCharge(models.Model):
    """The built-in test gateway's own record (it plays the provider): one row per
    idempotency key, written outside billing's transactions, so a retried call with the
    same key returns the first answer and an unfinished attempt can be asked about."""

    __test__ = False

    idempotency_key = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, default="charge")
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    payment_method = models.CharField(max_length=100, blank=True)
    succeeded = models.BooleanField()
    failure_code = models.CharField(max_length=60, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.idempotency_key
