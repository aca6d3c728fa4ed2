"""Price a cart with one or more codes: eligibility, stacking policy, best order.

The answer is all-or-nothing (API.md validate): every code must pass its checks and the
stacking policy; then the codes are applied in the order that gives the customer the
largest total discount, each working on what the earlier ones left.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import permutations

from coupons.engine import reasons as r
from coupons.engine import types as T
from coupons.engine.discounts import compute
from coupons.engine.eligibility import check
from coupons.engine.types import Applied, Cart, CodeTerms, Pricing, Rejection, Shopper, Usage

# Above this many codes, trying every order (n!) is replaced by a fixed good order.
EXACT_ORDER_LIMIT = 6
_TYPE_ORDER = {T.PERCENTAGE: 0, T.BOGO: 1, T.TIERED: 2, T.FIXED: 3, T.FREE_SHIPPING: 4}


def stack_group(terms: CodeTerms) -> str:
    """A coupon without an explicit group stacks in the group of its type."""
    if terms.rule.stack_group:
        return terms.rule.stack_group
    return "shipping" if terms.rule.type == T.FREE_SHIPPING else terms.rule.type


def stacking_rejection(accepted: Sequence[CodeTerms], new: CodeTerms,
                       policy: str) -> Rejection | None:
    """May `new` join the codes already accepted under the site policy?"""
    if not accepted:
        return None
    if policy == "none" or not new.rule.stackable or \
            any(not other.rule.stackable for other in accepted):
        return Rejection(r.NOT_STACKABLE, r.MESSAGES[r.NOT_STACKABLE], new.code)
    if policy == "by_group" and any(stack_group(o) == stack_group(new) for o in accepted):
        return Rejection(r.STACK_GROUP_CONFLICT, r.MESSAGES[r.STACK_GROUP_CONFLICT], new.code)
    return None


def apply_in_order(order: Sequence[CodeTerms], cart: Cart) -> Pricing:
    remaining = [line.amount for line in cart.lines]
    shipping_left = cart.shipping
    applied = []
    for terms in order:
        lines, shipping, message = compute(terms.rule, cart, remaining, shipping_left)
        remaining = [left - taken for left, taken in zip(remaining, lines, strict=True)]
        shipping_left -= shipping
        applied.append(Applied(terms=terms, discount=sum(lines), shipping_discount=shipping,
                               line_discounts=tuple(lines), message=message))
    line_discounts = tuple(line.amount - left for line, left in zip(cart.lines, remaining,
                                                                     strict=True))
    return Pricing(applied=tuple(applied), line_discounts=line_discounts,
                   discount=sum(line_discounts), shipping_discount=cart.shipping - shipping_left)


def best_order(codes: Sequence[CodeTerms], cart: Cart) -> Pricing:
    """The application order with the largest total discount (ties: the order given)."""
    if len(codes) <= 1:
        return apply_in_order(codes, cart)
    if len(codes) > EXACT_ORDER_LIMIT:
        ordered = sorted(codes, key=lambda t: (_TYPE_ORDER.get(t.rule.type, 9), -t.rule.priority))
        return apply_in_order(ordered, cart)
    best: Pricing | None = None
    for order in permutations(codes):
        result = apply_in_order(order, cart)
        if best is None or result.discount + result.shipping_discount > \
                best.discount + best.shipping_discount:
            best = result
    return best  # type: ignore[return-value]


def price(entries: Sequence[tuple[str, CodeTerms | None, Usage]], shopper: Shopper, cart: Cart,
          now: datetime, policy: str) -> Pricing:
    """entries: (code as entered, its terms or None if unknown, live usage), request order."""
    accepted: list[CodeTerms] = []
    for entered, terms, usage in entries:
        rejection = check(terms, usage, shopper, cart, now, entered=entered)
        if rejection is not None:
            return Pricing(rejection=rejection)
        assert terms is not None  # noqa: S101 - check() rejects unknown codes
        if any(a.rule.coupon_id == terms.rule.coupon_id for a in accepted):
            # Two codes of one coupon: a coupon applies at most once per order.
            return Pricing(rejection=Rejection(
                r.STACK_GROUP_CONFLICT, r.MESSAGES[r.STACK_GROUP_CONFLICT], terms.code))
        rejection = stacking_rejection(accepted, terms, policy)
        if rejection is not None:
            return Pricing(rejection=rejection)
        accepted.append(terms)
    return best_order(accepted, cart)
