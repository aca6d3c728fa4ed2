"""Reads for flash-sale campaigns."""

from __future__ import annotations

from coupons.campaigns.models import Campaign
from coupons.campaigns.services import CampaignNotFoundError


def campaign_get(campaign_id) -> Campaign:
    """The campaign with its live counter (never cached: `remaining` moves every claim)."""
    try:
        return Campaign.objects.get(pk=campaign_id)
    except Campaign.DoesNotExist:
        raise CampaignNotFoundError(campaign_id) from None
