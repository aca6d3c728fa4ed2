"""How much one coupon takes off, given what earlier coupons in the stack left.

`remaining[i]` is line i's amount still payable; a coupon never takes more than that, so
a stack can never discount more than the merchandise subtotal, nor free shipping more
than the shipping price.
"""

from __future__ import annotations

from core.money import allocate, display, percent_of
from coupons.engine import types as T
from coupons.engine.eligibility import eligible_line_indexes
from coupons.engine.types import Cart, Rule


def _percent_text(bp: int) -> str:
    whole, frac = divmod(bp, 100)
    return f"{whole}%" if not frac else f"{whole}.{frac:02d}".rstrip("0") + "%"


def describe(rule: Rule, currency: str, tier_discount: int | None = None) -> str:
    if rule.type == T.PERCENTAGE:
        text = f"{_percent_text(rule.percent_bp or 0)} off"
        return text + (f" (max {display(rule.cap, currency)})" if rule.cap is not None else "")
    if rule.type == T.FIXED:
        return f"{display(rule.amount or 0, currency)} off"
    if rule.type == T.BOGO:
        pct = rule.bogo_percent_bp if rule.bogo_percent_bp is not None else 10_000
        reward = "free" if pct == 10_000 else f"at {_percent_text(pct)} off"
        return f"Buy {rule.bogo_buy} get {rule.bogo_get} {reward}"
    if rule.type == T.TIERED:
        if tier_discount is None:
            return "Tiered discount"
        return f"{display(tier_discount, currency)} off your order"
    return "Free shipping"


def _spread(total: int, indexes: list[int], remaining: list[int]) -> list[int]:
    parts = allocate(total, [remaining[i] for i in indexes])
    out = [0] * len(remaining)
    for index, part in zip(indexes, parts, strict=True):
        out[index] = part
    return out


def _bogo_lines(rule: Rule, cart: Cart, indexes: list[int], remaining: list[int]) -> list[int]:
    buy, get = rule.bogo_buy or 1, rule.bogo_get or 1
    pct = rule.bogo_percent_bp if rule.bogo_percent_bp is not None else 10_000
    group = buy + get
    units = sum(cart.lines[i].quantity for i in indexes)
    free_units = (units // group) * get + max(0, units % group - buy)
    out = [0] * len(remaining)
    # The cheapest qualifying units are the discounted ones (ties: earlier line first).
    for i in sorted(indexes, key=lambda i: (cart.lines[i].unit_price, i)):
        if free_units <= 0:
            break
        take = min(free_units, cart.lines[i].quantity)
        free_units -= take
        out[i] = min(percent_of(cart.lines[i].unit_price * take, pct), remaining[i])
    return out


def _tier(rule: Rule, cart: Cart, indexes: list[int]):
    # "Spend $100": thresholds compare with what the shopper put in the cart.
    spend = sum(cart.lines[i].amount for i in indexes)
    met = [t for t in rule.tiers if spend >= t.threshold]
    return max(met, key=lambda t: t.threshold) if met else None


def take_total(rule: Rule, cart: Cart, remaining: list[int], indexes: list[int]) -> int:
    """What `compute` takes off the merchandise in total, without splitting it over the
    lines (the order search ranks and bounds by totals; the split is only needed for the
    branches it follows). Always equal to sum(compute(...)[0])."""
    if rule.type == T.FREE_SHIPPING:
        return 0
    if rule.type == T.BOGO:
        return sum(_bogo_lines(rule, cart, indexes, remaining))
    base = sum(remaining[i] for i in indexes)
    if rule.type == T.PERCENTAGE:
        total = percent_of(base, rule.percent_bp or 0)
        return total if rule.cap is None else min(total, rule.cap)
    if rule.type == T.FIXED:
        return min(rule.amount or 0, base)
    if rule.type == T.TIERED:
        tier = _tier(rule, cart, indexes)
        return min(tier.discount, base) if tier else 0
    raise ValueError(f"unknown discount type {rule.type!r}")


def compute(
    rule: Rule,
    cart: Cart,
    remaining: list[int],
    shipping_remaining: int,
    indexes: list[int] | None = None,
) -> tuple[list[int], int, str]:
    """-> (discount per line, shipping discount, human message). `indexes`: the rule's
    eligible lines, when the caller already knows them."""
    if rule.type == T.FREE_SHIPPING:
        return [0] * len(remaining), shipping_remaining, describe(rule, cart.currency)
    if indexes is None:
        indexes = eligible_line_indexes(rule, cart)
    if rule.type == T.BOGO:
        return _bogo_lines(rule, cart, indexes, remaining), 0, describe(rule, cart.currency)
    total = take_total(rule, cart, remaining, indexes)
    message = describe(rule, cart.currency)
    if rule.type == T.TIERED:
        tier = _tier(rule, cart, indexes)
        message = describe(rule, cart.currency, tier.discount if tier else None)
    return _spread(total, indexes, remaining), 0, message
