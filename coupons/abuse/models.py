"""What abuse protection stores: alerts (the audit trail of automatic actions and flags)
and the hashed shopper identities behind redemptions of farming-prone coupons."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AlertKind(models.TextChoices):
    LEAKED_CODE = "leaked_code", "Leaked code auto-disabled"
    MULTI_ACCOUNT = "multi_account", "Multi-account use of one identity"
    RETURN_RATE = "return_rate", "High return rate"
    REENABLED = "reenabled", "Re-enabled by staff"


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    REVIEWED = "reviewed", "Reviewed"
    DISMISSED = "dismissed", "Dismissed"


class AbuseAlert(models.Model):
    """One automatic action or flag. Repeats of the same finding (same kind, coupon and
    subject, e.g. one card across accounts) update one row and count up instead of adding
    rows, so the list stays reviewable."""

    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    coupon = models.ForeignKey(
        "coupons.Coupon", on_delete=models.CASCADE, related_name="abuse_alerts"
    )
    subject = models.CharField(
        max_length=100, blank=True, help_text="What the finding is about (an identity hash...)."
    )
    message = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=10, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    # The occurrence marketing was last emailed about (abuse.tasks.alert_email): a
    # redelivered task never sends the same occurrence twice.
    emailed_occurrence = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "coupon", "subject"], name="abuse_alert_one_per_subject"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.coupon}"


class IdentityUse(models.Model):
    """A hashed shopper identity (device, IP, email, card) seen on a redemption of a
    coupon that farming checks apply to. Live-ness comes from the redemption's status."""

    coupon = models.ForeignKey("coupons.Coupon", on_delete=models.CASCADE, related_name="+")
    redemption = models.ForeignKey(
        "coupons.Redemption", on_delete=models.CASCADE, related_name="identities"
    )
    customer = models.ForeignKey(
        "coupons.Customer", null=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=8)
    digest = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["coupon", "digest"], name="identity_coupon_digest_idx")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.digest[:12]}"
