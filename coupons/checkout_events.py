"""What checkout tells analytics (analytics/events.py), in one place.

Read-only calls (validate, evaluate, the pre-check of apply) are `record`ed into the
in-process buffer: one `cart` event per call (the cart as the engine saw it, for what-if
simulations and the "without coupon" order value) and one `validate` event per typed
code. Money transitions (apply, confirm, release, expire, return) are `write`n inside the
transaction that makes them, so they commit or roll back with the redemptions. The
apply events carry the pre-check's discounts (written before the coupon locks); the
money metrics (confirm, return) come from the redemption rows themselves.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from core.money import format_amount
from coupons.analytics import events
from coupons.engine.pricing import Evaluation
from coupons.engine.types import Cart, Rejection, Shopper
from coupons.models import Redemption


def _payload(shopper: Shopper, cart: Cart) -> dict:
    currency = cart.currency
    return {
        "customer": {
            "id": shopper.id,
            "segments": sorted(shopper.segments),
            "orders_count": shopper.orders_count,
        },
        "cart": {
            "currency": currency,
            "shipping": format_amount(cart.shipping, currency),
            "items": [
                {
                    "sku": x.sku,
                    "category": x.category,
                    "quantity": x.quantity,
                    "unit_price": format_amount(x.unit_price, currency),
                }
                for x in cart.lines
            ],
        },
    }


def _common(shopper: Shopper, cart: Cart) -> dict:
    return {
        "occurred_at": timezone.now(),
        "customer_id": shopper.id or "",
        "currency": cart.currency,
        "order_value_minor": cart.subtotal,
        "new_customer": shopper.orders_count == 0,
    }


def cart_seen(
    evaluation: Evaluation, shopper: Shopper, cart: Cart, common: dict | None = None
) -> None:
    """The cart as priced (apply's pre-check; validate and evaluate through priced)."""
    if not settings.ANALYTICS_ENABLED:
        return
    pricing = evaluation.pricing
    events.record(
        "cart",
        discount_minor=pricing.discount + pricing.shipping_discount,
        payload=_payload(shopper, cart),
        **(common or _common(shopper, cart)),
    )


def priced(evaluation: Evaluation, shopper: Shopper, cart: Cart) -> None:
    """validate / evaluate: the cart, and the outcome of each typed code."""
    if not settings.ANALYTICS_ENABLED:
        return
    common = _common(shopper, cart)
    cart_seen(evaluation, shopper, cart, common)
    pricing = evaluation.pricing
    for a in pricing.applied:
        if a.terms.code in evaluation.typed:
            events.record(
                "validate",
                outcome="valid",
                code=a.terms.code,
                coupon_id=a.terms.rule.coupon_id,
                discount_minor=a.discount + a.shipping_discount,
                **common,
            )
    for skipped in evaluation.rejected:
        terms = skipped.terms
        events.record(
            "validate",
            outcome=skipped.rejection.reason,
            code=terms.code if terms else (skipped.rejection.code or ""),
            coupon_id=terms.rule.coupon_id if terms else None,
            **common,
        )


def apply_rejected(rejection: Rejection, shopper: Shopper, cart: Cart, order_id: str) -> None:
    if not settings.ANALYTICS_ENABLED:
        return
    events.record(
        "apply",
        outcome=rejection.reason,
        code=rejection.code or "",
        customer_id=shopper.id or "",
        order_id=order_id,
        currency=cart.currency,
        order_value_minor=cart.subtotal,
        new_customer=shopper.orders_count == 0,
    )


def _row(
    kind: str,
    x: Redemption,
    now,
    *,
    outcome: str = "ok",
    customer_id: str = "",
    new_customer: bool = False,
    order_value: int | None = None,
) -> dict:
    return {
        "kind": kind,
        "occurred_at": now,
        "outcome": outcome,
        "code": x.code.code,
        "coupon_id": x.coupon_id,
        "customer_id": customer_id,
        "order_id": x.order_id,
        "currency": x.currency,
        "order_value_minor": x.order_value_minor if order_value is None else order_value,
        "discount_minor": x.discount_minor + x.shipping_discount_minor,
        "new_customer": new_customer,
        "auto": x.auto,
    }


def reserving(applied, typed: set[str], shopper: Shopper, cart: Cart, order_id: str) -> None:
    """In apply's transaction: one `apply` event per coupon about to be reserved."""
    now = timezone.now()
    events.write(
        [
            {
                "kind": "apply",
                "occurred_at": now,
                "outcome": "applied",
                "code": a.terms.code,
                "coupon_id": a.terms.rule.coupon_id,
                "customer_id": shopper.id or "",
                "order_id": order_id,
                "currency": cart.currency,
                "order_value_minor": cart.subtotal,
                "discount_minor": a.discount + a.shipping_discount,
                "new_customer": shopper.orders_count == 0,
                "auto": a.terms.code not in typed,
            }
            for a in applied
        ]
    )


def moved(
    kind: str,
    rows: list[Redemption],
    *,
    new_customers: frozenset = frozenset(),
    returned: dict | None = None,
) -> None:
    """In the transition's transaction: confirm / release / expire / return events.
    `rows` need `code` and `customer` loaded; `returned`: redemption id -> amount."""
    now = timezone.now()
    events.write(
        [
            _row(
                kind,
                x,
                now,
                customer_id=x.customer.external_id if x.customer is not None else "",
                new_customer=x.customer_id in new_customers,
                order_value=(returned or {}).get(x.pk),
            )
            for x in rows
        ]
    )
