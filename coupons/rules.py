"""A coupon row as the pricing engine's Rule: the one translation from the database's
shape to the engine's, shared by the selectors (cached definitions), the compiled auto
promotions (promotions.py), the services (re-checks under lock) and the analytics
simulation. Pure: it reads attributes, so promotions.py can hand it plain rows with the
field names."""

from __future__ import annotations

from coupons.engine.types import Rule, Tier
from coupons.models import Coupon


def rule_from_coupon(c: Coupon) -> Rule:
    return Rule(
        coupon_id=c.pk,
        code=c.code,
        type=c.type,
        currency=c.currency,
        percent_bp=c.percent_bp,
        amount=c.amount_minor,
        cap=c.cap_minor,
        tiers=tuple(Tier(t["threshold_minor"], t["discount_minor"]) for t in c.tiers or ()),
        bogo_buy=c.bogo_buy,
        bogo_get=c.bogo_get,
        bogo_percent_bp=c.bogo_percent_bp,
        min_cart=c.min_cart_minor,
        eligible_categories=frozenset(c.eligible_categories),
        eligible_skus=frozenset(c.eligible_skus),
        excluded_skus=frozenset(c.excluded_skus),
        eligible_segments=frozenset(c.eligible_segments),
        first_purchase_only=c.first_purchase_only,
        max_uses_total=c.max_uses_total,
        max_uses_per_user=c.max_uses_per_user,
        valid_from=c.valid_from,
        valid_to=c.valid_to,
        active=c.active,
        stackable=c.stackable,
        stack_group=c.stack_group,
        auto_apply=c.auto_apply,
        priority=c.priority,
        name=c.description or c.code,
        budget=c.budget_minor,
    )
