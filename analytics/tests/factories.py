"""Helpers to build analytics events and redemptions for tests."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.utils import timezone

from analytics import events, rollup
from coupons.models import Redemption


def at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=timezone.get_default_timezone())


def days_ago(n: int) -> date:
    return rollup.today() - timedelta(days=n)


def event(kind: str, when: datetime, **fields) -> dict:
    return {"kind": kind, "occurred_at": when, **fields}


def write(*items: dict) -> None:
    events.write(list(items))


def cart_payload(customer: str | None, items: list[tuple[str, str, str, int]], *,
                 currency: str = "USD", shipping: str | None = None, segments=(),
                 orders_count: int = 0) -> dict:
    body = {"currency": currency,
            "items": [{"sku": s, "category": c, "unit_price": p, "quantity": q}
                      for s, c, p, q in items]}
    if shipping is not None:
        body["shipping"] = shipping
    return {"customer": {"id": customer, "segments": list(segments),
                         "orders_count": orders_count} if customer else None,
            "cart": body}


def redemption(coupon, *, status: str, discount: int, shipping: int = 0,
               order_id: str, value: int = 10_000) -> Redemption:
    return Redemption.objects.create(
        coupon=coupon, code=coupon.codes.first(), order_id=order_id, status=status,
        currency=coupon.currency, discount_minor=discount, shipping_discount_minor=shipping,
        order_value_minor=value, expires_at=timezone.now() + timedelta(minutes=15))
