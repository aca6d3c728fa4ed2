"""Invoice composition (billing.engine.invoices), pure: the signed lines always sum to the
total, total = subtotal - discount - credit_applied >= 0, the discount is capped by the
subtotal and the credit by what is left; a percentage discount (core.money.percent_of,
what the coupon engine takes off a subscription invoice) is rounded half-up once."""

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.engine import invoices as composer
from billing.engine import periods, proration
from core.money import percent_of

MAX_PLAN = 10**13
amounts = st.sampled_from([0, 1, 2, 997, 2903, 10**10, MAX_PLAN]) | st.integers(0, MAX_PLAN)
signed = st.integers(-(10**14), 10**14)


@st.composite
def charges(draw):
    """Subscription lines and proration pairs (a negative credit, a positive charge) whose
    sum is not negative, as the services build them."""
    lines = []
    for _ in range(draw(st.integers(0, 3))):
        lines.append(composer.Line(composer.SUBSCRIPTION, "Plan", draw(amounts)))
    for _ in range(draw(st.integers(0, 2))):
        old = draw(amounts)
        new = draw(st.integers(old, MAX_PLAN))
        part = draw(st.fractions(min_value=0, max_value=1, max_denominator=3_000_000))
        credit = math.floor(old * part + Fraction(1, 2))
        charge = math.floor(new * part + Fraction(1, 2))
        lines.append(composer.Line(composer.PRORATION, "Unused", -credit))
        lines.append(composer.Line(composer.PRORATION, "Remaining", charge))
    return lines


def check(composed: composer.Composed, charged: list[composer.Line], discount, credit):
    subtotal = sum(x.amount for x in charged)
    assert composed.subtotal == subtotal
    assert composed.discount == min(max(0, discount), subtotal)
    assert composed.credit_applied == min(max(0, credit), subtotal - composed.discount)
    assert 0 <= composed.discount <= composed.subtotal
    assert 0 <= composed.credit_applied <= composed.subtotal - composed.discount
    assert composed.total == composed.subtotal - composed.discount - composed.credit_applied
    assert composed.total >= 0
    assert sum(x.amount for x in composed.lines) == composed.total
    # the charges first, as given; then one discount line and one credit line, if any
    assert list(composed.lines[: len(charged)]) == charged
    extra = composed.lines[len(charged) :]
    want = []
    if composed.discount:
        want.append((composer.DISCOUNT, -composed.discount))
    if composed.credit_applied:
        want.append((composer.CREDIT, -composed.credit_applied))
    assert [(x.kind, x.amount) for x in extra] == want


@settings(max_examples=200, deadline=None)
@given(charged=charges(), discount=signed | amounts, credit=signed | amounts)
@example(charged=[composer.Line(composer.SUBSCRIPTION, "Pro", 2900)], discount=580, credit=0)
@example(charged=[composer.Line(composer.SUBSCRIPTION, "Pro", 2900)], discount=5000, credit=10)
@example(charged=[composer.Line(composer.SUBSCRIPTION, "Pro", 2900)], discount=580, credit=2320)
@example(charged=[composer.Line(composer.SUBSCRIPTION, "Pro", 2900)], discount=580, credit=9999)
@example(charged=[composer.Line(composer.SUBSCRIPTION, "Pro", 1)], discount=1, credit=1)
@example(charged=[], discount=100, credit=100)
@example(charged=[composer.Line(composer.SUBSCRIPTION, "Trial", 0)], discount=-5, credit=-5)
def test_lines_sum_to_the_total_and_caps_hold(charged, discount, credit):
    composed = composer.compose(
        charged, discount=discount, discount_description="PROMO", credit_available=credit
    )
    check(composed, charged, discount, credit)


@settings(max_examples=300, deadline=None)
@given(amount=amounts, bp=st.integers(0, 10_000), credit=amounts)
@example(amount=2900, bp=2000, credit=0)  # the 20% promo: 5.80 off 29.00
@example(amount=1, bp=5000, credit=0)  # half a cent off one cent: 1
@example(amount=1, bp=4999, credit=0)
@example(amount=3, bp=5000, credit=0)  # 1.5 -> 2
@example(amount=10**10, bp=3333, credit=1)
def test_a_percentage_discount_is_rounded_half_up_once(amount, bp, credit):
    exact = Fraction(amount * bp, 10_000)
    discount = percent_of(amount, bp)
    assert discount == math.floor(exact + Fraction(1, 2))
    assert 0 <= discount <= amount
    line = composer.Line(composer.SUBSCRIPTION, "Plan", amount)
    composed = composer.compose([line], discount=discount, credit_available=credit)
    check(composed, [line], discount, credit)
    assert composed.total == max(0, amount - discount - credit)


@settings(max_examples=300, deadline=None)
@given(
    old=amounts,
    extra=st.integers(0, MAX_PLAN),
    offset=st.integers(0, 31 * 86_400 - 1),
    credit=amounts,
)
def test_an_upgrade_invoice_from_real_proration_lines_adds_up(old, extra, offset, credit):
    new = min(old + extra, MAX_PLAN)
    start, end = periods.bounds(datetime(2026, 1, 31, 12, tzinfo=UTC), periods.MONTH, 2)
    at = min(start + timedelta(seconds=offset), end - timedelta(seconds=1))
    lines = [
        composer.Line(composer.PRORATION, x.description, x.amount)
        for x in proration.prorate(
            old_amount=old, new_amount=new, old_name="A", new_name="B", start=start, end=end, at=at
        )
    ]
    composed = composer.compose(lines, discount=0, credit_available=credit)
    check(composed, lines, 0, credit)


def test_a_negative_subtotal_is_refused():
    with pytest.raises(ValueError, match="negative subtotal"):
        composer.compose([composer.Line(composer.PRORATION, "Unused", -1)])


def test_descriptions_of_discount_and_credit():
    composed = composer.compose(
        [composer.Line(composer.SUBSCRIPTION, "Pro", 2900)],
        discount=580,
        discount_description="PROMO20: 20% off",
        credit_available=1000,
    )
    assert [(x.kind, x.description, x.amount) for x in composed.lines] == [
        ("subscription", "Pro", 2900),
        ("discount", "PROMO20: 20% off", -580),
        ("credit", "Applied balance", -1000),
    ]
    assert composed.total == 1320
    default = composer.compose([composer.Line(composer.SUBSCRIPTION, "Pro", 10)], discount=1)
    assert default.lines[-1].description == "Discount"
