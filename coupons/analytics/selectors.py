"""Reads for the analytics page and the stats API.

Days are inclusive calendar days in settings.TIME_ZONE. Closed days come from the daily
facts; today (and any later day) from the same aggregation over the live events
(rollup.aggregate_*), so a number never depends on when the last roll-up ran. Money
comes out as the API's decimal strings, rates as floats rounded to 4 places, or null
when there is nothing to divide by.

One coupon's numbers count each of its uses. The all-coupons numbers (`site_stats`,
`daily_series` without a coupon) count what belongs to an order once, however many
coupons the order stacked: its value, its customer, the order itself (`orders`); what
each coupon gave (discount) and did (validations, redemptions = coupon uses) is summed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from django.db.models import F, Sum

from core.money import format_amount
from coupons.analytics import rollup
from coupons.analytics.models import DailyCouponFact, DailySiteFact
from coupons.campaigns.models import Campaign
from coupons.models import Coupon, Redemption, RedemptionStatus
from coupons.selectors import normalize_code

METRICS = tuple(rollup.COUPON_METRICS)
SITE_METRICS = tuple(rollup.SITE_METRICS)
TOP_ORDERS = (
    "redemptions",
    "validations",
    "redemption_rate",
    "discount",
    "order_value",
    "revenue_impact",
    "new_customers",
)


# Sums over facts, under names that do not clash with the fact columns.
_SUMS = {f"sum_{name}": Sum(name) for name in METRICS}
_SITE_SUMS = {f"sum_{name}": Sum(name) for name in SITE_METRICS}


# --- the numbers ------------------------------------------------------------------------


def _sums(row: dict) -> dict:
    return {key.removeprefix("sum_"): value for key, value in row.items()}


def _split(start: date, end: date) -> tuple[tuple[date, date] | None, tuple | None]:
    """The closed days (from facts) and the live [start, end) time range, either None."""
    today = rollup.today()
    closed = (start, min(end, today - timedelta(days=1))) if start < today else None
    live = (
        (rollup.day_bounds(max(start, today))[0], rollup.day_bounds(end)[1])
        if end >= today
        else None
    )
    if closed and closed[0] > closed[1]:
        closed = None
    return closed, live


def _add(into: dict, row: dict, names: Iterable[str]) -> None:
    for name in names:
        into[name] = into.get(name, 0) + (row[name] or 0)


def _coupon_metrics(
    start: date, end: date, *, by: str | None, currency: str, coupon_id: int | None = None
) -> dict:
    """METRICS summed per `by` ("day", "coupon_id") or overall (key None)."""
    out: dict = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    closed, live = _split(start, end)
    if closed:
        qs = DailyCouponFact.objects.filter(day__range=closed, currency=currency)
        if coupon_id is not None:
            qs = qs.filter(coupon_id=coupon_id)
        if by is None:
            _add(out[None], _sums(qs.aggregate(**_SUMS)), METRICS)
        else:
            for row in qs.values(by).annotate(**_SUMS).order_by():
                _add(out[row[by]], _sums(row), METRICS)
    if live:
        for row in rollup.aggregate_coupons(*live, coupon_id=coupon_id, currency=currency):
            _add(out[row[by] if by else None], row, METRICS)
    return out


def _site_metrics(start: date, end: date, *, currency: str, by: str | None = None) -> dict:
    """SITE_METRICS summed per day (`by="day"`) or overall (key None)."""
    out: dict = defaultdict(lambda: dict.fromkeys(SITE_METRICS, 0))
    closed, live = _split(start, end)
    if closed:
        qs = DailySiteFact.objects.filter(day__range=closed, currency=currency)
        if by is None:
            _add(out[None], _sums(qs.aggregate(**_SITE_SUMS)), SITE_METRICS)
        else:
            for row in qs.values(by).annotate(**_SITE_SUMS).order_by():
                _add(out[row[by]], _sums(row), SITE_METRICS)
    if live:
        for row in rollup.aggregate_site(*live, currency=currency):
            _add(out[row[by] if by else None], row, SITE_METRICS)
    return out


def _rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def _average(total_minor: int, count: int, currency: str) -> str | None:
    """total / count as money, rounded half-up to the minor unit."""
    if not count:
        return None
    return format_amount((2 * total_minor + count) // (2 * count), currency)


# --- budget and campaign ----------------------------------------------------------------


def _budget_used(coupon_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """coupon id -> {"confirmed": minor, "reserved": minor}: discount plus shipping
    discount held by its redemptions (all time: a budget is a lifetime total)."""
    out: dict[int, dict[str, int]] = defaultdict(lambda: {"confirmed": 0, "reserved": 0})
    rows = (
        Redemption.objects.filter(
            coupon_id__in=list(coupon_ids),
            status__in=[RedemptionStatus.CONFIRMED, RedemptionStatus.RESERVED],
        )
        .values("coupon_id", "status")
        .annotate(total=Sum(F("discount_minor") + F("shipping_discount_minor")))
        .order_by()
    )
    for row in rows:
        out[row["coupon_id"]][row["status"]] = row["total"] or 0
    return out


def _budget(coupon: Coupon) -> dict | None:
    if coupon.budget_minor is None:
        return None
    used = _budget_used([coupon.pk])[coupon.pk]
    spent, reserved, budget = used["confirmed"], used["reserved"], coupon.budget_minor
    cur = coupon.currency
    return {
        "budget": format_amount(budget, cur),
        "spent": format_amount(spent, cur),
        "reserved": format_amount(reserved, cur),
        "remaining": format_amount(max(0, budget - spent - reserved), cur),
        "burn": _rate(spent + reserved, budget),
    }


def _campaign(coupon: Coupon) -> dict | None:
    campaign = Campaign.objects.filter(coupon=coupon).order_by("-starts_at").first()
    return {"id": str(campaign.pk), "name": campaign.name} if campaign else None


# --- public -----------------------------------------------------------------------------


def coupon_by_code(code: str) -> Coupon | None:
    """The coupon whose identifier is `code`, in any case (None for no such coupon)."""
    code = normalize_code(code)
    if len(code) > 64 or "\x00" in code:  # cannot exist; PostgreSQL refuses NUL
        return None
    return Coupon.objects.filter(code=code).first()


def coupon_stats(coupon: Coupon, *, start: date, end: date) -> dict:
    """Every metric of one coupon over [start, end], in the coupon's currency."""
    cur = coupon.currency
    m = _coupon_metrics(start, end, by=None, currency=cur, coupon_id=coupon.pk)[None]
    site = _site_metrics(start, end, currency=cur)[None]
    redemptions, discount, value = m["confirms"], m["discount_minor"], m["order_value_minor"]
    return {
        "code": coupon.code,
        "description": coupon.description,
        "currency": cur,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "validation_attempts": m["validations"],
        "valid_attempts": m["valid_validations"],
        "applies": m["applies"],
        "redemptions": redemptions,
        "orders": redemptions,  # a coupon is used at most once per order
        "releases": m["releases"],
        "expires": m["expires"],
        "returns": m["returns"],
        "redemption_rate": _rate(redemptions, m["validations"]),
        "discount_given": format_amount(discount, cur),
        "order_value": format_amount(value, cur),
        "revenue_impact": format_amount(value - discount, cur),
        "returned_value": format_amount(m["returned_minor"], cur),
        "average_order_value": _average(value, redemptions, cur),
        "average_order_value_without_coupon": _average(
            site["order_value_without_discount_minor"], site["carts_without_discount"], cur
        ),
        "new_customers": m["new_customers"],
        "discount_per_new_customer": _average(discount, m["new_customers"], cur),
        "return_rate": _rate(m["returns"], redemptions),
        "budget": _budget(coupon),
        "campaign": _campaign(coupon),
        "daily": daily_series(start=start, end=end, coupon=coupon, currency=cur),
    }


def _order_side(m: dict, site: dict | None) -> tuple[int, int, int]:
    """(orders, order value, new customers): the coupon's own (`site` None: each use is
    an order of the coupon's), or the site's, where a stacked order counts once."""
    if site is None:
        return m["confirms"], m["order_value_minor"], m["new_customers"]
    return site["orders"], site["order_value_minor"], site["new_customers"]


def daily_series(
    *, start: date, end: date, coupon: Coupon | None = None, currency: str | None = None
) -> list[dict]:
    """One entry per day, zeros included; one coupon or all of them (then order value,
    revenue impact, orders and new customers count a stacked order once). `currency`
    defaults to the coupon's, or USD for all coupons."""
    cur = currency or (coupon.currency if coupon else "USD")
    by_day = _coupon_metrics(
        start, end, by="day", currency=cur, coupon_id=coupon.pk if coupon else None
    )
    site_by_day = None if coupon else _site_metrics(start, end, currency=cur, by="day")
    out = []
    for offset in range((end - start).days + 1):
        day = start + timedelta(days=offset)
        m = by_day.get(day) or dict.fromkeys(METRICS, 0)
        site = (
            None if site_by_day is None else site_by_day.get(day) or dict.fromkeys(SITE_METRICS, 0)
        )
        orders, value, new = _order_side(m, site)
        out.append(
            {
                "day": day.isoformat(),
                "validations": m["validations"],
                "redemptions": m["confirms"],
                "orders": orders,
                "discount": format_amount(m["discount_minor"], cur),
                "order_value": format_amount(value, cur),
                "revenue_impact": format_amount(value - m["discount_minor"], cur),
                "new_customers": new,
            }
        )
    return out


def site_stats(*, start: date, end: date, currency: str = "USD") -> dict:
    """All coupons in one currency over [start, end], with the keys of `coupon_stats`
    that mean something for a whole site. Summed over the coupons: validations,
    redemptions (coupon uses), releases, expires, returns and the discount. Counted once
    per order, however many coupons it stacked: orders, order value, revenue impact
    (order value - discount), average order value (order value / orders) and new
    customers. Return rate is None: returns are recorded per coupon use, not per order."""
    m = _coupon_metrics(start, end, by=None, currency=currency)[None]
    site = _site_metrics(start, end, currency=currency)[None]
    redemptions, discount = m["confirms"], m["discount_minor"]
    orders, value, new = site["orders"], site["order_value_minor"], site["new_customers"]
    return {
        "currency": currency,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "validation_attempts": m["validations"],
        "valid_attempts": m["valid_validations"],
        "applies": m["applies"],
        "redemptions": redemptions,
        "orders": orders,
        "releases": m["releases"],
        "expires": m["expires"],
        "returns": m["returns"],
        "redemption_rate": _rate(redemptions, m["validations"]),
        "discount_given": format_amount(discount, currency),
        "order_value": format_amount(value, currency),
        "revenue_impact": format_amount(value - discount, currency),
        "average_order_value": _average(value, orders, currency),
        "average_order_value_without_coupon": _average(
            site["order_value_without_discount_minor"], site["carts_without_discount"], currency
        ),
        "new_customers": new,
        "discount_per_new_customer": _average(discount, new, currency),
        "return_rate": None,
        "budget": None,
        "daily": daily_series(start=start, end=end, currency=currency),
    }


def top_coupons(
    *, start: date, end: date, currency: str = "USD", limit: int = 20, order_by: str = "redemptions"
) -> list[dict]:
    """The coupons with the most `order_by` (descending; TOP_ORDERS) in one currency."""
    if order_by not in TOP_ORDERS:
        raise ValueError(f"order_by must be one of {', '.join(TOP_ORDERS)}")
    by_coupon = _coupon_metrics(start, end, by="coupon_id", currency=currency)
    coupons = Coupon.objects.in_bulk(list(by_coupon))
    used = _budget_used(c.pk for c in coupons.values() if c.budget_minor is not None)
    rows = []
    for coupon_id, m in by_coupon.items():
        coupon = coupons.get(coupon_id)
        if coupon is None:  # deleted since (events keep ids, not foreign keys)
            continue
        discount, value = m["discount_minor"], m["order_value_minor"]
        rows.append(
            (
                {
                    "redemptions": m["confirms"],
                    "validations": m["validations"],
                    "redemption_rate": _rate(m["confirms"], m["validations"]) or 0.0,
                    "discount": discount,
                    "order_value": value,
                    "revenue_impact": value - discount,
                    "new_customers": m["new_customers"],
                }[order_by],
                coupon,
                m,
            )
        )
    rows.sort(key=lambda row: (-row[0], row[1].code))
    out = []
    for _, coupon, m in rows[:limit]:
        discount, value = m["discount_minor"], m["order_value_minor"]
        budget = coupon.budget_minor
        out.append(
            {
                "coupon_id": coupon.pk,
                "code": coupon.code,
                "description": coupon.description,
                "redemptions": m["confirms"],
                "validations": m["validations"],
                "redemption_rate": _rate(m["confirms"], m["validations"]),
                "discount": format_amount(discount, currency),
                "order_value": format_amount(value, currency),
                "revenue_impact": format_amount(value - discount, currency),
                "new_customers": m["new_customers"],
                "budget": format_amount(budget, currency) if budget is not None else None,
                "budget_spent": format_amount(used[coupon.pk]["confirmed"], currency)
                if budget is not None
                else None,
            }
        )
    return out


def campaign_stats(campaign: Campaign, *, start: date, end: date) -> dict:
    """coupon_stats of the campaign's coupon, with the campaign's inventory."""
    stats = coupon_stats(campaign.coupon, start=start, end=end)
    stats.update(
        campaign={"id": str(campaign.pk), "name": campaign.name},
        inventory=campaign.inventory,
        claimed=campaign.claimed,
    )
    return stats
