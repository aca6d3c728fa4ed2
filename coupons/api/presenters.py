"""Engine results -> API.md response bodies (plain dicts: the checkout path skips
serializer overhead; serializers.py documents these shapes)."""

from __future__ import annotations

from core.money import format_amount
from coupons.engine.types import Cart, Pricing, Rejection
from coupons.models import Redemption


def rejection_body(rejection: Rejection, *, key: str) -> dict:
    return {key: False, "reason": rejection.reason, "message": rejection.message,
            "code": rejection.code}


def validate_body(pricing: Pricing, cart: Cart) -> dict:
    if pricing.rejection is not None:
        return rejection_body(pricing.rejection, key="valid")
    cur = cart.currency
    applied = pricing.applied
    return {
        "valid": True,
        "discount": format_amount(pricing.discount, cur),
        "shipping_discount": format_amount(pricing.shipping_discount, cur),
        "type": applied[0].terms.rule.type if applied else None,
        "message": "; ".join(a.message for a in applied),
        "coupons": [{"code": a.terms.code, "discount": format_amount(a.discount, cur),
                     "shipping_discount": format_amount(a.shipping_discount, cur),
                     "type": a.terms.rule.type, "message": a.message} for a in applied],
        "lines": [{"sku": line.sku, "discount": format_amount(d, cur)}
                  for line, d in zip(cart.lines, pricing.line_discounts, strict=True)],
    }


def redemption_body(x: Redemption) -> dict:
    return {
        "id": str(x.pk),
        "code": x.code.code,
        "discount": format_amount(x.discount_minor, x.currency),
        "shipping_discount": format_amount(x.shipping_discount_minor, x.currency),
        "status": x.status,
        "expires_at": x.expires_at.isoformat(),
    }


def apply_body(order_id: str, redemptions: list[Redemption]) -> dict:
    currency = redemptions[0].currency if redemptions else "USD"
    return {
        "applied": True,
        "discount": format_amount(sum(x.discount_minor for x in redemptions), currency),
        "shipping_discount": format_amount(
            sum(x.shipping_discount_minor for x in redemptions), currency),
        "order_id": order_id,
        "redemptions": [redemption_body(x) for x in redemptions],
    }


def order_body(order_id: str, redemptions: list[Redemption]) -> dict:
    statuses = {x.status for x in redemptions}
    return {
        "order_id": order_id,
        "status": statuses.pop() if len(statuses) == 1 else "mixed",
        "redemptions": [redemption_body(x) for x in redemptions],
    }
