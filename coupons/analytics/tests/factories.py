"""Helpers to build analytics events and redemptions for tests."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from coupons.analytics import events, rollup
from coupons.models import Redemption


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_default_timezone())


def days_ago(n: int) -> date:
    return rollup.today() - timedelta(days=n)


def event(kind: str, when: datetime, **fields) -> dict:
    return {"kind": kind, "occurred_at": when, **fields}


def write(*items: dict) -> None:
    events.write(list(items))


def cart_payload(
    customer: str | None,
    items: list[tuple[str, str, str, int]],
    *,
    currency: str = "USD",
    shipping: str | None = None,
    segments=(),
    orders_count: int = 0,
) -> dict:
    body = {
        "currency": currency,
        "items": [
            {"sku": s, "category": c, "unit_price": p, "quantity": q} for s, c, p, q in items
        ],
    }
    if shipping is not None:
        body["shipping"] = shipping
    return {
        "customer": {"id": customer, "segments": list(segments), "orders_count": orders_count}
        if customer
        else None,
        "cart": body,
    }


def redemption(
    coupon, *, status: str, discount: int, shipping: int = 0, order_id: str, value: int = 10_000
) -> Redemption:
    # One apply call per order: its redemptions share an apply id (when the model has one).
    extra = (
        {"apply_id": uuid.uuid5(uuid.NAMESPACE_URL, order_id)}
        if any(f.name == "apply_id" for f in Redemption._meta.get_fields())
        else {}
    )
    return Redemption.objects.create(
        coupon=coupon,
        code=coupon.codes.first(),
        order_id=order_id,
        status=status,
        currency=coupon.currency,
        discount_minor=discount,
        shipping_discount_minor=shipping,
        order_value_minor=value,
        expires_at=timezone.now() + timedelta(minutes=15),
        **extra,
    )


def order(
    order_id: str,
    when: datetime,
    uses: list[tuple],
    *,
    customer: str = "",
    new: bool = False,
    value: int = 10_000,
    currency: str = "USD",
) -> list[dict]:
    """The apply and confirm events of one order; `uses` is (coupon, discount, auto) per
    coupon on it: several for a stacked order (a typed code plus automatic promotions),
    each with the order's id, customer, subtotal and new-customer flag."""
    rows = []
    for coupon, discount, auto in uses:
        use = {
            "order_id": order_id,
            "code": coupon.code,
            "coupon_id": coupon.pk,
            "customer_id": customer,
            "currency": currency,
            "order_value_minor": value,
            "discount_minor": discount,
            "new_customer": new,
            "auto": auto,
        }
        rows += [
            event("apply", when, outcome="applied", **use),
            event("confirm", when, outcome="ok", **use),
        ]
    return rows


def stacked_orders(typed, promo, solo, *, closed: date, today: date) -> None:
    """Five orders, two of them stacked, on a closed day (rolled up) and today (live):

    | day    | order | coupons (discount)                    | customer | value  |
    |--------|-------|---------------------------------------|----------|--------|
    | closed | s-1   | typed 10.00 + promo 5.00              | n-1 new  | 100.00 |
    | closed | s-2   | typed 4.00                            | r-1      |  40.00 |
    | closed | s-3   | solo 6.00                             | n-2 new  |  60.00 |
    | today  | s-4   | typed 20.00 + promo 10.00 + solo 5.00 | n-3 new  | 200.00 |
    | today  | s-5   | promo 3.00                            | (guest)  |  30.00 |

    All coupons: 8 uses, 5 orders, 63.00 discount on 430.00 of orders (a sum over the
    coupons would say 930.00), 3 new customers (not 6)."""
    write(
        *order(
            "s-1",
            at(closed, 10),
            [(typed, 1_000, False), (promo, 500, True)],
            customer="n-1",
            new=True,
            value=10_000,
        ),
        *order("s-2", at(closed, 11), [(typed, 400, False)], customer="r-1", value=4_000),
        *order("s-3", at(closed, 12), [(solo, 600, False)], customer="n-2", new=True, value=6_000),
        *order(
            "s-4",
            at(today, 0, 10),
            [(typed, 2_000, False), (promo, 1_000, True), (solo, 500, True)],
            customer="n-3",
            new=True,
            value=20_000,
        ),
        *order("s-5", at(today, 0, 20), [(promo, 300, True)], value=3_000),
        *[
            event(
                "validate",
                at(closed, 9),
                outcome="valid",
                code=typed.code,
                coupon_id=typed.pk,
                currency="USD",
            )
            for _ in range(4)
        ],
    )
    rollup.rollup_days([closed])
