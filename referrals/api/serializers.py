"""Referrals' input serializers and output shapes (API.md "Referrals")."""

from __future__ import annotations

from rest_framework import serializers

from core.api.fields import TextField


class ContextIn(serializers.Serializer):
    email = TextField(max_length=254, required=False)
    device_id = TextField(max_length=200, required=False)
    ip = TextField(max_length=64, required=False)
    payment_fingerprint = TextField(max_length=200, required=False)

    class Meta:
        ref_name = "ReferralContextIn"


class CodeIn(serializers.Serializer):
    customer_id = TextField(max_length=100)
    context = ContextIn(required=False)  # type: ignore[assignment]

    class Meta:
        ref_name = "ReferralCodeIn"


class CodeOut(serializers.Serializer):
    code = serializers.CharField()
    customer_id = serializers.CharField()

    class Meta:
        ref_name = "ReferralCodeOut"


class AttributeIn(serializers.Serializer):
    code = TextField(max_length=40)
    customer_id = TextField(max_length=100)
    context = ContextIn(required=False)  # type: ignore[assignment]

    class Meta:
        ref_name = "ReferralAttributeIn"


class AttributeOut(serializers.Serializer):
    referral_id = serializers.UUIDField()
    status = serializers.CharField()
    referrer_id = serializers.CharField()
    invitee_coupon = serializers.CharField()

    class Meta:
        ref_name = "ReferralAttributeOut"


class ReferralItemOut(serializers.Serializer):
    referral_id = serializers.UUIDField()
    status = serializers.CharField()
    reason = serializers.CharField(required=False)
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "ReferralItemOut"


class CustomerOut(serializers.Serializer):
    code = serializers.CharField(allow_null=True)
    referrals = ReferralItemOut(many=True)
    rewards_earned = serializers.CharField()
    credit_balance = serializers.CharField()

    class Meta:
        ref_name = "ReferralCustomerOut"


class StatsOut(serializers.Serializer):
    signups = serializers.IntegerField()
    referred_signups = serializers.IntegerField()
    organic_signups = serializers.IntegerField()
    referred_share = serializers.FloatField()
    conversions = serializers.IntegerField()
    conversion_rate = serializers.FloatField()
    rewards_issued = serializers.IntegerField()
    k_factor = serializers.FloatField(allow_null=True)

    class Meta:
        ref_name = "ReferralStatsOut"
