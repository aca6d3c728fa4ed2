"""An invoice's lines and totals from what it charges, its discount and the customer's
credit (pure; the services write what this returns).

total = subtotal - discount - credit_applied, never below zero, and the signed lines sum
to it exactly: the discount is capped by the subtotal and the credit by what is left.
"""

from __future__ import annotations

from dataclasses import dataclass

SUBSCRIPTION = "subscription"
PRORATION = "proration"
DISCOUNT = "discount"
CREDIT = "credit"


@dataclass(frozen=True)
class Line:
    kind: str
    description: str
    amount: int  # signed minor units
    quantity: int = 1


@dataclass(frozen=True)
class Composed:
    lines: tuple[Line, ...]
    subtotal: int
    discount: int
    credit_applied: int

    @property
    def total(self) -> int:
        return self.subtotal - self.discount - self.credit_applied


def compose(
    charges: list[Line],
    *,
    discount: int = 0,
    discount_description: str = "",
    credit_available: int = 0,
) -> Composed:
    """`charges`: subscription / proration lines (a proration credit line is negative);
    `discount`: what the coupon engine takes off; `credit_available`: the balance."""
    subtotal = sum(line.amount for line in charges)
    if subtotal < 0:  # only upgrades are charged now; a downgrade waits for the period end
        raise ValueError("an invoice cannot charge a negative subtotal")
    lines = list(charges)
    discount = min(max(0, discount), subtotal)
    if discount:
        lines.append(Line(DISCOUNT, discount_description or "Discount", -discount))
    credit = min(max(0, credit_available), subtotal - discount)
    if credit:
        lines.append(Line(CREDIT, "Applied balance", -credit))
    return Composed(lines=tuple(lines), subtotal=subtotal, discount=discount, credit_applied=credit)
