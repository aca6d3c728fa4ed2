"""Two weeks of made-up checkout history for the demo (`seed_demo`), so the analytics page,
the stats API and the what-if simulation have something to show on a fresh machine.
Written as analytics events only: no redemption, counter or budget is touched."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta

from django.utils import timezone

from coupons.analytics import events, rollup
from coupons.analytics.models import CouponEvent
from coupons.models import Coupon

DAYS = 14
# code -> (discount on a cart of value v in cents, daily validations)
PLAN = {
    "SUMMER25": (lambda v: min(v // 4, 5000), 40),
    "FALL20": (lambda v: v // 5, 30),
    "TENOFF": (lambda v: 1000, 25),
    "FREESHIP": (lambda v: 799, 20),
}
CATEGORIES = ["electronics", "clothing", "books", "home", "toys"]


def load(*, seed: int = 2026) -> int:
    """Write the history once (a second run finds events and does nothing); returns the
    number of events written."""
    if CouponEvent.objects.exists():
        return 0
    rng = random.Random(seed)  # noqa: S311 - made-up demo data
    coupons = {c.code: c for c in Coupon.objects.filter(code__in=PLAN)}
    today = rollup.today()
    rows: list[dict] = []
    for back in range(DAYS, -1, -1):
        day = today - timedelta(days=back)
        for code, (discount_of, per_day) in PLAN.items():
            coupon = coupons.get(code)
            if coupon is None:
                continue
            for n in range(rng.randint(per_day // 2, per_day + back % 5)):
                rows.extend(_shopper(rng, day, coupon, discount_of, f"{code}-{back}-{n}"))
    events.write(rows)
    rollup.rollup_days([today - timedelta(days=b) for b in range(DAYS + 1)])
    return len(rows)


def _shopper(rng, day, coupon, discount_of, tag: str) -> list[dict]:
    moment = datetime.combine(
        day, time(rng.randint(8, 21), rng.randint(0, 59)), tzinfo=timezone.get_default_timezone()
    )
    moment = min(moment, timezone.now())
    customer = f"demo-{rng.randint(1, 400)}"
    price = rng.choice([1999, 2999, 4999, 7999, 12999])
    quantity = rng.randint(1, 3)
    value = price * quantity
    new = rng.random() < 0.3
    payload = {
        "customer": {
            "id": customer,
            "segments": ["premium_members"] if new else [],
            "orders_count": 0 if new else rng.randint(1, 9),
        },
        "cart": {
            "currency": "USD",
            "shipping": "7.99",
            "items": [
                {
                    "sku": f"SKU-{price}",
                    "category": rng.choice(CATEGORIES),
                    "unit_price": f"{price / 100:.2f}",
                    "quantity": quantity,
                }
            ],
        },
    }
    common = {
        "occurred_at": moment,
        "customer_id": customer,
        "currency": "USD",
        "order_value_minor": value,
        "new_customer": new,
    }
    discount = discount_of(value)
    rows = [
        {"kind": "cart", "discount_minor": discount, "payload": payload, **common},
        {
            "kind": "validate",
            "outcome": "valid",
            "code": coupon.code,
            "coupon_id": coupon.pk,
            "discount_minor": discount,
            **common,
        },
    ]
    if rng.random() < 0.6:
        order = {
            "code": coupon.code,
            "coupon_id": coupon.pk,
            "order_id": f"demo-{tag}",
            "discount_minor": discount,
            **common,
        }
        rows.append({"kind": "apply", "outcome": "applied", **order})
        roll = rng.random()
        if roll < 0.8:
            rows.append({"kind": "confirm", "outcome": "ok", **order})
            if rng.random() < 0.08:
                rows.append({"kind": "return", "outcome": "ok", **order})
        elif roll < 0.9:
            rows.append({"kind": "release", "outcome": "ok", **order})
        else:
            rows.append({"kind": "expire", "outcome": "ok", **order})
    # Some shoppers also price a cart with no coupon at all.
    if rng.random() < 0.5:
        rows.append(
            {
                "kind": "cart",
                "discount_minor": 0,
                "payload": payload,
                **{**common, "order_value_minor": rng.choice([1500, 3500, 6000])},
            }
        )
    return rows
