"""Payment-provider webhook events, each stored once (API.md "Provider webhooks").

The unique constraint on (provider, event_id) is what makes a redelivery a no-op: the
second insert of an event fails, whatever the timing, so no read-then-write check is
needed. `attempt_id` names the billing payment attempt the event is about (an id, not a
foreign key: this app never depends on billing's migrations) and, with `created` (the
provider's time of the event), lets an older event be told from a newer one.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class WebhookEvent(models.Model):
    provider = models.CharField(max_length=20, default="stripe")
    event_id = models.CharField(max_length=255, help_text="The provider's event id (evt_...).")
    type = models.CharField(max_length=100)
    created = models.DateTimeField(help_text="When the provider created the event.")
    livemode = models.BooleanField(default=False)
    payload = models.JSONField(help_text="The event as the provider sent it.")
    attempt_id = models.UUIDField(
        null=True, blank=True, help_text="The billing payment attempt the event is about."
    )
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "event_id"], name="webhookevent_once_per_provider"
            ),
        ]
        indexes = [
            # "The newest processed event for this attempt" (services._newest_known).
            models.Index(
                fields=["attempt_id", "-created"],
                condition=Q(attempt_id__isnull=False, processed_at__isnull=False),
                name="webhookevent_attempt_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.event_id} ({self.type})"
