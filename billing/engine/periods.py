"""Billing periods, counted from an anchor so month-end anniversaries hold.

Period k of a subscription starts at `shift(anchor, k)`: the anchor's day of month in the
k-th month after it, clamped to that month's last day. Counting from the anchor (never
from the previous period's end) is what keeps Jan 31 -> Feb 28 -> Mar 31 rather than
drifting to the 28th for ever (Stripe's billing_cycle_anchor behaves the same way).
"""

from __future__ import annotations

import calendar
from datetime import datetime

MONTH = "month"
YEAR = "year"


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` moved by whole months, its day clamped to the target month's length."""
    index = moment.year * 12 + (moment.month - 1) + months
    year, month0 = divmod(index, 12)
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def shift(anchor: datetime, interval: str, periods: int) -> datetime:
    """The start of period `periods` (0 = the anchor itself)."""
    months = periods if interval == MONTH else 12 * periods
    return add_months(anchor, months)


def bounds(anchor: datetime, interval: str, index: int) -> tuple[datetime, datetime]:
    """(start, end) of period `index`."""
    return shift(anchor, interval, index), shift(anchor, interval, index + 1)
