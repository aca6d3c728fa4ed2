"""Billing periods (billing.engine.periods), pure: month-end anniversaries counted from the
anchor, yearly Feb 29, and periods that are contiguous and strictly increasing for any
anchor and interval. The expected dates are computed here independently (calendar), not
with the engine's helpers."""

import calendar
import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.engine import periods

MONTH, YEAR = periods.MONTH, periods.YEAR

# hypothesis takes naive bounds and attaches the zone itself
anchors = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=datetime(2400, 12, 31),  # noqa: DTZ001
    timezones=st.just(UTC),
)
# Anchors on the 31st: every later period must start on its month's last day.
month_ends = st.builds(
    lambda year, month, time: datetime(
        year, month, calendar.monthrange(year, month)[1], tzinfo=UTC
    ).replace(hour=time.hour, minute=time.minute, second=time.second, microsecond=time.microsecond),
    st.integers(1900, 2400),
    st.sampled_from([1, 3, 5, 7, 8, 10, 12]),
    st.times(),
)
intervals = st.sampled_from([MONTH, YEAR])


def expected_start(anchor: datetime, interval: str, k: int) -> datetime:
    """Period k's start, from first principles: k months (or 12k) after the anchor, the
    anchor's day clamped to that month's length, the anchor's time of day kept."""
    months = k if interval == MONTH else 12 * k
    year = anchor.year + (anchor.month - 1 + months) // 12
    month = (anchor.month - 1 + months) % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return datetime(
        year,
        month,
        min(anchor.day, last),
        anchor.hour,
        anchor.minute,
        anchor.second,
        anchor.microsecond,
        tzinfo=anchor.tzinfo,
    )


def dates(anchor: datetime, interval: str, n: int) -> list[str]:
    return [periods.shift(anchor, interval, k).date().isoformat() for k in range(n)]


# --- worked examples ---------------------------------------------------------------------


def test_jan_31_anchor_keeps_the_month_end_in_a_common_year():
    anchor = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    assert dates(anchor, MONTH, 13) == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
        "2026-11-30",
        "2026-12-31",
        "2027-01-31",
    ]


def test_jan_31_anchor_lands_on_feb_29_in_a_leap_year():
    anchor = datetime(2028, 1, 31, 0, 0, tzinfo=UTC)
    assert dates(anchor, MONTH, 4) == ["2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30"]


def test_the_30th_and_29th_clamp_in_february_and_come_back():
    assert dates(datetime(2026, 1, 30, tzinfo=UTC), MONTH, 3) == [
        "2026-01-30",
        "2026-02-28",
        "2026-03-30",
    ]
    assert dates(datetime(2027, 12, 29, tzinfo=UTC), MONTH, 4) == [
        "2027-12-29",
        "2028-01-29",
        "2028-02-29",
        "2028-03-29",
    ]


def test_yearly_feb_29_goes_to_feb_28_and_back_to_feb_29_in_the_next_leap_year():
    anchor = datetime(2028, 2, 29, 9, 30, tzinfo=UTC)
    assert dates(anchor, YEAR, 6) == [
        "2028-02-29",
        "2029-02-28",
        "2030-02-28",
        "2031-02-28",
        "2032-02-29",
        "2033-02-28",
    ]


def test_1900_and_2100_are_not_leap_years_but_2000_is():
    assert dates(datetime(1900, 1, 31, tzinfo=UTC), MONTH, 2)[1] == "1900-02-28"
    assert dates(datetime(2000, 1, 31, tzinfo=UTC), MONTH, 2)[1] == "2000-02-29"
    assert dates(datetime(2096, 2, 29, tzinfo=UTC), YEAR, 5)[4] == "2100-02-28"


@pytest.mark.parametrize("interval", [MONTH, YEAR])
def test_period_zero_starts_at_the_anchor_to_the_microsecond(interval):
    anchor = datetime(2026, 5, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    start, end = periods.bounds(anchor, interval, 0)
    assert start == anchor
    assert end == (
        datetime(2026, 6, 30, 23, 59, 59, 999_999, tzinfo=UTC)
        if interval == MONTH
        else datetime(2027, 5, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    )


# --- properties --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(anchor=anchors, interval=intervals, k=st.integers(0, 1200))
@example(anchor=datetime(2026, 1, 31, 12, tzinfo=UTC), interval=MONTH, k=1)
@example(anchor=datetime(2028, 2, 29, tzinfo=UTC), interval=YEAR, k=1)
def test_period_k_is_derived_from_the_anchor(anchor, interval, k):
    if interval == YEAR:
        k = k % 101
    assert periods.shift(anchor, interval, k) == expected_start(anchor, interval, k)


@settings(max_examples=200, deadline=None)
@given(anchor=month_ends, k=st.integers(1, 600))
def test_a_month_end_anchor_never_drifts(anchor, k):
    """Every period of a 31st anchor starts on its month's last day (a chain of
    add-one-month from the previous start would stick to the 28th after February)."""
    start = periods.shift(anchor, MONTH, k)
    assert start.day == calendar.monthrange(start.year, start.month)[1]
    assert start.time() == anchor.time()
    chained = anchor
    for _ in range(k):
        chained = periods.add_months(chained, 1)
    # what drift would give: never later than the anchored date
    assert chained <= start


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, k=st.integers(0, 600))
def test_the_anchor_day_comes_back_whenever_the_month_has_it(anchor, k):
    start = periods.shift(anchor, MONTH, k)
    if anchor.day <= calendar.monthrange(start.year, start.month)[1]:
        assert start.day == anchor.day
    else:
        assert start.day == calendar.monthrange(start.year, start.month)[1]


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, interval=intervals, first=st.integers(0, 600), n=st.integers(1, 30))
@example(anchor=datetime(2026, 1, 31, tzinfo=UTC), interval=MONTH, first=0, n=14)
@example(anchor=datetime(2028, 2, 29, tzinfo=UTC), interval=YEAR, first=0, n=9)
def test_periods_are_contiguous_and_strictly_increasing(anchor, interval, first, n):
    if interval == YEAR:
        first = first % 50
    spans = [periods.bounds(anchor, interval, k) for k in range(first, first + n)]
    for start, end in spans:
        assert start < end
        length = end - start
        if interval == MONTH:
            assert timedelta(days=28) <= length <= timedelta(days=31)
        else:
            assert timedelta(days=365) <= length <= timedelta(days=366)
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end == next_start


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, months=st.integers(-1200, 1200))
def test_add_months_clamps_and_keeps_the_time_and_zone(anchor, months):
    moved = periods.add_months(anchor, months)
    assert (moved.year * 12 + moved.month) - (anchor.year * 12 + anchor.month) == months
    assert moved.day == min(anchor.day, calendar.monthrange(moved.year, moved.month)[1])
    assert moved.timetz() == anchor.timetz()


@settings(max_examples=200, deadline=None)
@given(anchor=anchors, k=st.integers(0, 100))
def test_twelve_monthly_periods_make_one_yearly_period(anchor, k):
    assert periods.shift(anchor, YEAR, k) == periods.shift(anchor, MONTH, 12 * k)
