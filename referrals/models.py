"""Referrals: a code per referrer, a referral per invitee (the first referrer wins),
each transition recorded once, and the rewards given (and clawed back).

Codes are separate from referral events; no counters on customers: every number is a
query. Identities (email, device, payment fingerprint, IP) are stored only as keyed
hashes (the coupon engine's abuse module computes them).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Program(models.Model):
    """The referral program's settings: one row (pk 1), edited in the admin."""

    referrer_credit_minor = models.BigIntegerField(
        default=1000,
        help_text="The referrer's reward, in minor units of the converting invoice's currency "
        "(1000 = 10.00).",
    )
    hold_days = models.PositiveSmallIntegerField(
        default=14, help_text="Days after the first paid invoice before the reward."
    )
    welcome_percent_bp = models.PositiveIntegerField(
        default=2000, help_text="The invitee's welcome discount, in basis points (2000 = 20%)."
    )
    welcome_invoices = models.PositiveSmallIntegerField(
        default=3, help_text="How many invoices the welcome discount applies to."
    )
    review_max_per_ip_day = models.PositiveSmallIntegerField(
        default=3, help_text="More referrals than this from one IP in 24 hours are held."
    )
    review_max_per_device_day = models.PositiveSmallIntegerField(
        default=3, help_text="More referrals than this from one device in 24 hours are held."
    )
    review_max_per_referrer_hour = models.PositiveSmallIntegerField(
        default=5, help_text="More referrals than this for one referrer in an hour are held."
    )
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="program_singleton")]
        verbose_name = "referral program"

    def __str__(self) -> str:
        return "Referral program"


class ReferralCode(models.Model):
    code = models.CharField(max_length=20, unique=True)
    customer_id = models.CharField(max_length=100, unique=True)
    identity = models.JSONField(
        default=dict, blank=True, help_text="Keyed hashes: kind -> digest (never raw values)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.code} ({self.customer_id})"


class ReferralStatus(models.TextChoices):
    SIGNED_UP = "signed_up"
    CONVERTED = "converted"
    REWARDED = "rewarded"
    REJECTED = "rejected"


class Referral(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.ForeignKey(ReferralCode, on_delete=models.PROTECT, related_name="referrals")
    referrer_id = models.CharField(max_length=100, db_index=True)
    invitee_id = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=12, choices=ReferralStatus.choices)
    reason = models.CharField(max_length=40, blank=True)
    invitee_coupon = models.CharField(max_length=64, blank=True)
    identity = models.JSONField(default=dict, blank=True)
    held_for_review = models.BooleanField(default=False)
    review_reason = models.CharField(max_length=60, blank=True)
    converted_invoice_id = models.CharField(max_length=40, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    test_clock_id = models.CharField(
        max_length=40, blank=True, help_text="The invitee's billing test clock, if any."
    )
    signed_up_at = models.DateTimeField(help_text="On the invitee's clock.")
    converted_at = models.DateTimeField(null=True, blank=True)
    reward_due_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["reward_due_at"],
                condition=Q(status="converted", held_for_review=False),
                name="referral_reward_due_idx",
            ),
            models.Index(fields=["signed_up_at"], name="referral_signed_up_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.referrer_id} -> {self.invitee_id} ({self.status})"


class ReferralTransition(models.Model):
    referral = models.ForeignKey(Referral, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=12, blank=True)
    to_status = models.CharField(max_length=12)
    reason = models.CharField(max_length=60, blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            # Each transition is recorded exactly once.
            models.UniqueConstraint(fields=["referral", "to_status"], name="transition_once")
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status}"


class Reward(models.Model):
    referral = models.OneToOneField(Referral, on_delete=models.PROTECT, related_name="reward")
    customer_id = models.CharField(max_length=100, db_index=True)
    amount_minor = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    granted_at = models.DateTimeField()
    clawed_back_minor = models.BigIntegerField(default=0)
    clawed_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount_minor__gt=0, clawed_back_minor__gte=0)
                & Q(clawed_back_minor__lte=models.F("amount_minor")),
                name="reward_amounts",
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.amount_minor} {self.currency}"
