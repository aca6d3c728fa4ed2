"""Input fields for the checkout path.

The cart is validated by hand in one pass (a nested DRF serializer costs about a
millisecond for a 20-line cart, most of the validate budget); errors come out in DRF's
nested shape, and the OpenAPI schema is described by the documentation serializers below.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import cast

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import money
from coupons.engine.types import Cart, Line

MAX_QUANTITY = 100_000
MAX_TEXT = 100
# PostgreSQL text and jsonb refuse NUL; lone surrogates cannot be encoded as UTF-8.
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")


class CartItemDoc(serializers.Serializer):
    sku = serializers.CharField(max_length=MAX_TEXT)
    category = serializers.CharField(max_length=MAX_TEXT, required=False, allow_blank=True)
    unit_price = serializers.DecimalField(
        max_digits=15, decimal_places=3, min_value=0, help_text='Decimal string such as "50.00".'
    )
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)

    class Meta:
        ref_name = "CartItem"


class CartDoc(serializers.Serializer):
    currency = serializers.CharField(min_length=3, max_length=3, help_text="ISO 4217")
    items = CartItemDoc(many=True)
    shipping = serializers.DecimalField(
        max_digits=15, decimal_places=3, required=False, min_value=0
    )
    subtotal = serializers.DecimalField(
        max_digits=15,
        decimal_places=3,
        required=False,
        help_text="Optional; must equal the items' sum.",
    )

    class Meta:
        ref_name = "Cart"


def _text(value, errors: dict, name: str, *, required: bool) -> str:
    if value is None:
        if required:
            errors[name] = ["This field is required."]
        return ""
    if not isinstance(value, str):
        errors[name] = ["Must be a string."]
        return ""
    value = value.strip()
    if _FORBIDDEN.search(value):
        errors[name] = ["Contains characters that are not allowed (NUL or lone surrogates)."]
        return ""
    if required and not value:
        errors[name] = ["This field may not be blank."]
    elif len(value) > MAX_TEXT:
        errors[name] = [f"At most {MAX_TEXT} characters."]
    return value


def _amount(value, currency: str, errors: dict, name: str) -> int:
    try:
        return money.parse_amount(value, currency)
    except money.MoneyError as exc:
        errors[name] = [str(exc)]
        return 0


def _line(item, currency: str) -> tuple[Line | None, dict]:
    """One cart item -> (its Line, {}) or (None, its errors by field)."""
    e: dict = {}
    if not isinstance(item, dict):
        return None, {"non_field_errors": ["Expected an object."]}
    sku = _text(item.get("sku"), e, "sku", required=True)
    category = _text(item.get("category"), e, "category", required=False)
    price = _amount(item.get("unit_price"), currency, e, "unit_price")
    qty = item.get("quantity")
    if (
        isinstance(qty, Decimal)
        and qty.is_finite()
        and qty.adjusted() < 7
        and qty == qty.to_integral_value()
    ):
        qty = int(qty)  # 3.0 is 3; 1e300000 is never expanded into an int
    if isinstance(qty, bool) or not isinstance(qty, int):
        e["quantity"] = ["Enter a whole number."]
    elif not 1 <= qty <= MAX_QUANTITY:
        e["quantity"] = [f"Must be between 1 and {MAX_QUANTITY}."]
    if e:
        return None, e
    return Line(sku=sku, category=category, unit_price=price, quantity=cast(int, qty)), e


@extend_schema_field(CartDoc)
class CartField(serializers.Field):
    default_error_messages = {"invalid": "Expected an object with currency and items."}

    def to_internal_value(self, data) -> Cart:
        if not isinstance(data, dict):
            self.fail("invalid")
        errors: dict = {}
        currency = data.get("currency")
        if not isinstance(currency, str) or not money.is_currency(currency.upper()):
            errors["currency"] = ['Enter an ISO 4217 currency code such as "USD".']
            raise serializers.ValidationError(errors)
        currency = currency.upper()
        items = data.get("items")
        if not isinstance(items, list) or not items:
            errors["items"] = ["Enter a non-empty list of items."]
            raise serializers.ValidationError(errors)
        if len(items) > settings.MAX_CART_ITEMS:
            raise serializers.ValidationError(
                {"items": [f"At most {settings.MAX_CART_ITEMS} items per cart."]}
            )
        lines = []
        item_errors = []
        for item in items:
            line, e = _line(item, currency)
            item_errors.append(e)
            if line is not None:
                lines.append(line)
        if any(item_errors):
            errors["items"] = item_errors
        shipping = 0
        if data.get("shipping") is not None:
            shipping = _amount(data["shipping"], currency, errors, "shipping")
        if errors:
            raise serializers.ValidationError(errors)
        cart = Cart(currency=currency, lines=tuple(lines), shipping=shipping)
        if cart.subtotal > money.MAX_MINOR:
            raise serializers.ValidationError({"items": ["The cart total is too large."]})
        if data.get("subtotal") is not None:
            given = _amount(data["subtotal"], currency, errors, "subtotal")
            if not errors and given != cart.subtotal:
                errors["subtotal"] = [
                    f"Subtotal {money.format_amount(given, currency)} does not equal the "
                    f"items' sum {money.format_amount(cart.subtotal, currency)}."
                ]
            if errors:
                raise serializers.ValidationError(errors)
        return cart

    def to_representation(self, value):  # pragma: no cover - input only
        return value
