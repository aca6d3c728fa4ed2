"""Daily facts from the raw events.

`aggregate_coupons` and `aggregate_site` are the only definitions of the metrics: the
roll-up stores their result per closed day, and the live numbers of today are the same
functions over today's events, so facts and live stats cannot disagree. Days are
calendar days in settings.TIME_ZONE.

Coupon facts count per coupon: an order that stacked two coupons is a confirm of each.
The site facts count each order once (`aggregate_orders`): the all-coupons totals read
them, never a sum of coupon facts, for what belongs to the order (its value, its
customer).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib.postgres.aggregates import BoolOr
from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, Count, F, Max, Q, Sum, When
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from coupons.analytics.models import CouponEvent, DailyCouponFact, DailySiteFact, EventKind

_CONFIRM = Q(kind=EventKind.CONFIRM)
_CONFIRMING = _CONFIRM & ~Q(customer_id="")

# Metric name (a DailyCouponFact field) -> its aggregate over one group of events.
COUPON_METRICS = {
    "validations": Count("id", filter=Q(kind=EventKind.VALIDATE)),
    "valid_validations": Count("id", filter=Q(kind=EventKind.VALIDATE, outcome="valid")),
    "applies": Count("id", filter=Q(kind=EventKind.APPLY, outcome="applied")),
    "confirms": Count("id", filter=_CONFIRM),
    "releases": Count("id", filter=Q(kind=EventKind.RELEASE)),
    "expires": Count("id", filter=Q(kind=EventKind.EXPIRE)),
    "returns": Count("id", filter=Q(kind=EventKind.RETURN)),
    "discount_minor": Coalesce(Sum("discount_minor", filter=_CONFIRM), 0),
    "order_value_minor": Coalesce(Sum("order_value_minor", filter=_CONFIRM), 0),
    "returned_minor": Coalesce(Sum("order_value_minor", filter=Q(kind=EventKind.RETURN)), 0),
    "new_customers": Count("customer_id", distinct=True, filter=_CONFIRMING & Q(new_customer=True)),
    "customers": Count("customer_id", distinct=True, filter=_CONFIRMING),
}
# Site metric (a DailySiteFact field) -> its aggregate over the carts priced with no discount.
CART_METRICS = {
    "carts_without_discount": Count("id"),
    "order_value_without_discount_minor": Coalesce(Sum("order_value_minor"), 0),
}
# Site metrics over the confirmed orders, each order once (aggregate_orders): a stacked
# order has one confirm event per coupon, all with its order_id, subtotal and customer.
ORDER_METRICS = ("orders", "order_value_minor", "new_customers")
SITE_METRICS = (*CART_METRICS, *ORDER_METRICS)

# Per (day, currency) over the orders of the inner query (one row per order). An order's
# value is its subtotal, the same on each of its coupons' events (the largest is taken
# should they ever differ); a new customer counts once a day, as in the coupon facts.
_ORDERS_SQL = """
    SELECT o_day, o_currency, COUNT(*),
           COALESCE(SUM(o_value), 0)::bigint,
           COUNT(DISTINCT o_customer) FILTER (WHERE o_new AND o_customer <> '')
    FROM ({inner}) AS orders
    GROUP BY o_day, o_currency
    ORDER BY o_day, o_currency
"""


def today() -> date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the site's time zone."""
    tz = timezone.get_default_timezone()
    return (
        datetime.combine(day, time.min, tzinfo=tz),
        datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz),
    )


def _prefixed(metrics: dict) -> dict:
    """An annotation may not take the name of a column it sums (order_value_minor)."""
    return {f"m_{name}": aggregate for name, aggregate in metrics.items()}


def _named(rows) -> list[dict]:
    return [{key.removeprefix("m_"): value for key, value in row.items()} for row in rows]


def _by_day(qs):
    return qs.annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_default_timezone()))


def aggregate_coupons(
    start: datetime, end: datetime, *, coupon_id: int | None = None, currency: str | None = None
) -> list[dict]:
    """Per (day, coupon_id, currency): COUPON_METRICS over the events in [start, end)."""
    qs = CouponEvent.objects.filter(
        occurred_at__gte=start, occurred_at__lt=end, coupon_id__isnull=False
    ).exclude(kind=EventKind.CART)
    if coupon_id is not None:
        qs = qs.filter(coupon_id=coupon_id)
    if currency is not None:
        qs = qs.filter(currency=currency)
    return _named(
        _by_day(qs)
        .values("day", "coupon_id", "currency")
        .annotate(**_prefixed(COUPON_METRICS))
        .order_by("day", "coupon_id", "currency")
    )


def aggregate_carts(start: datetime, end: datetime, *, currency: str | None = None) -> list[dict]:
    """Per (day, currency): CART_METRICS over the carts priced without any discount."""
    qs = CouponEvent.objects.filter(
        occurred_at__gte=start, occurred_at__lt=end, kind=EventKind.CART, discount_minor=0
    ).exclude(currency="")
    if currency is not None:
        qs = qs.filter(currency=currency)
    return _named(
        _by_day(qs)
        .values("day", "currency")
        .annotate(**_prefixed(CART_METRICS))
        .order_by("day", "currency")
    )


def aggregate_orders(start: datetime, end: datetime, *, currency: str | None = None) -> list[dict]:
    """Per (day, currency): ORDER_METRICS over the confirmed orders in [start, end), each
    order once however many coupons it used. An order is its `order_id`; a confirm event
    without one is an order of its own."""
    qs = CouponEvent.objects.filter(
        occurred_at__gte=start, occurred_at__lt=end, kind=EventKind.CONFIRM, coupon_id__isnull=False
    ).exclude(currency="")
    if currency is not None:
        qs = qs.filter(currency=currency)
    inner = (
        _by_day(qs)
        .annotate(
            o_day=F("day"),
            o_currency=F("currency"),
            o_order=F("order_id"),
            o_lone=Case(
                When(order_id="", then=F("id")), default=None, output_field=BigIntegerField()
            ),
        )
        .values("o_day", "o_currency", "o_order", "o_lone")
        .annotate(
            o_value=Max("order_value_minor"),
            o_customer=Max("customer_id"),
            o_new=BoolOr("new_customer"),
        )
        .order_by()
    )
    sql, params = inner.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(_ORDERS_SQL.format(inner=sql), params)
        rows = cursor.fetchall()
    return [
        {"day": day, "currency": cur, **dict(zip(ORDER_METRICS, values, strict=True))}
        for day, cur, *values in rows
    ]


def aggregate_site(start: datetime, end: datetime, *, currency: str | None = None) -> list[dict]:
    """Per (day, currency): SITE_METRICS (carts without discount, and the orders each
    once) over [start, end); a metric with nothing to count is 0."""
    merged: dict[tuple, dict] = {}
    for row in (
        *aggregate_carts(start, end, currency=currency),
        *aggregate_orders(start, end, currency=currency),
    ):
        key = (row["day"], row["currency"])
        into = merged.setdefault(
            key, {"day": key[0], "currency": key[1], **dict.fromkeys(SITE_METRICS, 0)}
        )
        into.update((name, value) for name, value in row.items() if name in SITE_METRICS)
    return [merged[key] for key in sorted(merged)]


@transaction.atomic
def rollup_days(days: list[date]) -> int:
    """Replace the facts of `days` with a fresh aggregation; returns the coupon facts
    written. Idempotent: a rerun replaces, never adds. Concurrent runs (a slow beat run
    and a backfill) take turns on an advisory lock."""
    days = sorted(set(days))
    if not days:
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('analytics.rollup'))")
    DailyCouponFact.objects.filter(day__in=days).delete()
    DailySiteFact.objects.filter(day__in=days).delete()
    now = timezone.now()
    coupon_facts, site_facts = [], []
    for day in days:
        start, end = day_bounds(day)
        coupon_facts += [
            DailyCouponFact(**row, rolled_up_at=now) for row in aggregate_coupons(start, end)
        ]
        site_facts += [DailySiteFact(**row, rolled_up_at=now) for row in aggregate_site(start, end)]
    DailyCouponFact.objects.bulk_create(coupon_facts, batch_size=2000)
    DailySiteFact.objects.bulk_create(site_facts, batch_size=2000)
    return len(coupon_facts)


def rollup_recent() -> int:
    """Today and yesterday: yesterday again so events flushed just after midnight count."""
    day = today()
    return rollup_days([day - timedelta(days=1), day])
