"""Eligibility in API.md's documented order, and the stacking policies. Pure engine, no
database.

Order: exists, active, window, total limit, customer limit, bound customer, segment,
first purchase, currency, minimum cart, eligible items; the first failure wins.
"""

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coupons.engine import types as T
from coupons.engine.eligibility import check
from coupons.engine.pricing import apply_in_order, price
from coupons.engine.types import Cart, CodeTerms, Line, Rule, Shopper, Tier, Usage

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def base_rule(**kw) -> Rule:
    defaults = {
        "coupon_id": 1,
        "code": "SUMMER25",
        "type": T.PERCENTAGE,
        "currency": "USD",
        "percent_bp": 2500,
    }
    return Rule(**{**defaults, **kw})


def base_cart(currency="USD") -> Cart:
    return Cart(
        currency=currency,
        lines=(
            Line(sku="SKU-1", category="electronics", unit_price=5000, quantity=3),
            Line(sku="SKU-GIFT-CARD", category="gift_cards", unit_price=2500, quantity=1),
        ),
        shipping=799,
    )


# Each failing condition as overrides of separate fields, so any two can be combined.
# (name, expected reason, overrides of rule / terms / usage / shopper)
CONDITIONS = [
    ("inactive", "coupon_inactive", {"rule": {"active": False}}),
    ("not_started", "coupon_not_started", {"rule": {"valid_from": NOW + DAY}}),
    ("expired", "coupon_expired", {"rule": {"valid_to": NOW - DAY}}),
    (
        "total_limit",
        "usage_limit_reached",
        {"rule": {"max_uses_total": 10}, "usage": {"coupon_uses": 10}},
    ),
    (
        "customer_limit",
        "customer_limit_reached",
        {"rule": {"max_uses_per_user": 1}, "usage": {"customer_uses": 1}},
    ),
    ("bound", "code_bound_to_other_customer", {"terms": {"bound_customer": "u-other"}}),
    (
        "segment",
        "segment_not_eligible",
        {"rule": {"eligible_segments": frozenset({"premium_members"})}},
    ),
    (
        "first_purchase",
        "first_purchase_only",
        {"rule": {"first_purchase_only": True}, "shopper": {"orders_count": 2}},
    ),
    ("currency", "currency_mismatch", {"rule": {"currency": "EUR"}}),
    ("min_cart", "min_cart_value_not_met", {"rule": {"min_cart": 1_000_000}}),
    (
        "eligible_items",
        "no_eligible_items",
        {"rule": {"eligible_categories": frozenset({"garden"})}},
    ),
]
ORDER = [name for name, _, _ in CONDITIONS]


def scenario(*overrides: dict, entered="SUMMER25"):
    merged: dict[str, dict] = {"rule": {}, "terms": {}, "usage": {}, "shopper": {}}
    for override in overrides:
        for target, values in override.items():
            merged[target].update(values)
    rule = base_rule(**merged["rule"])
    terms = CodeTerms(code_id=1, code="SUMMER25", rule=rule, **merged["terms"])
    usage = Usage(**merged["usage"])
    shopper_kw = {"id": "u-1", "segments": frozenset({"regular"}), "orders_count": 0}
    shopper = Shopper(**{**shopper_kw, **merged["shopper"]})
    return check(terms, usage, shopper, base_cart(), NOW, entered=entered)


def test_base_scenario_is_valid():
    assert scenario() is None


@pytest.mark.parametrize(("overrides", "reason"), [(o, r) for _, r, o in CONDITIONS], ids=ORDER)
def test_each_condition_alone(overrides, reason):
    rejection = scenario(overrides)
    assert rejection is not None
    assert rejection.reason == reason
    assert rejection.code == "SUMMER25"
    assert rejection.message


PAIRS = list(combinations(CONDITIONS, 2))


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a[0]}+{b[0]}" for a, b in PAIRS])
def test_two_failures_the_earlier_wins(first, second):
    # given two failing conditions, in either order of merging
    assert scenario(first[2], second[2]).reason == first[1]
    assert scenario(second[2], first[2]).reason == first[1]


def test_every_condition_fails_inactive_wins():
    assert scenario(*[o for _, _, o in CONDITIONS]).reason == "coupon_inactive"


def test_unknown_code_wins_over_everything():
    rejection = check(None, Usage(coupon_uses=99), Shopper(), base_cart(), NOW, entered="NOPE")
    assert rejection.reason == "coupon_not_found"
    assert rejection.code == "NOPE"
    assert rejection.message == "Coupon not found"


def test_expired_and_below_minimum_is_expired():
    rejection = scenario({"rule": {"valid_to": NOW - DAY, "min_cart": 1_000_000}})
    assert rejection.reason == "coupon_expired"
    assert rejection.message == "Coupon expired"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"terms": {"active": False}}, "coupon_inactive"),  # the code itself stopped
        ({"terms": {"expires_at": NOW - timedelta(seconds=1)}}, "coupon_expired"),
        ({"terms": {"max_uses": 1}, "usage": {"code_uses": 1}}, "usage_limit_reached"),
        ({"rule": {"max_uses_total": 10}, "usage": {"coupon_uses": 11}}, "usage_limit_reached"),
        ({"rule": {"eligible_skus": frozenset({"SKU-404"})}}, "no_eligible_items"),
        ({"rule": {"excluded_skus": frozenset({"SKU-1", "SKU-GIFT-CARD"})}}, "no_eligible_items"),
        (
            {
                "rule": {
                    "eligible_categories": frozenset({"electronics"}),
                    "excluded_skus": frozenset({"SKU-1"}),
                }
            },
            "no_eligible_items",
        ),
        ({"rule": {"currency": "JPY"}}, "currency_mismatch"),
    ],
    ids=[
        "code-inactive",
        "code-expired",
        "code-max-uses",
        "over-limit",
        "eligible-skus-miss",
        "all-excluded",
        "category-then-excluded",
        "jpy-coupon-usd-cart",
    ],
)
def test_code_level_and_item_conditions(overrides, reason):
    assert scenario(overrides).reason == reason


@pytest.mark.parametrize(
    "overrides",
    [
        {"rule": {"valid_from": NOW, "valid_to": NOW}},  # the window's edges are inclusive
        {"terms": {"expires_at": NOW}},
        {"rule": {"max_uses_total": 10}, "usage": {"coupon_uses": 9}},
        {"terms": {"max_uses": 2}, "usage": {"code_uses": 1}},
        {"rule": {"max_uses_per_user": 2}, "usage": {"customer_uses": 1}},
        {"terms": {"bound_customer": "u-1"}},
        {"rule": {"eligible_segments": frozenset({"regular", "vip"})}},
        {"rule": {"first_purchase_only": True}},
        {"rule": {"min_cart": 17_500}},  # exactly the subtotal
        {"rule": {"eligible_skus": frozenset({"SKU-GIFT-CARD"})}},
        {
            "rule": {
                "eligible_categories": frozenset({"garden"}),
                "eligible_skus": frozenset({"SKU-1"}),
            }
        },  # a SKU match is enough
        {"rule": {"excluded_skus": frozenset({"SKU-GIFT-CARD"})}},
    ],
    ids=[
        "window-edges",
        "code-expires-now",
        "one-use-left",
        "code-one-left",
        "customer-one-left",
        "bound-to-me",
        "segment-match",
        "first-purchase-ok",
        "min-cart-exact",
        "eligible-sku",
        "sku-or-category",
        "one-excluded",
    ],
)
def test_boundaries_that_pass(overrides):
    assert scenario(overrides) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"rule": {"max_uses_per_user": 1}}, "customer_required"),
        ({"terms": {"bound_customer": "u-1"}}, "customer_required"),
        ({"rule": {"first_purchase_only": True}}, "customer_required"),
        # an earlier failure still wins over the missing customer
        ({"rule": {"max_uses_per_user": 1, "valid_to": NOW - DAY}}, "coupon_expired"),
        (
            {"rule": {"max_uses_total": 1, "max_uses_per_user": 1}, "usage": {"coupon_uses": 1}},
            "usage_limit_reached",
        ),
        # and the missing customer wins over later ones
        ({"rule": {"first_purchase_only": True, "min_cart": 1_000_000}}, "customer_required"),
        ({"terms": {"bound_customer": "u-1"}, "rule": {"currency": "EUR"}}, "customer_required"),
    ],
    ids=[
        "per-user-limit",
        "bound",
        "first-purchase",
        "expired-first",
        "total-limit-first",
        "before-min-cart",
        "before-currency",
    ],
)
def test_customer_required_for_anonymous(overrides, reason):
    rule = base_rule(**overrides.get("rule", {}))
    terms = CodeTerms(code_id=1, code="SUMMER25", rule=rule, **overrides.get("terms", {}))
    rejection = check(terms, Usage(**overrides.get("usage", {})), Shopper(), base_cart(), NOW)
    assert rejection is not None
    assert rejection.reason == reason


def test_anonymous_shopper_without_customer_conditions_is_fine():
    terms = CodeTerms(code_id=1, code="SUMMER25", rule=base_rule(max_uses_total=5))
    assert check(terms, Usage(coupon_uses=4), Shopper(), base_cart(), NOW) is None


def test_min_cart_message_says_how_much_is_missing():
    rejection = scenario({"rule": {"min_cart": 20_000}})
    assert rejection.reason == "min_cart_value_not_met"
    assert rejection.message == "Add $25.00 more to use this coupon (minimum $200.00)"


def test_currency_mismatch_message_names_the_currency():
    rejection = scenario({"rule": {"currency": "EUR"}})
    assert "EUR" in rejection.message


# --- stacking ---------------------------------------------------------------------------


def coupon(code, type_=T.PERCENTAGE, *, coupon_id, stackable=True, group="", **kw):
    r = Rule(
        coupon_id=coupon_id,
        code=code,
        type=type_,
        currency="USD",
        stackable=stackable,
        stack_group=group,
        **kw,
    )
    return CodeTerms(code_id=coupon_id, code=code, rule=r)


SUMMER25 = coupon("SUMMER25", percent_bp=2500, coupon_id=1, group="percentage")
FALL20 = coupon("FALL20", percent_bp=2000, coupon_id=2, group="percentage")
FREESHIP = coupon("FREESHIP", T.FREE_SHIPPING, coupon_id=3, group="shipping")
TENOFF = coupon("TENOFF", T.FIXED, amount=1000, coupon_id=4)  # group from its type
SOLO = coupon("SOLO", T.FIXED, amount=500, coupon_id=5, stackable=False)
SOLO_SHIP = coupon("SOLOSHIP", T.FREE_SHIPPING, coupon_id=6, stackable=False)
PCT_NOGROUP = coupon("PCTNOGROUP", percent_bp=500, coupon_id=7)  # "percentage" by type
FIXED_AS_PCT = coupon("FIXEDASPCT", T.FIXED, amount=100, coupon_id=8, group="percentage")


def stack(codes, policy):
    cart = Cart(currency="USD", lines=(Line("SKU-1", "electronics", 5000, 3),), shipping=799)
    return price([(t.code, t, Usage()) for t in codes], Shopper(id="u-1"), cart, NOW, policy)


@pytest.mark.parametrize(
    ("codes", "policy", "reason", "code"),
    [
        ([SUMMER25, FREESHIP], "none", "not_stackable", "FREESHIP"),
        ([SUMMER25, FREESHIP], "by_group", None, None),
        ([SUMMER25, FREESHIP, TENOFF], "by_group", None, None),
        ([SUMMER25, FALL20], "by_group", "stack_group_conflict", "FALL20"),
        # the better deal wins whatever the request order; the other is the rejected one
        ([FALL20, SUMMER25], "by_group", "stack_group_conflict", "FALL20"),
        ([SUMMER25, FREESHIP, FALL20], "by_group", "stack_group_conflict", "FALL20"),
        ([SUMMER25, PCT_NOGROUP], "by_group", "stack_group_conflict", "PCTNOGROUP"),
        ([TENOFF, FIXED_AS_PCT], "by_group", None, None),
        ([SUMMER25, FIXED_AS_PCT], "by_group", "stack_group_conflict", "FIXEDASPCT"),
        ([SOLO, FREESHIP], "by_group", "not_stackable", "SOLO"),  # $7.99 shipping > $5
        ([FREESHIP, SOLO], "by_group", "not_stackable", "SOLO"),
        ([SUMMER25, SOLO_SHIP], "full", "not_stackable", "SOLOSHIP"),
        ([SOLO, SUMMER25], "full", "not_stackable", "SOLO"),
        ([SUMMER25, FALL20], "full", None, None),
        ([SUMMER25, FALL20, FREESHIP, TENOFF], "full", None, None),
        ([SOLO], "none", None, None),
        ([SOLO], "by_group", None, None),
        ([SUMMER25, SUMMER25], "full", None, None),  # the same code twice is one code
    ],
)
def test_stacking_policies(codes, policy, reason, code):
    codes = list(dict.fromkeys(codes))  # the service de-duplicates entered codes
    result = stack(codes, policy)
    if reason is None:
        assert result.ok
        assert {a.terms.code for a in result.applied} == {t.code for t in codes}
    else:
        assert result.rejection is not None
        assert (result.rejection.reason, result.rejection.code) == (reason, code)
        assert result.discount == 0
        assert result.applied == ()


def test_by_group_seed_example_amounts():
    result = stack([SUMMER25, FREESHIP], "by_group")
    assert result.discount == 3750
    assert result.shipping_discount == 799


def test_full_stacking_same_group_compounds():
    result = stack([SUMMER25, FALL20], "full")
    # $150: 25% = $37.50, then 20% of $112.50 = $22.50 (either order gives $60.00)
    assert result.discount == 6000


def test_two_codes_of_one_coupon_never_stack():
    second_code = dataclasses.replace(SUMMER25, code_id=99, code="SUMMER25-B")
    result = stack([SUMMER25, second_code], "full")
    assert result.rejection is not None
    assert result.rejection.reason == "stack_group_conflict"
    assert result.rejection.code == "SUMMER25-B"


def test_eligibility_failure_in_a_stack_names_that_code():
    expired = coupon("OLD", T.FREE_SHIPPING, coupon_id=9, valid_to=NOW - DAY)
    result = stack([SUMMER25, expired], "by_group")
    assert (result.rejection.reason, result.rejection.code) == ("coupon_expired", "OLD")


def test_eligibility_is_checked_before_stacking():
    # the second code is both non-stackable and expired: expiry is its reason
    expired_solo = coupon(
        "OLDSOLO", T.FIXED, amount=100, coupon_id=9, stackable=False, valid_to=NOW - DAY
    )
    result = stack([SUMMER25, expired_solo], "by_group")
    assert result.rejection.reason == "coupon_expired"


# --- properties -------------------------------------------------------------------------

CATEGORIES = ["electronics", "clothing", "books"]


@st.composite
def carts(draw):
    n = draw(st.integers(min_value=1, max_value=6))
    lines = tuple(
        Line(
            sku=f"SKU-{i}",
            category=draw(st.sampled_from(CATEGORIES)),
            unit_price=draw(st.integers(min_value=0, max_value=200_000)),
            quantity=draw(st.integers(min_value=1, max_value=5)),
        )
        for i in range(n)
    )
    return Cart(
        currency="USD", lines=lines, shipping=draw(st.integers(min_value=0, max_value=3_000))
    )


@st.composite
def stackable_coupons(draw):
    kinds = draw(st.lists(st.sampled_from(T.DISCOUNT_TYPES), min_size=1, max_size=4, unique=True))
    out = []
    for i, kind in enumerate(kinds):
        kw = {}
        if kind == T.PERCENTAGE:
            kw["percent_bp"] = draw(st.integers(min_value=1, max_value=10_000))
            kw["cap"] = draw(st.none() | st.integers(min_value=0, max_value=50_000))
        elif kind == T.FIXED:
            kw["amount"] = draw(st.integers(min_value=1, max_value=500_000))
        elif kind == T.BOGO:
            kw["bogo_buy"] = draw(st.integers(min_value=1, max_value=3))
            kw["bogo_get"] = draw(st.integers(min_value=1, max_value=2))
            kw["bogo_percent_bp"] = draw(st.integers(min_value=1, max_value=10_000))
        elif kind == T.TIERED:
            thresholds = draw(
                st.lists(
                    st.integers(min_value=0, max_value=100_000), min_size=1, max_size=3, unique=True
                )
            )
            kw["tiers"] = tuple(
                Tier(t, draw(st.integers(min_value=1, max_value=100_000))) for t in thresholds
            )
        if kind != T.FREE_SHIPPING and draw(st.booleans()):
            kw["eligible_categories"] = frozenset(
                draw(st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2))
            )
        rule = Rule(coupon_id=i + 1, code=f"C{i}", type=kind, currency="USD", stackable=True, **kw)
        out.append(CodeTerms(code_id=i + 1, code=f"C{i}", rule=rule))
    return out


@settings(max_examples=200, deadline=None)
@given(cart=carts(), codes=stackable_coupons(), policy=st.sampled_from(["by_group", "full"]))
def test_stack_invariants(cart, codes, policy):
    entries = [(t.code, t, Usage()) for t in codes]
    result = price(entries, Shopper(id="u-1"), cart, NOW, policy)
    if not result.ok:
        # only a cart-dependent condition can fail: tier minimum or no eligible lines
        assert result.rejection.reason in {"min_cart_value_not_met", "no_eligible_items"}
        return
    assert 0 <= result.discount <= cart.subtotal
    assert 0 <= result.shipping_discount <= cart.shipping
    assert sum(result.line_discounts) == result.discount
    for line, d in zip(cart.lines, result.line_discounts, strict=True):
        assert 0 <= d <= line.amount
    assert sum(a.discount for a in result.applied) == result.discount
    for applied in result.applied:
        assert sum(applied.line_discounts) == applied.discount
        assert all(d >= 0 for d in applied.line_discounts)
    # the chosen order is at least as good as the order given
    literal = apply_in_order(codes, cart)
    assert (
        result.discount + result.shipping_discount >= literal.discount + literal.shipping_discount
    )
    # deterministic: same input, same answer
    assert price(entries, Shopper(id="u-1"), cart, NOW, policy) == result
    assert price(entries, Shopper(id="u-1"), cart, NOW, policy) == result
