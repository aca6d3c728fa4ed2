"""Eligibility: the checks of API.md, in its fixed order; the first failure is the reason.

exists, active, window, total limit, customer limit, bound customer, segment,
first purchase, currency, minimum cart, eligible items.
"""

from __future__ import annotations

from datetime import datetime

from core.money import display
from coupons.engine import reasons as r
from coupons.engine.types import TIERED, Cart, CodeTerms, Rejection, Rule, Shopper, Usage

BUDGET_EXHAUSTED = "The coupon's discount budget is used up"


def _reject(reason: str, code: str | None, message: str | None = None) -> Rejection:
    return Rejection(reason=reason, message=message or r.MESSAGES[reason], code=code)


def eligible_line_indexes(rule: Rule, cart: Cart) -> list[int]:
    """Lines the coupon may discount: matching category or SKU (when restricted), not excluded."""
    restricted = bool(rule.eligible_categories or rule.eligible_skus)
    out = []
    for index, line in enumerate(cart.lines):
        if line.sku in rule.excluded_skus:
            continue
        if (
            restricted
            and line.category not in rule.eligible_categories
            and line.sku not in rule.eligible_skus
        ):
            continue
        out.append(index)
    return out


def check(  # noqa: C901 - an ordered list of conditions; the first failure is the answer
    terms: CodeTerms | None,
    usage: Usage,
    shopper: Shopper,
    cart: Cart,
    now: datetime,
    *,
    entered: str | None = None,
) -> Rejection | None:
    """Return the first failed condition, or None when the code may be applied."""
    code = terms.code if terms else entered
    if terms is None:
        return _reject(r.COUPON_NOT_FOUND, code)
    rule = terms.rule
    if not (rule.active and terms.active):
        return _reject(r.COUPON_INACTIVE, code)
    if rule.valid_from is not None and now < rule.valid_from:
        return _reject(r.COUPON_NOT_STARTED, code)
    if (rule.valid_to is not None and now > rule.valid_to) or (
        terms.expires_at is not None and now > terms.expires_at
    ):
        return _reject(r.COUPON_EXPIRED, code)
    if (rule.max_uses_total is not None and usage.coupon_uses >= rule.max_uses_total) or (
        terms.max_uses is not None and usage.code_uses >= terms.max_uses
    ):
        return _reject(r.USAGE_LIMIT_REACHED, code)
    if rule.budget is not None and usage.budget_used >= rule.budget:
        return _reject(r.USAGE_LIMIT_REACHED, code, BUDGET_EXHAUSTED)
    if rule.max_uses_per_user is not None:
        if shopper.id is None:
            return _reject(r.CUSTOMER_REQUIRED, code)
        if usage.customer_uses >= rule.max_uses_per_user:
            return _reject(r.CUSTOMER_LIMIT_REACHED, code)
    if terms.bound_customer is not None:
        if shopper.id is None:
            return _reject(r.CUSTOMER_REQUIRED, code)
        if shopper.id != terms.bound_customer:
            return _reject(r.CODE_BOUND_TO_OTHER_CUSTOMER, code)
    if rule.eligible_segments and not (rule.eligible_segments & shopper.segments):
        return _reject(r.SEGMENT_NOT_ELIGIBLE, code)
    if rule.first_purchase_only:
        if shopper.id is None:
            return _reject(r.CUSTOMER_REQUIRED, code)
        if shopper.orders_count > 0:
            return _reject(r.FIRST_PURCHASE_ONLY, code)
    if rule.currency != cart.currency:
        return _reject(
            r.CURRENCY_MISMATCH, code, f"This coupon is valid for {rule.currency} carts only"
        )
    if rule.min_cart is not None and cart.subtotal < rule.min_cart:
        missing = rule.min_cart - cart.subtotal
        return _reject(
            r.MIN_CART_VALUE_NOT_MET,
            code,
            f"Add {display(missing, cart.currency)} more to use this coupon "
            f"(minimum {display(rule.min_cart, cart.currency)})",
        )
    indexes = eligible_line_indexes(rule, cart)
    if not indexes:
        return _reject(r.NO_ELIGIBLE_ITEMS, code)
    if rule.type == TIERED and rule.tiers:
        lowest = min(t.threshold for t in rule.tiers)
        spend = sum(cart.lines[i].amount for i in indexes)
        if spend < lowest:
            return _reject(
                r.MIN_CART_VALUE_NOT_MET,
                code,
                f"Spend {display(lowest - spend, cart.currency)} more on eligible "
                f"items to use this coupon",
            )
    return None
