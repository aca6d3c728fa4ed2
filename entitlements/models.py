"""Entitlements: features, temporary grants and their events, usage counters and
reservations. Plans and their feature values live in billing (Plan.features); a
customer is the id billing and the coupon engine use (one identity across apps).

No counters on customers: a limit's usage is its own row (locked by reserve), each
reservation a row unique per (customer, feature, resource) so a retry counts once, and a
metered feature's usage is one row per event id (counted once, ever) rolled up per period.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from core.models import history_user

# The Account row whose version moves with any plan's feature values.
PLANS_ACCOUNT = "*plans*"


class FeatureType(models.TextChoices):
    BOOLEAN = "boolean"
    LIMIT = "limit"
    METERED = "metered"


class Feature(models.Model):
    key = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=FeatureType.choices)
    description = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class Grant(models.Model):
    """A temporary or permanent extra value of one feature for one customer ("Pro
    features for 14 days"). It counts while not revoked and before `expires_at`: expiry
    happens by time; the beat job only records the `expired` event."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.CharField(max_length=100, db_index=True)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="grants")
    # null (SQL NULL: Django stores None so) is an unlimited limit
    value = models.JSONField(null=True, help_text="true, an integer limit, or null for unlimited.")
    reason = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    expiry_recorded_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(revoked_at__isnull=True, expiry_recorded_at__isnull=True),
                name="grant_expiry_due_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.feature_id} for {self.customer_id}"


class EventKind(models.TextChoices):
    GRANTED = "granted"
    REVOKED = "revoked"
    EXPIRED = "expired"
    PLAN_CHANGED = "plan_changed"


class EntitlementEvent(models.Model):
    """The history of what changed a customer's entitlements, oldest first."""

    customer_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    feature_key = models.CharField(max_length=50, blank=True)
    grant = models.ForeignKey(Grant, null=True, blank=True, on_delete=models.PROTECT)
    detail = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField()
    source_event = models.CharField(
        max_length=60, blank=True, help_text="The billing outbox event this came from."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [
            models.Index(fields=["customer_id", "occurred_at"], name="entevent_customer_idx")
        ]
        constraints = [
            # A billing event redelivered (at least once) is recorded once.
            models.UniqueConstraint(
                fields=["customer_id", "source_event"],
                condition=~Q(source_event=""),
                name="entevent_source_once",
            ),
            models.UniqueConstraint(
                fields=["grant", "kind"],
                condition=Q(grant__isnull=False),
                name="entevent_grant_kind_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.kind}"


class Account(models.Model):
    """A customer's entitlements version: moved in the transaction of every change to
    what they may do, published to Redis on commit. Caches key on it. The row with
    customer_id PLANS_ACCOUNT versions every plan's feature values at once."""

    customer_id = models.CharField(max_length=100, primary_key=True)
    version = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.customer_id} v{self.version}"


class Usage(models.Model):
    """How much of a limit feature a customer holds: the sum of their reservations,
    moved only by reserve/release under this row's lock."""

    customer_id = models.CharField(max_length=100)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+")
    used = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer_id", "feature"], name="usage_one_per_feature"
            ),
            models.CheckConstraint(condition=Q(used__gte=0), name="usage_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.feature_id}: {self.used}"


class Reservation(models.Model):
    customer_id = models.CharField(max_length=100)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+")
    resource_id = models.CharField(max_length=200)
    quantity = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer_id", "feature", "resource_id"], name="reservation_once"
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="reservation_quantity_min"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.feature_id} {self.resource_id}"


class UsageEvent(models.Model):
    """One metered usage event; its id is unique forever (a retry counts once)."""

    event_id = models.CharField(max_length=200, primary_key=True)
    customer_id = models.CharField(max_length=100)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+")
    quantity = models.BigIntegerField()
    timestamp = models.DateTimeField()
    period_start = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gte=0), name="usageevent_quantity_min")
        ]

    def __str__(self) -> str:
        return self.event_id


class MeteredTotal(models.Model):
    """A metered feature's total for one customer and billing period (the check reads
    this, never a count of events), moved in the insert's transaction."""

    customer_id = models.CharField(max_length=100)
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    used = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer_id", "feature", "period_start"], name="meteredtotal_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.feature_id} {self.period_start:%Y-%m-%d}: {self.used}"
