"""Stats API shapes. The response is built by analytics.selectors.coupon_stats; these
serializers describe it for the OpenAPI schema."""

from __future__ import annotations

from datetime import date, timedelta

from rest_framework import serializers

from coupons.analytics import rollup

DEFAULT_DAYS = 30
MAX_DAYS = 366
EARLIEST, LATEST = date(2000, 1, 1), date(2999, 12, 31)  # far from date.min/max overflow


class CouponStatsQuery(serializers.Serializer):
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, inclusive; default the last 30 days through today."""

    class Meta:
        ref_name = "CouponStatsQuery"

    def get_fields(self):  # "from" is a Python keyword: it cannot be a class attribute
        return {
            "from": serializers.DateField(required=False, help_text="First day (inclusive)."),
            "to": serializers.DateField(required=False, help_text="Last day (inclusive)."),
        }

    def validate(self, attrs):
        for name in ("from", "to"):
            if name in attrs and not EARLIEST <= attrs[name] <= LATEST:
                raise serializers.ValidationError(
                    {name: [f"Enter a date from {EARLIEST} to {LATEST}."]}
                )
        end = attrs.get("to") or rollup.today()
        start = attrs.get("from") or end - timedelta(days=DEFAULT_DAYS - 1)
        if start > end:
            raise serializers.ValidationError({"from": ["Must not be after 'to'."]})
        if (end - start).days + 1 > MAX_DAYS:
            raise serializers.ValidationError({"to": [f"At most {MAX_DAYS} days per request."]})
        return {"start": start, "end": end}


class StatsDayOut(serializers.Serializer):
    day = serializers.DateField()
    validations = serializers.IntegerField()
    redemptions = serializers.IntegerField(help_text="Coupon uses on confirmed orders.")
    orders = serializers.IntegerField(help_text="Confirmed orders (one coupon: = redemptions).")
    discount = serializers.CharField()
    order_value = serializers.CharField()
    revenue_impact = serializers.CharField()
    new_customers = serializers.IntegerField()

    class Meta:
        ref_name = "CouponStatsDay"


class StatsBudgetOut(serializers.Serializer):
    budget = serializers.CharField()
    spent = serializers.CharField(help_text="Discount of confirmed redemptions.")
    reserved = serializers.CharField(help_text="Discount held by reserved redemptions.")
    remaining = serializers.CharField()
    burn = serializers.FloatField(allow_null=True, help_text="(spent + reserved) / budget")

    class Meta:
        ref_name = "CouponStatsBudget"


class StatsCampaignOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()

    class Meta:
        ref_name = "CouponStatsCampaign"


class CouponStatsOut(serializers.Serializer):
    code = serializers.CharField()
    description = serializers.CharField()
    currency = serializers.CharField()
    validation_attempts = serializers.IntegerField()
    valid_attempts = serializers.IntegerField()
    applies = serializers.IntegerField(help_text="Reservations made at apply.")
    redemptions = serializers.IntegerField(help_text="Confirmed redemptions.")
    orders = serializers.IntegerField(
        help_text="Confirmed orders with the coupon (a coupon is used once per order)."
    )
    releases = serializers.IntegerField()
    expires = serializers.IntegerField()
    returns = serializers.IntegerField()
    redemption_rate = serializers.FloatField(
        allow_null=True, help_text="redemptions / validation_attempts"
    )
    discount_given = serializers.CharField(help_text="Merchandise plus shipping discount.")
    order_value = serializers.CharField(help_text="Subtotal of the confirmed orders.")
    revenue_impact = serializers.CharField(help_text="order_value - discount_given")
    returned_value = serializers.CharField()
    average_order_value = serializers.CharField(allow_null=True)
    average_order_value_without_coupon = serializers.CharField(
        allow_null=True, help_text="Carts priced without any discount, same currency and days."
    )
    new_customers = serializers.IntegerField()
    discount_per_new_customer = serializers.CharField(allow_null=True)
    return_rate = serializers.FloatField(allow_null=True, help_text="returns / redemptions")
    budget = StatsBudgetOut(allow_null=True)
    campaign = StatsCampaignOut(allow_null=True)
    daily = StatsDayOut(many=True)

    class Meta:
        ref_name = "CouponStats"

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.DateField()
        fields["to"] = serializers.DateField()
        return fields
