"""Daily facts from the raw events.

`aggregate_coupons` and `aggregate_site` are the only definitions of the metrics: the
roll-up stores their result per closed day, and the live numbers of today are the same
functions over today's events, so facts and live stats cannot disagree. Days are
calendar days in settings.TIME_ZONE.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from analytics.models import CouponEvent, DailyCouponFact, DailySiteFact, EventKind

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
SITE_METRICS = {
    "carts_without_discount": Count("id"),
    "order_value_without_discount_minor": Coalesce(Sum("order_value_minor"), 0),
}


def today() -> date:
    return timezone.localdate(timezone=timezone.get_default_timezone())


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[start, end) of a calendar day in the site's time zone."""
    tz = timezone.get_default_timezone()
    return (datetime.combine(day, time.min, tzinfo=tz),
            datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz))


def _prefixed(metrics: dict) -> dict:
    """An annotation may not take the name of a column it sums (order_value_minor)."""
    return {f"m_{name}": aggregate for name, aggregate in metrics.items()}


def _named(rows) -> list[dict]:
    return [{key.removeprefix("m_"): value for key, value in row.items()} for row in rows]


def _by_day(qs):
    return qs.annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_default_timezone()))


def aggregate_coupons(start: datetime, end: datetime, *, coupon_id: int | None = None,
                      currency: str | None = None) -> list[dict]:
    """Per (day, coupon_id, currency): COUPON_METRICS over the events in [start, end)."""
    qs = CouponEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end,
                                    coupon_id__isnull=False).exclude(kind=EventKind.CART)
    if coupon_id is not None:
        qs = qs.filter(coupon_id=coupon_id)
    if currency is not None:
        qs = qs.filter(currency=currency)
    return _named(_by_day(qs).values("day", "coupon_id", "currency")
                  .annotate(**_prefixed(COUPON_METRICS)).order_by("day", "coupon_id", "currency"))


def aggregate_site(start: datetime, end: datetime, *, currency: str | None = None) -> list[dict]:
    """Per (day, currency): carts priced without any discount in [start, end)."""
    qs = CouponEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end,
                                    kind=EventKind.CART, discount_minor=0).exclude(currency="")
    if currency is not None:
        qs = qs.filter(currency=currency)
    return _named(_by_day(qs).values("day", "currency").annotate(**_prefixed(SITE_METRICS))
                  .order_by("day", "currency"))


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
        coupon_facts += [DailyCouponFact(**row, rolled_up_at=now)
                         for row in aggregate_coupons(start, end)]
        site_facts += [DailySiteFact(**row, rolled_up_at=now) for row in aggregate_site(start, end)]
    DailyCouponFact.objects.bulk_create(coupon_facts, batch_size=2000)
    DailySiteFact.objects.bulk_create(site_facts, batch_size=2000)
    return len(coupon_facts)


def rollup_recent() -> int:
    """Today and yesterday: yesterday again so events flushed just after midnight count."""
    day = today()
    return rollup_days([day - timedelta(days=1), day])
