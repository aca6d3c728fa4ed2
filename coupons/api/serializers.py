"""Request and response shapes. Outputs are built as plain dicts in presenters.py; the
output serializers here describe them for the OpenAPI schema."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from coupons.api.fields import CartField
from coupons.selectors import normalize_code

MAX_CODES = 10


class CustomerIn(serializers.Serializer):
    id = serializers.CharField(max_length=100)
    segments = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=50, default=list
    )
    orders_count = serializers.IntegerField(min_value=0, required=False, default=0)

    class Meta:
        ref_name = "CustomerIn"


@extend_schema_field({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
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


class CartRequestIn(serializers.Serializer):
    """What every pricing call sends: codes (optional here), the customer, the cart."""

    coupon_code = serializers.CharField(max_length=64, required=False)
    coupon_codes = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=MAX_CODES
    )
    customer = CustomerIn(required=False)
    user_id = serializers.CharField(max_length=100, required=False)
    cart = CartField()
    # DRF's metaclass takes declared fields off the class: no clash with Field.context.
    context = ShopperContextIn(required=False)  # type: ignore[assignment]
    codes_required = False

    def validate(self, attrs):
        codes = list(attrs.get("coupon_codes") or [])
        if attrs.get("coupon_code"):
            codes.insert(0, attrs["coupon_code"])
        if not codes and self.codes_required:
            field = "coupon_codes" if "coupon_codes" in attrs else "coupon_code"
            raise serializers.ValidationError({field: ["Give coupon_code or coupon_codes."]})
        if len(codes) > MAX_CODES:
            raise serializers.ValidationError(
                {"coupon_codes": [f"At most {MAX_CODES} codes per request."]}
            )
        attrs["codes"] = list(dict.fromkeys(normalize_code(c) for c in codes))
        customer = attrs.get("customer")
        user_id = attrs.get("user_id")
        if customer and user_id and customer["id"] != user_id:
            raise serializers.ValidationError(
                {"user_id": ["user_id and customer.id name different customers."]}
            )
        return attrs


class CouponValidateIn(CartRequestIn):
    codes_required = True

    class Meta:
        ref_name = "CouponValidateRequest"


class PromotionEvaluateIn(CartRequestIn):
    class Meta:
        ref_name = "PromotionEvaluateRequest"


class CouponApplyIn(CartRequestIn):
    """Without codes, apply reserves the auto promotions the evaluation chooses."""

    order_id = serializers.CharField(max_length=100)

    class Meta:
        ref_name = "CouponApplyRequest"


class OrderReturnIn(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=15,
        decimal_places=3,
        min_value=0,
        required=False,
        help_text="Value of the returned goods; default: all.",
    )

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
    auto = serializers.BooleanField(help_text="An auto-apply promotion (no code typed).")

    class Meta:
        ref_name = "AppliedCoupon"


class AppliedPromotionOut(AppliedCouponOut):
    promotion = serializers.CharField(help_text="Name shown to the shopper.")
    lines = LineDiscountOut(many=True, help_text="This coupon's share of each line.")

    class Meta:
        ref_name = "AppliedPromotion"


class NotAppliedOut(serializers.Serializer):
    code = serializers.CharField()
    reason = serializers.CharField(help_text="Stable reason code (API.md).")
    message = serializers.CharField(help_text="Why, and what was chosen instead.")
    promotion = serializers.CharField(required=False, help_text="Auto promotions only.")

    class Meta:
        ref_name = "NotApplied"


class PromotionEvaluateOut(serializers.Serializer):
    applied = AppliedPromotionOut(many=True)
    rejected = NotAppliedOut(many=True, help_text="Typed codes not applied.")
    not_applied = NotAppliedOut(
        many=True, help_text="Auto promotions that applied but lost to a better deal."
    )
    subtotal = serializers.CharField()
    discount = serializers.CharField(help_text="Merchandise discount.")
    shipping = serializers.CharField()
    shipping_discount = serializers.CharField()
    total = serializers.CharField(help_text="subtotal - discount + shipping - shipping_discount")
    currency = serializers.CharField()
    lines = LineDiscountOut(many=True)
    stacking_policy = serializers.ChoiceField(choices=["none", "by_group", "full"])
    exact = serializers.BooleanField(
        help_text="The combination is proven best (false only when the bounded search "
        "stopped early; see the README)."
    )

    class Meta:
        ref_name = "PromotionEvaluateResponse"


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
    auto = serializers.BooleanField()
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
