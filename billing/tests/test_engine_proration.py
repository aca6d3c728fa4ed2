"""Proration of a plan change (billing.engine.proration), pure: each line rounded half-up
once (checked against an exact Fraction), the credit never more than the old amount, the
charge never more than the new one, the two lines summing to what is due; odd amounts
(1 cent, 10**10, primes, the largest plan) and odd moments (the first and the last second
of a period, sub-second changes)."""

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.engine import invoices, periods, proration

MAX_PLAN = 10**13  # plan_amount_in_range
ODD_AMOUNTS = [0, 1, 2, 3, 7, 99, 997, 2903, 4999, 999_983, 2_147_483_647, 10**10, MAX_PLAN]
amounts = st.sampled_from(ODD_AMOUNTS) | st.integers(0, MAX_PLAN)
# hypothesis takes naive bounds and attaches the zone itself
anchors = st.datetimes(
    min_value=datetime(1990, 1, 1),  # noqa: DTZ001
    max_value=datetime(2200, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
intervals = st.sampled_from([periods.MONTH, periods.YEAR])


def half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def whole_seconds(delta: timedelta) -> int:
    """Exact floor of a non-negative timedelta in seconds (no float)."""
    micros = (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
    return micros // 10**6


def expected(old: int, new: int, start: datetime, end: datetime, at: datetime):
    whole = whole_seconds(end - start)
    if at >= end:
        return None
    left = min(whole_seconds(end - at), whole)
    if whole <= 0 or left <= 0:
        return None
    return half_up(Fraction(old * left, whole)), half_up(Fraction(new * left, whole)), left, whole


def run(old, new, start, end, at):
    return proration.prorate(
        old_amount=old, new_amount=new, old_name="Old", new_name="New", start=start, end=end, at=at
    )


@st.composite
def changes(draw):
    """(old, new, start, end, at): a real period of a random anchor and a moment inside it,
    biased towards its first and last seconds."""
    anchor = draw(anchors)
    interval = draw(intervals)
    start, end = periods.bounds(anchor, interval, draw(st.integers(0, 24)))
    span = whole_seconds(end - start)
    offset = draw(
        st.sampled_from([0, 1, span // 2, span - 1]) | st.integers(min_value=0, max_value=span - 1)
    )
    micro = draw(st.sampled_from([0, 0, 1, 500_000, 999_999]))
    at = start + timedelta(seconds=offset, microseconds=micro)
    if at >= end:
        at = end - timedelta(microseconds=1)
    return draw(amounts), draw(amounts), start, end, at


@settings(max_examples=200, deadline=None)
@given(changes())
@example((2900, 9900, *periods.bounds(datetime(2026, 1, 31, tzinfo=UTC), "month", 1),
          datetime(2026, 2, 28, tzinfo=UTC)))  # fmt: skip
def test_each_line_is_rounded_half_up_once_against_an_exact_fraction(change):
    old, new, start, end, at = change
    lines = run(old, new, start, end, at)
    want = expected(old, new, start, end, at)
    if want is None:
        assert lines == []
        return
    credit, charge, left, whole = want
    assert [x.amount for x in lines] == [-credit, charge]
    # the rounding is of the exact value, to the nearest cent, halves up
    for line, amount in zip(lines, (old, new), strict=True):
        exact = Fraction(amount * left, whole)
        assert abs(abs(line.amount) - exact) <= Fraction(1, 2)
        if abs(line.amount) - exact == Fraction(-1, 2):
            raise AssertionError("a half was rounded down")


@settings(max_examples=200, deadline=None)
@given(changes())
def test_credit_and_charge_are_bounded_by_the_plans_and_sum_to_what_is_due(change):
    old, new, start, end, at = change
    lines = run(old, new, start, end, at)
    if not lines:
        return
    credit_line, charge_line = lines
    assert credit_line.description == "Unused time on Old"
    assert charge_line.description == "Remaining time on New"
    assert 0 <= -credit_line.amount <= old
    assert 0 <= charge_line.amount <= new
    due = credit_line.amount + charge_line.amount
    # two roundings: at most one cent from the exact difference either way
    left, whole = expected(old, new, start, end, at)[2:]
    assert abs(due - Fraction((new - old) * left, whole)) <= 1
    if new >= old:  # an upgrade never makes a negative invoice
        assert due >= 0
        composed = invoices.compose(
            [invoices.Line(invoices.PRORATION, x.description, x.amount) for x in lines]
        )
        assert composed.subtotal == due == composed.total
        assert sum(x.amount for x in composed.lines) == composed.total


@settings(max_examples=200, deadline=None)
@given(old=amounts, new=amounts, anchor=anchors, interval=intervals, k=st.integers(0, 24))
def test_a_change_in_the_first_second_credits_and_charges_everything(old, new, anchor, interval, k):
    start, end = periods.bounds(anchor, interval, k)
    lines = run(old, new, start, end, start)
    assert [x.amount for x in lines] == [-old, new]


@settings(max_examples=200, deadline=None)
@given(old=amounts, new=amounts, anchor=anchors, interval=intervals, k=st.integers(0, 24))
def test_a_change_in_the_last_second_is_one_second_of_each_plan(old, new, anchor, interval, k):
    start, end = periods.bounds(anchor, interval, k)
    whole = whole_seconds(end - start)
    lines = run(old, new, start, end, end - timedelta(seconds=1))
    assert [x.amount for x in lines] == [
        -half_up(Fraction(old, whole)),
        half_up(Fraction(new, whole)),
    ]


@settings(max_examples=100, deadline=None)
@given(old=amounts, new=amounts, anchor=anchors, late=st.integers(0, 10**7))
def test_nothing_is_prorated_at_or_after_the_period_end(old, new, anchor, late):
    start, end = periods.bounds(anchor, periods.MONTH, 0)
    assert run(old, new, start, end, end + timedelta(seconds=late)) == []
    # less than a whole second left counts as nothing left
    assert run(old, new, start, end, end - timedelta(microseconds=1)) == []


def test_worked_example_twenty_of_thirty_days_left():
    """API test's example: basic 10.00 -> team 40.00 with 20 of 30 days left."""
    start, end = periods.bounds(datetime(2026, 4, 1, tzinfo=UTC), periods.MONTH, 0)
    lines = run(1000, 4000, start, end, datetime(2026, 4, 11, tzinfo=UTC))
    assert [x.amount for x in lines] == [-667, 2667]


def test_a_half_cent_rounds_up():
    # 1 cent over a period of 2 seconds, one second left: exactly half a cent each
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(seconds=2)
    lines = run(1, 3, start, end, start + timedelta(seconds=1))
    assert [x.amount for x in lines] == [-1, 2]  # 0.5 -> 1, 1.5 -> 2


def test_february_of_a_leap_year_is_one_day_longer():
    feb = periods.bounds(datetime(2028, 1, 31, tzinfo=UTC), periods.MONTH, 1)
    assert feb == (datetime(2028, 2, 29, tzinfo=UTC), datetime(2028, 3, 31, tzinfo=UTC))
    # 31 days in the period, 1 day left: 3100 / 31
    lines = run(3100, 6200, *feb, datetime(2028, 3, 30, tzinfo=UTC))
    assert [x.amount for x in lines] == [-100, 200]
