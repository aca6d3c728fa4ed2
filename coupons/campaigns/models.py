"""Flash-sale campaigns (limited inventory, a time window) and the claims customers make.

`Campaign.claimed` is the inventory counter: it only moves through conditional updates in
`services.py` (claim: +1 while `claimed < inventory`; expiry: -n for the claims it flips),
and the check constraints are the database's own backstop against overselling. The
unique (campaign, customer) constraint is what makes a customer's second claim, a retry
or a second tab, impossible rather than unlikely (SPEC rule 3).
"""

from __future__ import annotations

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.models import IdempotentCreation


class CampaignStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    LIVE = "live", "Live"
    SOLD_OUT = "sold_out", "Sold out"
    ENDED = "ended", "Ended"


def campaign_status(
    *, starts_at, ends_at, stopped_at, claimed: int, inventory: int, now=None
) -> str:
    """Derived, never stored: a stored status would need a job to flip it at the start and
    end times and could disagree with the window the claim path checks."""
    now = now or timezone.now()
    if stopped_at is not None or now >= ends_at:
        return CampaignStatus.ENDED
    if now < starts_at:
        return CampaignStatus.SCHEDULED
    if claimed >= inventory:
        return CampaignStatus.SOLD_OUT
    return CampaignStatus.LIVE


class Campaign(IdempotentCreation):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    coupon = models.ForeignKey(
        "coupons.Coupon",
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="The discount a claim token gives (a coupon without a public code).",
    )
    inventory = models.PositiveIntegerField(
        validators=[MinValueValidator(1)], help_text="Units for sale (claims)."
    )
    claimed = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="Units held by live or redeemed claims; expired claims give theirs back.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    claim_hold_minutes = models.PositiveIntegerField(
        default=15,
        validators=[MinValueValidator(1), MaxValueValidator(1440)],
        help_text="How long a claim's token stays valid before its unit returns.",
    )
    stopped_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Set by the admin's stop button: no new claims from then on.",
    )
    # idempotency_principal, _key and _fingerprint: core.models.IdempotentCreation.
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(claimed__gte=0) & Q(claimed__lte=F("inventory")),
                name="campaign_claimed_within_inventory",
            ),
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="campaign_window_ordered"
            ),
            models.CheckConstraint(
                condition=Q(inventory__gte=1), name="campaign_inventory_positive"
            ),
            models.CheckConstraint(
                condition=Q(claim_hold_minutes__gte=1) & Q(claim_hold_minutes__lte=1440),
                name="campaign_hold_minutes_range",
            ),
            *IdempotentCreation.Meta.constraints,  # "<model>_idempotency_key_unique"
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def remaining(self) -> int:
        return max(0, self.inventory - self.claimed)

    def status_at(self, now=None) -> str:
        return campaign_status(
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            stopped_at=self.stopped_at,
            claimed=self.claimed,
            inventory=self.inventory,
            now=now,
        )

    @property
    def status(self) -> str:
        return self.status_at()


class ClaimStatus(models.TextChoices):
    CLAIMED = "claimed", "Claimed"
    REDEEMED = "redeemed", "Redeemed"
    EXPIRED = "expired", "Expired"


class Claim(models.Model):
    """One customer's unit of a campaign, and the token (a bound, single-use code) for it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="claims")
    customer = models.ForeignKey(
        "coupons.Customer", on_delete=models.PROTECT, related_name="campaign_claims"
    )
    code = models.OneToOneField(
        "coupons.Code",
        on_delete=models.PROTECT,
        related_name="campaign_claim",
        help_text="The claim token: bound to the customer, max_uses=1, expires with the claim.",
    )
    status = models.CharField(
        max_length=10, choices=ClaimStatus.choices, default=ClaimStatus.CLAIMED
    )
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(
        null=True, blank=True, help_text="When an expired claim gave its unit back."
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer"], name="claim_one_per_customer_campaign"
            ),
        ]
        indexes = [
            # The expiry job's scan: only claims still holding a unit.
            models.Index(
                fields=["expires_at"],
                name="claim_claimed_expires_idx",
                condition=Q(status="claimed"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id}:{self.customer_id}:{self.status}"
