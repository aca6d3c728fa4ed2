"""The pure pricing engine: every discount type, the seed's worked examples, the best
application order, and rounding/allocation on odd amounts. No database."""

from datetime import UTC, datetime

import pytest

from coupons.engine import types as T
from coupons.engine.pricing import apply_in_order, best_order, price
from coupons.engine.types import Cart, CodeTerms, Line, Rule, Shopper, Tier, Usage

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
SHOPPER = Shopper(id="u-1")


def rule(type_=T.PERCENTAGE, *, coupon_id=1, code="C", currency="USD", **kw) -> Rule:
    return Rule(coupon_id=coupon_id, code=code, type=type_, currency=currency, **kw)


def terms(r: Rule, *, code_id=None, code=None) -> CodeTerms:
    return CodeTerms(code_id=code_id or r.coupon_id, code=code or r.code, rule=r)


def cart(*lines, shipping=0, currency="USD") -> Cart:
    """cart((unit_price_minor, quantity[, category[, sku]]), ...)"""
    out = []
    for index, spec in enumerate(lines):
        unit, qty, *rest = spec
        category = rest[0] if rest else "electronics"
        sku = rest[1] if len(rest) > 1 else f"SKU-{index + 1}"
        out.append(Line(sku=sku, category=category, unit_price=unit, quantity=qty))
    return Cart(currency=currency, lines=tuple(out), shipping=shipping)


def price_one(r: Rule, c: Cart, shopper: Shopper = SHOPPER):
    return price([(r.code, terms(r), Usage())], shopper, c, NOW, "by_group")


def assert_consistent(result, c: Cart):
    """Invariants every successful pricing must keep."""
    assert result.ok
    assert sum(result.line_discounts) == result.discount
    assert len(result.line_discounts) == len(c.lines)
    for line, d in zip(c.lines, result.line_discounts, strict=True):
        assert 0 <= d <= line.amount
    assert 0 <= result.discount <= c.subtotal
    assert 0 <= result.shipping_discount <= c.shipping
    assert sum(a.discount for a in result.applied) == result.discount
    assert sum(a.shipping_discount for a in result.applied) == result.shipping_discount
    for applied in result.applied:
        assert sum(applied.line_discounts) == applied.discount


# --- one coupon, every type -------------------------------------------------------------

TIERS = (Tier(10_000, 1_000), Tier(20_000, 3_000), Tier(5_000, 500))  # unsorted on purpose

CASES = [
    # id, rule, cart, expected discount, expected per-line, expected shipping discount
    ("pct-seed-150-at-25", rule(percent_bp=2500), cart((5000, 3)), 3750, [3750], 0),
    ("pct-cap-not-reached", rule(percent_bp=2500, cap=5000), cart((5000, 3)), 3750, [3750], 0),
    ("pct-cap-400-at-25", rule(percent_bp=2500, cap=5000), cart((40000, 1)), 5000, [5000], 0),
    ("pct-cap-exactly", rule(percent_bp=2500, cap=5000), cart((20000, 1)), 5000, [5000], 0),
    (
        "pct-cap-split-lines",
        rule(percent_bp=5000, cap=1000),
        cart((3000, 1), (1000, 1)),
        1000,
        [750, 250],
        0,
    ),
    ("pct-100", rule(percent_bp=10_000), cart((1234, 2), (1, 1)), 2469, [2468, 1], 0),
    ("pct-two-lines", rule(percent_bp=1000), cart((5000, 2), (2500, 2)), 1500, [1000, 500], 0),
    ("fixed-10-on-100", rule(T.FIXED, amount=1000), cart((10000, 1)), 1000, [1000], 0),
    (
        "fixed-larger-than-cart",
        rule(T.FIXED, amount=20000),
        cart((5000, 1), (2500, 2)),
        10000,
        [5000, 5000],
        0,
    ),
    ("fixed-equal-to-cart", rule(T.FIXED, amount=999), cart((333, 3)), 999, [999], 0),
    (
        "fixed-split-proportional",
        rule(T.FIXED, amount=1000),
        cart((3000, 1), (1000, 1)),
        1000,
        [750, 250],
        0,
    ),
    (
        "bogo-1-1-free-mixed-prices",
        rule(T.BOGO, bogo_buy=1, bogo_get=1, bogo_percent_bp=10_000),
        cart((5000, 1), (2000, 3)),
        4000,
        [0, 4000],
        0,
    ),
    (
        "bogo-1-1-free-cheapest-single-units",
        rule(T.BOGO, bogo_buy=1, bogo_get=1),  # percent unset = free
        cart((5000, 2), (500, 1), (800, 1)),
        1300,
        [0, 500, 800],
        0,
    ),
    (
        "bogo-1-1-odd-unit-count",
        rule(T.BOGO, bogo_buy=1, bogo_get=1),
        cart((1000, 1), (3000, 1), (2000, 1)),
        1000,
        [1000, 0, 0],
        0,
    ),
    (
        "bogo-1-1-single-unit-gets-nothing",
        rule(T.BOGO, bogo_buy=1, bogo_get=1),
        cart((1000, 1)),
        0,
        [0],
        0,
    ),
    (
        "bogo-2-1-half-off",
        rule(T.BOGO, bogo_buy=2, bogo_get=1, bogo_percent_bp=5000),
        cart((3000, 1), (1000, 1), (2000, 1)),
        500,
        [0, 500, 0],
        0,
    ),
    (
        "bogo-2-1-half-off-six-units",
        rule(T.BOGO, bogo_buy=2, bogo_get=1, bogo_percent_bp=5000),
        cart((4000, 2), (500, 2), (2000, 2)),
        500,
        [0, 500, 0],
        0,
    ),
    (
        "bogo-2-1-half-off-cheapest-spans-lines",
        rule(T.BOGO, bogo_buy=2, bogo_get=1, bogo_percent_bp=5000),
        cart((4000, 3), (700, 1), (900, 2)),
        800,
        [0, 350, 450],
        0,
    ),
    (
        "bogo-1-1-ties-earlier-line",
        rule(T.BOGO, bogo_buy=1, bogo_get=1),
        cart((1000, 1), (1000, 1), (1000, 1)),
        1000,
        [1000, 0, 0],
        0,
    ),
    (
        "bogo-half-cent-rounds-up",
        rule(T.BOGO, bogo_buy=1, bogo_get=1, bogo_percent_bp=5000),
        cart((1, 2)),
        1,
        [1],
        0,
    ),
    ("tiered-highest-met-wins", rule(T.TIERED, tiers=TIERS), cart((25000, 1)), 3000, [3000], 0),
    ("tiered-exact-threshold", rule(T.TIERED, tiers=TIERS), cart((10000, 1)), 1000, [1000], 0),
    ("tiered-middle", rule(T.TIERED, tiers=TIERS), cart((15000, 1)), 1000, [1000], 0),
    ("tiered-lowest", rule(T.TIERED, tiers=TIERS), cart((2500, 2)), 500, [500], 0),
    (
        "tiered-spread",
        rule(T.TIERED, tiers=TIERS),
        cart((10000, 1), (10000, 1)),
        3000,
        [1500, 1500],
        0,
    ),
    ("free-shipping", rule(T.FREE_SHIPPING), cart((10000, 1), shipping=799), 0, [0], 799),
    ("free-shipping-no-shipping", rule(T.FREE_SHIPPING), cart((10000, 1)), 0, [0], 0),
    ("pct-leaves-shipping", rule(percent_bp=2500), cart((10000, 1), shipping=799), 2500, [2500], 0),
]


@pytest.mark.parametrize(
    ("r", "c", "discount", "lines", "shipping"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_single_coupon(r, c, discount, lines, shipping):
    # when
    result = price_one(r, c)
    # then
    assert result.rejection is None
    assert result.discount == discount
    assert list(result.line_discounts) == lines
    assert result.shipping_discount == shipping
    assert_consistent(result, c)


@pytest.mark.parametrize(
    ("r", "c", "message"),
    [
        (rule(percent_bp=2500, cap=5000), cart((5000, 3)), "25% off (max $50.00)"),
        (rule(percent_bp=2500), cart((5000, 3)), "25% off"),
        (rule(percent_bp=3333), cart((5000, 3)), "33.33% off"),
        (rule(percent_bp=1250), cart((5000, 3)), "12.5% off"),
        (rule(T.FIXED, amount=1000), cart((5000, 3)), "$10.00 off"),
        (rule(T.FIXED, amount=1000, currency="EUR"), cart((5000, 3), currency="EUR"), "€10.00 off"),
        (rule(T.BOGO, bogo_buy=1, bogo_get=1), cart((5000, 3)), "Buy 1 get 1 free"),
        (
            rule(T.BOGO, bogo_buy=2, bogo_get=1, bogo_percent_bp=5000),
            cart((5000, 3)),
            "Buy 2 get 1 at 50% off",
        ),
        (rule(T.TIERED, tiers=TIERS), cart((15000, 1)), "$10.00 off your order"),
        (rule(T.FREE_SHIPPING), cart((5000, 1), shipping=500), "Free shipping"),
    ],
)
def test_messages(r, c, message):
    result = price_one(r, c)
    assert result.ok
    assert [a.message for a in result.applied] == [message]


def test_tiered_below_lowest_tier_is_min_cart_value_not_met():
    # given tiers from $50, a $49.99 cart
    result = price_one(rule(T.TIERED, tiers=TIERS), cart((4999, 1)))
    # then
    assert result.rejection is not None
    assert result.rejection.reason == "min_cart_value_not_met"
    assert "$0.01" in result.rejection.message


def test_tiered_threshold_counts_eligible_items_only():
    # given $60 of books (not eligible) and $40 of electronics: the $50 tier is not met
    r = rule(T.TIERED, tiers=TIERS, eligible_categories=frozenset({"electronics"}))
    result = price_one(r, cart((6000, 1, "books"), (4000, 1, "electronics")))
    assert result.rejection is not None
    assert result.rejection.reason == "min_cart_value_not_met"


def test_eligible_categories_limit_the_discounted_lines():
    r = rule(percent_bp=1000, eligible_categories=frozenset({"electronics"}))
    c = cart((10000, 1, "electronics"), (5000, 1, "books"))
    result = price_one(r, c)
    assert result.discount == 1000
    assert list(result.line_discounts) == [1000, 0]


def test_excluded_sku_is_never_discounted():
    r = rule(percent_bp=2500, excluded_skus=frozenset({"SKU-GIFT-CARD"}))
    c = cart((10000, 1, "electronics", "SKU-TV"), (5000, 1, "electronics", "SKU-GIFT-CARD"))
    result = price_one(r, c)
    assert list(result.line_discounts) == [2500, 0]


def test_fixed_amount_is_bounded_by_eligible_lines():
    r = rule(T.FIXED, amount=5000, eligible_categories=frozenset({"books"}))
    c = cart((10000, 1, "electronics"), (2000, 1, "books"))
    result = price_one(r, c)
    assert result.discount == 2000
    assert list(result.line_discounts) == [0, 2000]


def test_bogo_counts_only_eligible_units():
    # given BOGO on books; the cheap electronics unit must not be the free one
    r = rule(T.BOGO, bogo_buy=1, bogo_get=1, eligible_categories=frozenset({"books"}))
    c = cart((100, 1, "electronics"), (1500, 1, "books"), (2000, 1, "books"))
    result = price_one(r, c)
    assert list(result.line_discounts) == [0, 1500, 0]


# --- the order of application -----------------------------------------------------------

PCT25 = rule(percent_bp=2500, coupon_id=1, code="SUMMER25", stackable=True)
FIXED10 = rule(T.FIXED, amount=1000, coupon_id=2, code="TENOFF", stackable=True)
FREESHIP = rule(T.FREE_SHIPPING, coupon_id=3, code="FREESHIP", stackable=True)


def test_apply_in_order_is_literal():
    c = cart((10000, 1))
    # seed: percentage then fixed = $65 to pay; fixed then percentage = $67.50
    assert apply_in_order([terms(PCT25), terms(FIXED10)], c).discount == 3500
    assert apply_in_order([terms(FIXED10), terms(PCT25)], c).discount == 3250


@pytest.mark.parametrize(
    "given_order", [[PCT25, FIXED10], [FIXED10, PCT25]], ids=["pct-first", "fixed-first"]
)
def test_best_order_for_the_customer_regardless_of_input_order(given_order):
    c = cart((10000, 1))
    # when priced through the public entry point
    result = price([(r.code, terms(r), Usage()) for r in given_order], SHOPPER, c, NOW, "by_group")
    # then the better order is used: $25 + $10 = $35 off
    assert result.discount == 3500
    assert [a.terms.code for a in result.applied] == ["SUMMER25", "TENOFF"]
    assert [a.discount for a in result.applied] == [2500, 1000]
    assert best_order([terms(r) for r in given_order], c)[0].discount == 3500
    assert_consistent(result, c)


def test_fixed_then_percentage_stack_never_exceeds_subtotal():
    big = rule(T.FIXED, amount=50_000, coupon_id=9, code="BIG", stackable=True)
    c = cart((10000, 1), shipping=500)
    result = price(
        [
            ("BIG", terms(big), Usage()),
            ("SUMMER25", terms(PCT25), Usage()),
            ("FREESHIP", terms(FREESHIP), Usage()),
        ],
        SHOPPER,
        c,
        NOW,
        "by_group",
    )
    assert result.discount == 10000
    assert result.shipping_discount == 500
    assert_consistent(result, c)


def test_stack_reports_each_coupon_and_shipping_separately():
    c = cart((5000, 3), shipping=799)
    result = price(
        [("SUMMER25", terms(PCT25), Usage()), ("FREESHIP", terms(FREESHIP), Usage())],
        SHOPPER,
        c,
        NOW,
        "by_group",
    )
    assert result.discount == 3750
    assert result.shipping_discount == 799
    by_code = {a.terms.code: (a.discount, a.shipping_discount) for a in result.applied}
    assert by_code == {"SUMMER25": (3750, 0), "FREESHIP": (0, 799)}


def test_best_order_with_many_codes_still_consistent():
    # given more codes than the exact-permutation limit (7 groups)
    rules = [
        rule(percent_bp=1000, coupon_id=10 + i, code=f"P{i}", stackable=True, stack_group=f"g{i}")
        for i in range(4)
    ]
    rules += [
        rule(
            T.FIXED, amount=500, coupon_id=20 + i, code=f"F{i}", stackable=True, stack_group=f"h{i}"
        )
        for i in range(3)
    ]
    c = cart((3333, 3), (101, 7), shipping=250)
    result = price([(r.code, terms(r), Usage()) for r in reversed(rules)], SHOPPER, c, NOW, "full")
    assert_consistent(result, c)
    # percentages first (10% x4 compounding), then the fixed amounts
    assert [a.terms.rule.type for a in result.applied][:4] == [T.PERCENTAGE] * 4


# --- rounding and allocation on odd amounts ---------------------------------------------

ROUNDING = [
    ("three-cents-at-50pct", rule(percent_bp=5000), cart((1, 1), (1, 1), (1, 1)), 2, [1, 1, 0]),
    ("one-cent-at-50pct", rule(percent_bp=5000), cart((1, 1)), 1, [1]),
    ("one-cent-at-49.99pct", rule(percent_bp=4999), cart((1, 1)), 0, [0]),
    ("33.33pct-of-10", rule(percent_bp=3333), cart((1000, 1)), 333, [333]),
    (
        "33.33pct-of-three-3.33",
        rule(percent_bp=3333),
        cart((333, 1), (333, 1), (334, 1)),
        333,
        [111, 111, 111],
    ),
    (
        "fixed-10-over-three-equal",
        rule(T.FIXED, amount=1000),
        cart((1000, 1), (1000, 1), (1000, 1)),
        1000,
        [334, 333, 333],
    ),
    (
        "fixed-1-over-three-equal",
        rule(T.FIXED, amount=100),
        cart((333, 1), (333, 1), (333, 1)),
        100,
        [34, 33, 33],
    ),
    (
        "10pct-of-9.99-over-three",
        rule(percent_bp=1000),
        cart((333, 1), (333, 1), (333, 1)),
        100,
        [34, 33, 33],
    ),
    (
        "fixed-over-weighted",
        rule(T.FIXED, amount=100),
        cart((1, 1), (2, 1), (997, 1)),
        100,
        [0, 0, 100],
    ),
    (
        "cap-over-odd-lines",
        rule(percent_bp=9000, cap=1001),
        cart((700, 1), (700, 1), (700, 1)),
        1001,
        [334, 334, 333],
    ),
    (
        "jpy-10pct-of-999",
        rule(percent_bp=1000, currency="JPY"),
        cart((999, 1), currency="JPY"),
        100,
        [100],
    ),
    ("kwd-7pct", rule(percent_bp=700, currency="KWD"), cart((1001, 1), currency="KWD"), 70, [70]),
]


@pytest.mark.parametrize(
    ("r", "c", "discount", "lines"), [x[1:] for x in ROUNDING], ids=[x[0] for x in ROUNDING]
)
def test_rounding_and_allocation(r, c, discount, lines):
    result = price_one(r, c)
    assert result.discount == discount
    assert list(result.line_discounts) == lines
    assert_consistent(result, c)


def test_stacked_coupons_on_odd_amounts_sum_exactly():
    # given 33.33% then a fixed $1.00 on three lines of $3.33
    pct = rule(percent_bp=3333, coupon_id=1, code="THIRD", stackable=True)
    fixed = rule(T.FIXED, amount=100, coupon_id=2, code="ONE", stackable=True)
    c = cart((333, 1), (333, 1), (333, 1))
    result = price(
        [("ONE", terms(fixed), Usage()), ("THIRD", terms(pct), Usage())],
        SHOPPER,
        c,
        NOW,
        "by_group",
    )
    # 33.33% of 9.99 = 3.33; then $1.00 on the remaining 6.66
    assert result.discount == 433
    assert_consistent(result, c)
