"""Coupon analytics: raw checkout events, their daily roll-up, and what-if simulation runs.

Events carry ids, not foreign keys: they outlive coupons and orders, and an insert with no
constraint to check stays cheap on the checkout path. Money is integer minor units next
to the currency, as everywhere else.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.indexes import BrinIndex
from django.db import models
from django.utils import timezone


class EventKind(models.TextChoices):
    CART = "cart", "Cart priced"
    VALIDATE = "validate", "Code validated"
    APPLY = "apply", "Apply"
    CONFIRM = "confirm", "Confirm"
    RELEASE = "release", "Release"
    EXPIRE = "expire", "Expire"
    RETURN = "return", "Return"


class CouponEvent(models.Model):
    """One checkout event. `cart` events (one per priced cart) keep the cart in `payload`
    so the what-if simulation can replay them; the other kinds are per code/redemption."""

    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=12, choices=EventKind.choices)
    outcome = models.CharField(
        max_length=40,
        blank=True,
        help_text='"valid", "applied", "ok" or a reason code such as coupon_expired.',
    )
    code = models.CharField(max_length=64, blank=True)
    coupon_id = models.BigIntegerField(null=True, blank=True)
    customer_id = models.CharField(
        max_length=100, blank=True, help_text="The storefront's customer id."
    )
    order_id = models.CharField(max_length=100, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    order_value_minor = models.BigIntegerField(default=0)
    discount_minor = models.BigIntegerField(
        default=0, help_text="Merchandise plus shipping discount."
    )
    new_customer = models.BooleanField(
        default=False, help_text="The shopper had no confirmed order before."
    )
    auto = models.BooleanField(default=False)
    payload = models.JSONField(
        null=True,
        blank=True,
        help_text='kind=cart only: {"customer": {id, segments, orders_count}, "cart": {...}}.',
    )

    class Meta:
        indexes = [
            # Append-only and time-ordered: a BRIN index is a few pages for any size.
            BrinIndex(fields=["occurred_at"], name="couponevent_occurred_brin"),
            models.Index(fields=["coupon_id", "occurred_at"], name="couponevent_coupon_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.code or '-'}:{self.outcome}"


class DailyCouponFact(models.Model):
    """One coupon's day in one currency, rebuilt from the events by `rollup.rollup_days`."""

    day = models.DateField()
    coupon_id = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    validations = models.PositiveIntegerField(default=0)
    valid_validations = models.PositiveIntegerField(default=0)
    applies = models.PositiveIntegerField(default=0)
    confirms = models.PositiveIntegerField(default=0)
    releases = models.PositiveIntegerField(default=0)
    expires = models.PositiveIntegerField(default=0)
    returns = models.PositiveIntegerField(default=0)
    discount_minor = models.BigIntegerField(default=0, help_text="Sum over confirms.")
    order_value_minor = models.BigIntegerField(default=0, help_text="Sum over confirms.")
    returned_minor = models.BigIntegerField(default=0)
    new_customers = models.PositiveIntegerField(
        default=0, help_text="Distinct confirming customers who were new."
    )
    customers = models.PositiveIntegerField(default=0, help_text="Distinct confirming customers.")
    rolled_up_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "coupon_id", "currency"], name="dailycouponfact_unique_day"
            ),
        ]
        indexes = [models.Index(fields=["coupon_id", "day"], name="dailycouponfact_coupon_idx")]
        # Its admin list is the analytics page (analytics/admin.py): named for marketing.
        verbose_name = "analytics"
        verbose_name_plural = "analytics"

    def __str__(self) -> str:
        return f"{self.day}:{self.coupon_id}:{self.currency}"


class DailySiteFact(models.Model):
    """The whole site's day in one currency, rebuilt with the coupon facts: carts priced
    without any discount (the baseline for "average order value without a coupon") and the
    confirmed orders with a coupon, each order once however many coupons it stacked (the
    all-coupons totals: a sum of coupon facts would count a stacked order per coupon)."""

    day = models.DateField()
    currency = models.CharField(max_length=3)
    carts_without_discount = models.PositiveIntegerField(default=0)
    order_value_without_discount_minor = models.BigIntegerField(default=0)
    orders = models.PositiveIntegerField(
        default=0, help_text="Distinct confirmed orders with at least one coupon."
    )
    order_value_minor = models.BigIntegerField(
        default=0, help_text="Their subtotals, each order once."
    )
    new_customers = models.PositiveIntegerField(
        default=0, help_text="Distinct confirming customers who were new, over all coupons."
    )
    rolled_up_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "currency"], name="dailysitefact_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day}:{self.currency}"


class SimulationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class SimulationRun(models.Model):
    """A what-if run of one coupon over the carts of the last `days` days."""

    coupon = models.ForeignKey(
        "coupons.Coupon", on_delete=models.CASCADE, related_name="simulation_runs"
    )
    days = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=10, choices=SimulationStatus.choices, default=SimulationStatus.QUEUED
    )
    carts_total = models.PositiveIntegerField(default=0)
    carts_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"simulation {self.pk} of {self.coupon_id} ({self.status})"

    @property
    def progress(self) -> float:
        """0..1 for a progress bar."""
        if self.status == SimulationStatus.DONE:
            return 1.0
        return round(self.carts_done / self.carts_total, 4) if self.carts_total else 0.0
