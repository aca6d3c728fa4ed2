"""Plain data the engine works on: no ORM, no request. All money is int minor units."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# Discount types (coupons.models.DiscountType uses the same values).
PERCENTAGE = "percentage"
FIXED = "fixed"
BOGO = "bogo"
TIERED = "tiered"
FREE_SHIPPING = "free_shipping"
DISCOUNT_TYPES = (PERCENTAGE, FIXED, BOGO, TIERED, FREE_SHIPPING)


@dataclass(frozen=True, slots=True)
class Line:
    sku: str
    category: str
    unit_price: int
    quantity: int

    @property
    def amount(self) -> int:
        return self.unit_price * self.quantity


@dataclass(frozen=True, slots=True)
class Cart:
    currency: str
    lines: tuple[Line, ...]
    shipping: int = 0

    @property
    def subtotal(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass(frozen=True, slots=True)
class Shopper:
    """What eligibility needs to know about the customer (None id: anonymous)."""

    id: str | None = None
    segments: frozenset[str] = frozenset()
    orders_count: int = 0


@dataclass(frozen=True, slots=True)
class Tier:
    threshold: int
    discount: int


@dataclass(frozen=True, slots=True)
class Rule:
    """A coupon's definition, as cached for the validate path."""

    coupon_id: int
    code: str
    type: str
    currency: str
    percent_bp: int | None = None
    amount: int | None = None
    cap: int | None = None
    tiers: tuple[Tier, ...] = ()
    bogo_buy: int | None = None
    bogo_get: int | None = None
    bogo_percent_bp: int | None = None
    min_cart: int | None = None
    eligible_categories: frozenset[str] = frozenset()
    eligible_skus: frozenset[str] = frozenset()
    excluded_skus: frozenset[str] = frozenset()
    eligible_segments: frozenset[str] = frozenset()
    first_purchase_only: bool = False
    max_uses_total: int | None = None
    max_uses_per_user: int | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    active: bool = True
    stackable: bool = False
    stack_group: str = ""
    auto_apply: bool = False
    priority: int = 0
    name: str = ""  # what the shopper is shown for a promotion (description or code)
    budget: int | None = None  # total discount budget (merchandise + shipping)


@dataclass(frozen=True, slots=True)
class CodeTerms:
    """A code's own terms on top of its coupon's rule."""

    code_id: int
    code: str
    rule: Rule
    max_uses: int | None = None
    expires_at: datetime | None = None
    bound_customer: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class Usage:
    """Live counters read from PostgreSQL (never from a cache)."""

    coupon_uses: int = 0
    code_uses: int = 0
    customer_uses: int = 0
    budget_used: int = 0  # discount held by the coupon's live redemptions


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str
    message: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Applied:
    """One coupon's effect within a stacked application."""

    terms: CodeTerms
    discount: int
    shipping_discount: int
    line_discounts: tuple[int, ...]
    message: str


@dataclass(frozen=True)
class Pricing:
    """Result of pricing a cart with a set of codes."""

    applied: tuple[Applied, ...] = ()
    rejection: Rejection | None = None
    line_discounts: tuple[int, ...] = ()
    discount: int = 0
    shipping_discount: int = 0

    @property
    def ok(self) -> bool:
        return self.rejection is None
