"""Engine results -> API.md response bodies (plain dicts: the checkout path skips
serializer overhead; serializers.py documents these shapes)."""

from __future__ import annotations

from core.money import format_amount
from coupons.engine.pricing import Evaluation, Skipped
from coupons.engine.types import Applied, Cart, Rejection
from coupons.models import Redemption


def rejection_body(rejection: Rejection, *, key: str) -> dict:
    return {
        key: False,
        "reason": rejection.reason,
        "message": rejection.message,
        "code": rejection.code,
    }


def _coupon(a: Applied, cur: str, typed: frozenset[str]) -> dict:
    return {
        "code": a.terms.code,
        "discount": format_amount(a.discount, cur),
        "shipping_discount": format_amount(a.shipping_discount, cur),
        "type": a.terms.rule.type,
        "message": a.message,
        "auto": a.terms.code not in typed,
    }


def _lines(cart: Cart, discounts) -> list[dict]:
    return [
        {"sku": line.sku, "discount": format_amount(d, cart.currency)}
        for line, d in zip(cart.lines, discounts, strict=True)
    ]


def validate_body(result: Evaluation, cart: Cart) -> dict:
    rejection = result.first_rejection
    if rejection is not None:
        return rejection_body(rejection, key="valid")
    cur = cart.currency
    pricing = result.pricing
    typed = result.typed
    applied = pricing.applied
    first = next((a for a in applied if a.terms.code in typed), applied[0] if applied else None)
    return {
        "valid": True,
        "discount": format_amount(pricing.discount, cur),
        "shipping_discount": format_amount(pricing.shipping_discount, cur),
        "type": first.terms.rule.type if first else None,
        "message": "; ".join(a.message for a in applied),
        "coupons": [_coupon(a, cur, typed) for a in applied],
        "lines": _lines(cart, pricing.line_discounts),
    }


def _skipped(s: Skipped) -> dict:
    body = {"code": s.rejection.code, "reason": s.rejection.reason, "message": s.rejection.message}
    if not s.entered and s.terms is not None:
        body["promotion"] = s.terms.rule.name
    return body


def evaluate_body(result: Evaluation, cart: Cart) -> dict:
    cur = cart.currency
    pricing = result.pricing
    typed = result.typed
    total = cart.subtotal - pricing.discount + cart.shipping - pricing.shipping_discount
    return {
        "applied": [
            {
                **_coupon(a, cur, typed),
                "promotion": a.terms.rule.name,
                "lines": _lines(cart, a.line_discounts),
            }
            for a in pricing.applied
        ],
        "rejected": [_skipped(s) for s in result.rejected],
        "not_applied": [_skipped(s) for s in result.passed_over],
        "subtotal": format_amount(cart.subtotal, cur),
        "discount": format_amount(pricing.discount, cur),
        "shipping": format_amount(cart.shipping, cur),
        "shipping_discount": format_amount(pricing.shipping_discount, cur),
        "total": format_amount(total, cur),
        "currency": cur,
        "lines": _lines(cart, pricing.line_discounts),
        "stacking_policy": result.policy,
        "exact": result.exact,
    }


def redemption_body(x: Redemption) -> dict:
    return {
        "id": str(x.pk),
        "code": x.code.code,
        "auto": x.auto,
        "discount": format_amount(x.discount_minor, x.currency),
        "shipping_discount": format_amount(x.shipping_discount_minor, x.currency),
        "status": x.status,
        "expires_at": x.expires_at.isoformat(),
    }


def apply_body(order_id: str, redemptions: list[Redemption], currency: str) -> dict:
    """A replay shows the held reservations in their own currency."""
    currency = redemptions[0].currency if redemptions else currency
    return {
        "applied": True,
        "discount": format_amount(sum(x.discount_minor for x in redemptions), currency),
        "shipping_discount": format_amount(
            sum(x.shipping_discount_minor for x in redemptions), currency
        ),
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
