"""Request and response shapes. Outputs are built as plain dicts in presenters.py; the
output serializers here describe them for the OpenAPI schema."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from coupons.api.fields import CartField

MAX_CODES = 10


class CustomerIn(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    segments = serializers.ListField(child=serializers.CharField(max_length=64),
                                     required=False, max_length=50, default=list)
    orders_count = serializers.IntegerField(min_value=0, required=False, default=0)

    class Meta:
        ref_name = "CustomerIn"


@extend_schema_field({"type": "string",
                      "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
class IPAddressIn(serializers.IPAddressField):
    """An IPv4 or IPv6 address (documented with both formats, not as any string)."""


class ShopperContextIn(serializers.Serializer):
    ip = IPAddressIn(required=False)
    session_id = serializers.CharField(max_length=200, required=False)
    device_id = serializers.CharField(max_length=200, required=False)
    email = serializers.EmailField(required=False)
    payment_fingerprint = serializers.CharField(max_length=200, required=False)

    class Meta:
        ref_name = "ShopperContext"


class CouponValidateIn(serializers.Serializer):
    coupon_code = serializers.CharField(max_length=64, required=False)
    coupon_codes = serializers.ListField(child=serializers.CharField(max_length=64),
                                         required=False, min_length=1, max_length=MAX_CODES)
    customer = CustomerIn(required=False)
    user_id = serializers.CharField(max_length=100, required=False)
    cart = CartField()
    context = ShopperContextIn(required=False)

    class Meta:
        ref_name = "CouponValidateRequest"

    def validate(self, attrs):
        codes = list(attrs.get("coupon_codes") or [])
        if attrs.get("coupon_code"):
            codes.insert(0, attrs["coupon_code"])
        if not codes:
            raise serializers.ValidationError(
                {"coupon_code": ["Give coupon_code or coupon_codes."]})
        attrs["codes"] = codes
        customer = attrs.get("customer")
        user_id = attrs.get("user_id")
        if customer and user_id and customer["id"] != user_id:
            raise serializers.ValidationError(
                {"user_id": ["user_id and customer.id name different customers."]})
        return attrs


class CouponApplyIn(CouponValidateIn):
    order_id = serializers.CharField(max_length=100)

    class Meta:
        ref_name = "CouponApplyRequest"


class OrderReturnIn(serializers.Serializer):
    amount = serializers.DecimalField(max_digits=15, decimal_places=3, min_value=0,
                                      required=False,
                                      help_text="Value of the returned goods; default: all.")

    class Meta:
        ref_name = "OrderReturnRequest"


class LineDiscountOut(serializers.Serializer):
    sku = serializers.CharField()
    discount = serializers.CharField()

    class Meta:
        ref_name = "LineDiscount"


class AppliedCouponOut(serializers.Serializer):
    code = serializers.CharField()
    discount = serializers.CharField()
    shipping_discount = serializers.CharField()
    type = serializers.CharField()
    message = serializers.CharField()

    class Meta:
        ref_name = "AppliedCoupon"


class CouponValidateOut(serializers.Serializer):
    valid = serializers.BooleanField()
    discount = serializers.CharField(required=False)
    shipping_discount = serializers.CharField(required=False)
    type = serializers.CharField(required=False)
    message = serializers.CharField()
    coupons = AppliedCouponOut(many=True, required=False)
    lines = LineDiscountOut(many=True, required=False)
    reason = serializers.CharField(required=False)
    code = serializers.CharField(required=False, allow_null=True)

    class Meta:
        ref_name = "CouponValidateResponse"


class RedemptionOut(serializers.Serializer):
    id = serializers.UUIDField()
    code = serializers.CharField()
    discount = serializers.CharField()
    shipping_discount = serializers.CharField()
    status = serializers.ChoiceField(choices=["reserved", "confirmed", "released", "expired"])
    expires_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Redemption"


class CouponApplyOut(serializers.Serializer):
    applied = serializers.BooleanField()
    discount = serializers.CharField()
    shipping_discount = serializers.CharField()
    order_id = serializers.CharField()
    redemptions = RedemptionOut(many=True)

    class Meta:
        ref_name = "CouponApplyResponse"


class CouponRejectedOut(serializers.Serializer):
    applied = serializers.BooleanField()
    reason = serializers.CharField()
    message = serializers.CharField()
    code = serializers.CharField(allow_null=True)

    class Meta:
        ref_name = "CouponApplyRejected"


class OrderOut(serializers.Serializer):
    order_id = serializers.CharField()
    status = serializers.CharField()
    redemptions = RedemptionOut(many=True)

    class Meta:
        ref_name = "OrderCoupons"


class ErrorDetailOut(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField()

    class Meta:
        ref_name = "ErrorDetail"


class ErrorOut(serializers.Serializer):
    error = ErrorDetailOut()

    class Meta:
        ref_name = "Error"
