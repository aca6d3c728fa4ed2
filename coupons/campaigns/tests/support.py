"""Helpers for the campaign tests: a campaign made through the service, and claim calls."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.utils import timezone

from coupons.campaigns import services
from coupons.campaigns.models import Campaign

_keys = itertools.count()


def make_campaign(
    *,
    inventory: int = 10,
    starts_in: timedelta = timedelta(minutes=-5),
    lasts: timedelta = timedelta(hours=1),
    hold_minutes: int = 15,
    percent_bp: int = 2000,
) -> Campaign:
    start = timezone.now() + starts_in
    return services.campaign_create(
        name="Flash",
        inventory=inventory,
        starts_at=start,
        ends_at=start + lasts,
        discount={"type": "percentage", "percent_bp": percent_bp, "currency": "USD"},
        claim_hold_minutes=hold_minutes,
    )


def claim_url(campaign) -> str:
    return f"/api/v1/campaigns/{campaign.pk if hasattr(campaign, 'pk') else campaign}/claim"


def claim(client, campaign, key: str | None = "auto", **body):
    headers = {}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = f"k-{next(_keys)}" if key == "auto" else key
    return client.post(claim_url(campaign), body, format="json", **headers)
