"""Input and output of the flash-sale endpoints (API.md "Flash-sale claims")."""

from __future__ import annotations

from rest_framework import serializers

from coupons.api.admin_serializers import CouponDefinitionIn, ValidityField
from coupons.api.serializers import ShopperContextIn


class CampaignDiscountIn(CouponDefinitionIn):
    """The seed's coupon definition without a code: the campaign names its coupon, and
    nobody types it (the discount is reached only through claim tokens)."""

    class Meta:
        ref_name = "CampaignDiscount"

    def get_fields(self):
        fields = super().get_fields()
        for name in ("coupon_id", "code", "auto_apply"):
            fields.pop(name, None)
        return fields

    def validate(self, attrs):
        return attrs


class CampaignCreateIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    inventory = serializers.IntegerField(min_value=1, max_value=10_000_000)
    starts_at = ValidityField(end_of_day=False)
    ends_at = ValidityField(end_of_day=True)
    discount = CampaignDiscountIn()
    claim_hold_minutes = serializers.IntegerField(min_value=1, max_value=1440, default=15)

    class Meta:
        ref_name = "CampaignCreateIn"

    def validate(self, attrs):
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["ends_at must be after starts_at."]})
        return attrs


class CampaignOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    # Plain strings: a choice field named "status" would collide with other apps' enums.
    status = serializers.CharField(help_text="scheduled | live | sold_out | ended")
    remaining = serializers.IntegerField()
    inventory = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Campaign"


class CampaignAdminOut(CampaignOut):
    claimed = serializers.IntegerField()
    claim_hold_minutes = serializers.IntegerField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    coupon_id = serializers.IntegerField()

    class Meta:
        ref_name = "CampaignAdmin"


class _CustomerRef(serializers.Serializer):
    id = serializers.CharField(max_length=100, required=False)

    class Meta:
        ref_name = "CampaignClaimCustomer"


class ClaimIn(serializers.Serializer):
    customer = _CustomerRef(required=False)
    user_id = serializers.CharField(max_length=100, required=False)
    context = ShopperContextIn(required=False)  # type: ignore[assignment] # as apply's

    class Meta:
        ref_name = "CampaignClaimIn"


class ClaimOut(serializers.Serializer):
    claim_id = serializers.UUIDField()
    token = serializers.CharField(help_text="Use as coupon_code at validate/apply.")
    status = serializers.CharField(help_text="claimed | redeemed | expired")
    expires_at = serializers.DateTimeField()

    class Meta:
        ref_name = "CampaignClaimOut"


class ClaimRejectedOut(serializers.Serializer):
    claimed = serializers.BooleanField()
    reason = serializers.ChoiceField(choices=["sold_out", "campaign_not_live"])
    message = serializers.CharField()

    class Meta:
        ref_name = "CampaignClaimRejected"


class CampaignListOut(serializers.Serializer):
    results = CampaignAdminOut(many=True)

    class Meta:
        ref_name = "CampaignList"
