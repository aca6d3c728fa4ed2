"""Coupon (the rule), Code (a customer-facing string), Redemption (one use), Customer.

Money is integer minor units next to an ISO-4217 currency; percentages are basis points.
Counters (`uses`) only move through conditional updates in `services.py`; the check
constraints are the database's own backstop against over-redemption.
"""

from __future__ import annotations

import uuid

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, RangeOperators
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from core.models import history_user


class DiscountType(models.TextChoices):
    PERCENTAGE = "percentage", "Percentage"
    FIXED = "fixed", "Fixed amount"
    BOGO = "bogo", "Buy X get Y"
    TIERED = "tiered", "Tiered"
    FREE_SHIPPING = "free_shipping", "Free shipping"


class Duration(models.TextChoices):
    """How many of a subscription's invoices a coupon discounts (billing)."""

    ONCE = "once", "Once (the first invoice)"
    REPEATING = "repeating", "Repeating (the first N invoices)"
    FOREVER = "forever", "Forever (every invoice)"


class Customer(models.Model):
    """A shopper as the engine knows them; `external_id` is the storefront's user id."""

    external_id = models.CharField(max_length=100, unique=True)
    segments = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    orders_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.external_id


class Coupon(models.Model):
    code = models.CharField(
        max_length=64,
        unique=True,
        help_text="The coupon's identifier (the seed's coupon_id), e.g. SUMMER25.",
    )
    description = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=20, choices=DiscountType.choices)
    currency = models.CharField(max_length=3, default="USD")
    percent_bp = models.PositiveIntegerField(
        null=True, blank=True, help_text="Percentage in basis points (2500 = 25%)."
    )
    amount_minor = models.BigIntegerField(
        null=True, blank=True, help_text="Fixed discount in minor units."
    )
    cap_minor = models.BigIntegerField(
        null=True, blank=True, help_text="Maximum discount in minor units."
    )
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"threshold_minor": 10000, "discount_minor": 1000}, ...]',
    )
    bogo_buy = models.PositiveSmallIntegerField(null=True, blank=True)
    bogo_get = models.PositiveSmallIntegerField(null=True, blank=True)
    bogo_percent_bp = models.PositiveIntegerField(null=True, blank=True)

    min_cart_minor = models.BigIntegerField(null=True, blank=True)
    eligible_categories = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    eligible_skus = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    excluded_skus = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    eligible_segments = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    first_purchase_only = models.BooleanField(default=False)
    max_uses_total = models.PositiveIntegerField(null=True, blank=True)
    max_uses_per_user = models.PositiveIntegerField(null=True, blank=True)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_to = models.DateTimeField(null=True, blank=True)

    active = models.BooleanField(default=True)
    stackable = models.BooleanField(default=False)
    stack_group = models.CharField(max_length=40, blank=True)
    auto_apply = models.BooleanField(default=False)
    priority = models.IntegerField(default=0)

    # Billing: a subscription's coupon discounts its first `duration_invoices` invoices
    # with something to charge (repeating), only the first (once) or every one (forever).
    # db_default: the raw-SQL inserts (bench seeds) do not name these columns.
    duration = models.CharField(
        max_length=10,
        choices=Duration.choices,
        default=Duration.ONCE,
        db_default=Duration.ONCE,
        help_text="For subscriptions: which invoices the coupon discounts.",
    )
    duration_invoices = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Repeating coupons: how many invoices (at least 1); empty otherwise.",
    )

    # Budget guard: discount (merchandise + shipping) held by reserved and confirmed
    # redemptions, moved with `uses` by the same conditional updates.
    budget_minor = models.BigIntegerField(
        null=True, blank=True, help_text="Total discount budget in minor units (empty: none)."
    )
    budget_used_minor = models.BigIntegerField(default=0, editable=False)

    # Abuse protection (abuse/).
    leak_threshold = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Disable the public code when more unique customers than this redeem it "
        "within an hour (empty: the ABUSE_LEAK_THRESHOLD setting).",
    )
    farming_action = models.CharField(
        max_length=5,
        choices=[("flag", "Flag for review"), ("block", "Block")],
        default="flag",
        help_text="When one shopper identity (device, IP, email, card) redeems this "
        "first-purchase or once-per-customer coupon from several accounts.",
    )
    limit_by_identity = models.BooleanField(
        default=False,
        help_text="The per-customer limit also counts uses by the same device, email or card.",
    )
    disabled_reason = models.CharField(max_length=300, blank=True, default="", editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)

    uses = models.PositiveIntegerField(default=0, editable=False)
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Audit trail of definition changes: staff edits (admin, admin API) and automatic
    # actions (leak auto-disable) with who/why. Counters move by UPDATE and leave no row.
    history = HistoricalRecords(
        excluded_fields=["uses", "budget_used_minor", "updated_at"], get_user=history_user
    )

    class Meta:
        ordering = ["code"]
        indexes = [
            models.Index(
                fields=["active", "auto_apply"],
                name="coupon_active_auto_idx",
                condition=Q(active=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_uses_total__isnull=True) | Q(uses__lte=F("max_uses_total")),
                name="coupon_uses_within_limit",
            ),
            models.CheckConstraint(
                condition=Q(budget_used_minor__gte=0)
                & (Q(budget_minor__isnull=True) | Q(budget_used_minor__lte=F("budget_minor"))),
                name="coupon_budget_within_limit",
            ),
            models.CheckConstraint(
                condition=Q(percent_bp__isnull=True) | Q(percent_bp__lte=10_000),
                name="coupon_percent_at_most_100",
            ),
            models.CheckConstraint(
                condition=Q(bogo_percent_bp__isnull=True) | Q(bogo_percent_bp__lte=10_000),
                name="coupon_bogo_percent_at_most_100",
            ),
            models.CheckConstraint(
                condition=(Q(amount_minor__isnull=True) | Q(amount_minor__gte=0))
                & (Q(cap_minor__isnull=True) | Q(cap_minor__gte=0))
                & (Q(min_cart_minor__isnull=True) | Q(min_cart_minor__gte=0)),
                name="coupon_money_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(valid_from__isnull=True)
                | Q(valid_to__isnull=True)
                | Q(valid_from__lt=F("valid_to")),
                name="coupon_window_ordered",
            ),
            models.CheckConstraint(
                # isnull=False spelled out: NULL >= 1 is NULL, which a CHECK lets pass.
                condition=Q(
                    duration=Duration.REPEATING,
                    duration_invoices__isnull=False,
                    duration_invoices__gte=1,
                )
                | (~Q(duration=Duration.REPEATING) & Q(duration_invoices__isnull=True)),
                name="coupon_duration_invoices_matches",
                violation_error_message="A repeating coupon needs its number of invoices "
                "(at least 1); other durations take none.",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class Code(models.Model):
    """A customer-facing string pointing at a coupon, with optional limits of its own."""

    coupon = models.ForeignKey(Coupon, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=64, unique=True)
    max_uses = models.PositiveIntegerField(null=True, blank=True)
    uses = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="bound_codes",
        db_index=False,  # partial index in Meta: most codes are not bound
        help_text="When set, only this customer may use the code.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The batch that generated the code (codebatches). No database-level constraint: its
    # per-row check at commit is a fifth of the cost of a million-code batch; batches are
    # never deleted, and the ORM still applies SET_NULL if one ever is.
    batch = models.ForeignKey(
        "codebatches.CodeBatch",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="codes",
        db_constraint=False,
    )

    class Meta:
        ordering = ["code"]
        indexes = [
            # Only bound codes (claim tokens, targeted batches) have a customer: an index
            # over the NULLs of a million generated public codes would cost every insert.
            models.Index(
                fields=["customer"], name="code_customer_idx", condition=Q(customer__isnull=False)
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(max_uses__isnull=True) | Q(uses__lte=F("max_uses")),
                name="code_uses_within_limit",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class RedemptionStatus(models.TextChoices):
    RESERVED = "reserved", "Reserved"
    CONFIRMED = "confirmed", "Confirmed"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


HOLDING = (RedemptionStatus.RESERVED, RedemptionStatus.CONFIRMED)


class Redemption(models.Model):
    """One use of a coupon by an order: reserved -> confirmed, or -> released / expired."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="redemptions")
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="redemptions")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions"
    )
    order_id = models.CharField(max_length=100)
    # One apply call = one id shared by every redemption it reserved (its coupon set).
    apply_id = models.UUIDField(
        default=uuid.uuid4,
        help_text="The apply call that reserved this use; an order's live uses share one.",
    )
    status = models.CharField(
        max_length=10, choices=RedemptionStatus.choices, default=RedemptionStatus.RESERVED
    )
    currency = models.CharField(max_length=3)
    discount_minor = models.BigIntegerField()
    shipping_discount_minor = models.BigIntegerField(default=0)
    order_value_minor = models.BigIntegerField(help_text="Merchandise subtotal of the cart.")
    lines = models.JSONField(
        default=list, blank=True, help_text="Per-line discount allocation [{sku, discount_minor}]."
    )
    auto = models.BooleanField(
        default=False, help_text="Applied automatically as a promotion (no code typed)."
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    context = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    returned_minor = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["order_id"], name="redemption_order_idx"),
            models.Index(fields=["-created_at"], name="redemption_created_idx"),
            # Per-customer limits: a customer's live uses of the coupons in a cart.
            models.Index(
                fields=["customer", "coupon"],
                name="redemption_cust_holding_idx",
                condition=Q(status__in=HOLDING),
            ),
            models.Index(
                fields=["expires_at"],
                name="redemption_reserved_exp_idx",
                condition=Q(status=RedemptionStatus.RESERVED),
            ),
        ]
        constraints = [
            # One live use of a coupon per order: a retry or a second apply of the same code
            # to the same order can never take a second use.
            models.UniqueConstraint(
                fields=["coupon", "order_id"],
                condition=Q(status__in=HOLDING),
                name="redemption_one_per_coupon_order",
            ),
            # One coupon set per order: the live uses of an order all come from one apply
            # call. The services serialise applies per order (locks.order_lock); this is the
            # database's own backstop if that code is ever wrong (needs btree_gist).
            ExclusionConstraint(
                name="redemption_one_set_per_order",
                index_type="gist",
                expressions=[
                    ("order_id", RangeOperators.EQUAL),
                    ("apply_id", RangeOperators.NOT_EQUAL),
                ],
                condition=Q(status__in=HOLDING),
            ),
            models.CheckConstraint(
                condition=Q(discount_minor__gte=0)
                & Q(shipping_discount_minor__gte=0)
                & Q(order_value_minor__gte=0),
                name="redemption_money_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code_id}:{self.order_id}:{self.status}"


class StackingPolicy(models.TextChoices):
    NONE = "none", "None: one coupon or promotion per order"
    BY_GROUP = "by_group", "By group: at most one per stack group; non-stackable stand alone"
    FULL = "full", "Full: any stackable coupons combine"


class PromotionSettings(models.Model):
    """Site-wide promotion settings: one row (pk=1), edited in the admin, cached with the
    compiled promotions (coupons/promotions.py). Without the row, the STACKING_POLICY
    setting is the policy."""

    stacking_policy = models.CharField(
        max_length=10, choices=StackingPolicy.choices, default=StackingPolicy.BY_GROUP
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        verbose_name = "promotion settings"
        verbose_name_plural = "promotion settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="promotion_settings_singleton")
        ]

    def __str__(self) -> str:
        return f"Stacking policy: {self.get_stacking_policy_display()}"

    def save(self, *args, **kwargs):
        self.pk = 1
        super().save(*args, **kwargs)
