"""Proration of a plan change inside a period (pure arithmetic, integer minor units).

The unused part of the period is measured in whole seconds: `(end - at) / (end - start)`.
Each line is rounded half-up once: a credit for the old plan's unused time and a charge
for the new plan's remaining time; the invoice is their sum, so the lines always add up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ProrationLine:
    description: str
    amount: int  # signed minor units


def _fraction_of(amount: int, used: int, whole: int) -> int:
    """amount * used / whole, rounded half-up (non-negative inputs, whole > 0)."""
    return (2 * amount * used + whole) // (2 * whole)


def prorate(
    *,
    old_amount: int,
    new_amount: int,
    old_name: str,
    new_name: str,
    start: datetime,
    end: datetime,
    at: datetime,
) -> list[ProrationLine]:
    whole = int((end - start).total_seconds())
    left = int((end - at).total_seconds())
    if whole <= 0 or left <= 0:
        return []
    left = min(left, whole)
    credit = _fraction_of(old_amount, left, whole)
    charge = _fraction_of(new_amount, left, whole)
    return [
        ProrationLine(f"Unused time on {old_name}", -credit),
        ProrationLine(f"Remaining time on {new_name}", charge),
    ]
