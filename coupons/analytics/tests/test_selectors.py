"""coupon_stats and friends on a dataset built by hand: every number is checked."""

from datetime import timedelta

import pytest
from django.utils import timezone

from coupons.analytics import events, rollup, selectors
from coupons.analytics.models import DailySiteFact
from coupons.analytics.tests.factories import (
    at,
    days_ago,
    event,
    order,
    redemption,
    stacked_orders,
    write,
)
from coupons.campaigns.models import Campaign
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def coupon():
    return CouponFactory(code="STATS10", description="Ten off", budget_minor=10_000)


@pytest.fixture
def other():
    return CouponFactory(code="OTHER", description="Other")


@pytest.fixture
def dataset(coupon, other):
    c = coupon.pk
    usd = {"coupon_id": c, "currency": "USD", "code": "STATS10"}
    d3, d1, d0 = at(days_ago(3)), at(days_ago(1)), at(days_ago(0), 0, 5)
    write(
        # three days ago
        *[event("validate", d3, outcome="valid", **usd) for _ in range(3)],
        event("validate", d3, outcome="coupon_expired", **usd),
        event("apply", d3, outcome="applied", **usd),
        event("apply", d3, outcome="applied", **usd),
        event("apply", d3, outcome="usage_limit_reached", **usd),
        event(
            "confirm",
            d3,
            customer_id="u-1",
            new_customer=True,
            discount_minor=1000,
            order_value_minor=10_000,
            **usd,
        ),
        event("confirm", d3, customer_id="u-2", discount_minor=500, order_value_minor=6000, **usd),
        event("release", d3, customer_id="u-5", discount_minor=100, order_value_minor=900, **usd),
        event("cart", d3, currency="USD", order_value_minor=8000),
        event("cart", d3, currency="USD", order_value_minor=4002),
        event("cart", d3, currency="USD", order_value_minor=5000, discount_minor=300),
        event("cart", d3, currency="EUR", order_value_minor=99_999),
        # yesterday
        *[event("validate", d1, outcome="valid", **usd) for _ in range(2)],
        event(
            "confirm",
            d1,
            customer_id="u-3",
            new_customer=True,
            discount_minor=1500,
            order_value_minor=20_000,
            **usd,
        ),
        event("return", d1, customer_id="u-1", discount_minor=1000, order_value_minor=4000, **usd),
        event("expire", d1, discount_minor=100, **usd),
        event(
            "confirm",
            d1,
            customer_id="u-9",
            coupon_id=c,
            currency="EUR",
            new_customer=True,
            discount_minor=9999,
            order_value_minor=99_999,
        ),
        event(
            "confirm",
            d1,
            customer_id="u-8",
            coupon_id=other.pk,
            currency="USD",
            new_customer=True,
            discount_minor=7777,
            order_value_minor=77_777,
        ),
        *[
            event("validate", d1, outcome="valid", coupon_id=other.pk, currency="USD")
            for _ in range(10)
        ],
        # long ago: outside every range below
        event("confirm", at(days_ago(40)), customer_id="u-0", discount_minor=1, **usd),
        event("cart", at(days_ago(40)), currency="USD", order_value_minor=1),
        # today (live: never rolled up)
        event("validate", d0, outcome="valid", **usd),
        event("validate", d0, outcome="min_cart_value_not_met", **usd),
        event(
            "confirm",
            d0,
            customer_id="u-4",
            new_customer=True,
            discount_minor=2000,
            order_value_minor=15_000,
            **usd,
        ),
        event(
            "confirm",
            d0 + timedelta(minutes=5),
            customer_id="u-4",
            new_customer=True,
            discount_minor=500,
            order_value_minor=5000,
            **usd,
        ),
        event("cart", d0, currency="USD", order_value_minor=3000),
    )
    rollup.rollup_days([days_ago(n) for n in range(1, 41)])
    redemption(coupon, status="confirmed", discount=1000, shipping=200, order_id="o-1")
    redemption(coupon, status="confirmed", discount=500, order_id="o-2")
    redemption(coupon, status="reserved", discount=700, order_id="o-3")
    redemption(coupon, status="released", discount=9999, order_id="o-4")


def test_coupon_stats_every_metric(coupon, dataset):
    campaign = Campaign.objects.create(
        name="Black Friday",
        coupon=coupon,
        inventory=100,
        starts_at=timezone.now() - timedelta(days=1),
        ends_at=timezone.now() + timedelta(days=1),
    )
    stats = selectors.coupon_stats(coupon, start=days_ago(3), end=days_ago(0))
    daily = stats.pop("daily")
    assert stats == {
        "code": "STATS10",
        "description": "Ten off",
        "currency": "USD",
        "from": days_ago(3).isoformat(),
        "to": days_ago(0).isoformat(),
        "validation_attempts": 8,
        "valid_attempts": 6,
        "applies": 2,
        "redemptions": 5,
        "orders": 5,
        "releases": 1,
        "expires": 1,
        "returns": 1,
        "redemption_rate": 0.625,
        "discount_given": "55.00",
        "order_value": "560.00",
        "revenue_impact": "505.00",
        "returned_value": "40.00",
        "average_order_value": "112.00",
        "average_order_value_without_coupon": "50.01",  # (80.00 + 40.02 + 30.00) / 3
        "new_customers": 3,
        "discount_per_new_customer": "18.33",
        "return_rate": 0.2,
        "budget": {
            "budget": "100.00",
            "spent": "17.00",
            "reserved": "7.00",
            "remaining": "76.00",
            "burn": 0.24,
        },
        "campaign": {"id": str(campaign.pk), "name": "Black Friday"},
    }
    assert daily == [
        {
            "day": days_ago(3).isoformat(),
            "validations": 4,
            "redemptions": 2,
            "orders": 2,
            "discount": "15.00",
            "order_value": "160.00",
            "revenue_impact": "145.00",
            "new_customers": 1,
        },
        {
            "day": days_ago(2).isoformat(),
            "validations": 0,
            "redemptions": 0,
            "orders": 0,
            "discount": "0.00",
            "order_value": "0.00",
            "revenue_impact": "0.00",
            "new_customers": 0,
        },
        {
            "day": days_ago(1).isoformat(),
            "validations": 2,
            "redemptions": 1,
            "orders": 1,
            "discount": "15.00",
            "order_value": "200.00",
            "revenue_impact": "185.00",
            "new_customers": 1,
        },
        {
            "day": days_ago(0).isoformat(),
            "validations": 2,
            "redemptions": 2,
            "orders": 2,
            "discount": "25.00",
            "order_value": "200.00",
            "revenue_impact": "175.00",
            "new_customers": 1,
        },
    ]


def test_empty_period_has_null_ratios(coupon):
    coupon.budget_minor = None
    coupon.save()
    stats = selectors.coupon_stats(coupon, start=days_ago(2), end=days_ago(1))
    assert (
        stats["redemption_rate"],
        stats["average_order_value"],
        stats["average_order_value_without_coupon"],
        stats["discount_per_new_customer"],
        stats["return_rate"],
        stats["budget"],
        stats["campaign"],
    ) == (None,) * 7
    assert stats["discount_given"] == "0.00"
    assert len(stats["daily"]) == 2


def test_today_is_live_and_closed_days_come_from_facts(coupon):
    # given: no roll-up has run
    events.record("validate", coupon_id=coupon.pk, currency="USD", outcome="valid")
    events.record(
        "validate",
        coupon_id=coupon.pk,
        currency="USD",
        outcome="coupon_expired",
        occurred_at=at(days_ago(1)),
    )
    events.flush()
    today = selectors.coupon_stats(coupon, start=days_ago(0), end=days_ago(0))
    assert (today["validation_attempts"], today["valid_attempts"]) == (1, 1)
    both = selectors.coupon_stats(coupon, start=days_ago(1), end=days_ago(0))
    assert both["validation_attempts"] == 1  # yesterday not rolled up yet
    # when
    rollup.rollup_recent()
    # then
    both = selectors.coupon_stats(coupon, start=days_ago(1), end=days_ago(0))
    assert (both["validation_attempts"], both["valid_attempts"]) == (2, 1)


def test_daily_series_of_all_coupons(dataset):
    series = selectors.daily_series(start=days_ago(1), end=days_ago(1))
    assert series == [
        {
            "day": days_ago(1).isoformat(),
            "validations": 12,
            "redemptions": 2,
            "orders": 2,
            "discount": "92.77",
            "order_value": "977.77",
            "revenue_impact": "885.00",
            "new_customers": 2,
        }
    ]
    eur = selectors.daily_series(start=days_ago(1), end=days_ago(1), currency="EUR")
    assert (eur[0]["redemptions"], eur[0]["discount"]) == (1, "99.99")


def test_top_coupons(coupon, other, dataset):
    other.budget_minor = 50_000
    other.save()
    top = selectors.top_coupons(start=days_ago(3), end=days_ago(0))
    assert [t["code"] for t in top] == ["STATS10", "OTHER"]
    assert top[0] == {
        "coupon_id": coupon.pk,
        "code": "STATS10",
        "description": "Ten off",
        "redemptions": 5,
        "validations": 8,
        "redemption_rate": 0.625,
        "discount": "55.00",
        "order_value": "560.00",
        "revenue_impact": "505.00",
        "new_customers": 3,
        "budget": "100.00",
        "budget_spent": "17.00",
    }
    assert top[1] == {
        "coupon_id": other.pk,
        "code": "OTHER",
        "description": "Other",
        "redemptions": 1,
        "validations": 10,
        "redemption_rate": 0.1,
        "discount": "77.77",
        "order_value": "777.77",
        "revenue_impact": "700.00",
        "new_customers": 1,
        "budget": "500.00",
        "budget_spent": "0.00",
    }
    by_validations = selectors.top_coupons(
        start=days_ago(3), end=days_ago(0), order_by="validations", limit=1
    )
    assert [t["code"] for t in by_validations] == ["OTHER"]
    assert [
        t["code"] for t in selectors.top_coupons(start=days_ago(3), end=days_ago(0), currency="EUR")
    ] == ["STATS10"]
    with pytest.raises(ValueError, match="order_by must be one of"):
        selectors.top_coupons(start=days_ago(3), end=days_ago(0), order_by="code")


def test_campaign_stats(coupon, dataset):
    campaign = Campaign.objects.create(
        name="Flash",
        coupon=coupon,
        inventory=50,
        starts_at=timezone.now() - timedelta(days=1),
        ends_at=timezone.now() + timedelta(days=1),
    )
    Campaign.objects.filter(pk=campaign.pk).update(claimed=7)
    campaign.refresh_from_db()
    stats = selectors.campaign_stats(campaign, start=days_ago(3), end=days_ago(0))
    assert (stats["inventory"], stats["claimed"], stats["redemptions"], stats["campaign"]) == (
        50,
        7,
        5,
        {"id": str(campaign.pk), "name": "Flash"},
    )


def test_coupon_by_code_ignores_case_and_impossible_codes(coupon):
    assert selectors.coupon_by_code(" stats10 ") == coupon
    assert selectors.coupon_by_code("NOPE") is None
    assert selectors.coupon_by_code("A\x00B") is None
    assert selectors.coupon_by_code("A" * 65) is None


# --- stacked orders: one order, several coupons ---------------------------------------------


@pytest.fixture
def stacked():
    """analytics.tests.factories.stacked_orders: two days ago (rolled up) and today (live)."""
    typed = CouponFactory(code="TYPED10")
    promo = CouponFactory(code="PROMO5", auto_apply=True)
    solo = CouponFactory(code="SOLO")
    stacked_orders(typed, promo, solo, closed=days_ago(2), today=days_ago(0))
    return typed, promo, solo


def test_site_totals_count_a_stacked_order_once(stacked):
    stats = selectors.site_stats(start=days_ago(2), end=days_ago(0))
    daily = stats.pop("daily")
    assert stats == {
        "currency": "USD",
        "from": days_ago(2).isoformat(),
        "to": days_ago(0).isoformat(),
        "validation_attempts": 4,
        "valid_attempts": 4,
        "applies": 8,
        "redemptions": 8,  # coupon uses: s-1 has two, s-4 three
        "orders": 5,
        "releases": 0,
        "expires": 0,
        "returns": 0,
        "redemption_rate": 2.0,
        "discount_given": "63.00",  # every coupon's discount
        "order_value": "430.00",  # each order once (per coupon, summed: 930.00)
        "revenue_impact": "367.00",
        "average_order_value": "86.00",  # 430.00 / 5 orders
        "average_order_value_without_coupon": None,
        "new_customers": 3,  # n-1, n-2, n-3 (per coupon, summed: 6)
        "discount_per_new_customer": "21.00",
        "return_rate": None,
        "budget": None,
    }
    assert daily == [
        {
            "day": days_ago(2).isoformat(),
            "validations": 4,
            "redemptions": 4,
            "orders": 3,
            "discount": "25.00",
            "order_value": "200.00",
            "revenue_impact": "175.00",
            "new_customers": 2,
        },
        {
            "day": days_ago(1).isoformat(),
            "validations": 0,
            "redemptions": 0,
            "orders": 0,
            "discount": "0.00",
            "order_value": "0.00",
            "revenue_impact": "0.00",
            "new_customers": 0,
        },
        {
            "day": days_ago(0).isoformat(),
            "validations": 0,
            "redemptions": 4,
            "orders": 2,
            "discount": "38.00",
            "order_value": "230.00",
            "revenue_impact": "192.00",
            "new_customers": 1,
        },
    ]
    assert selectors.daily_series(start=days_ago(2), end=days_ago(0)) == daily


def test_per_coupon_totals_still_count_the_order_for_each_coupon(stacked):
    _typed, promo, _solo = stacked
    numbers = (
        "redemptions",
        "orders",
        "discount_given",
        "order_value",
        "revenue_impact",
        "average_order_value",
        "new_customers",
    )
    got = {
        c.code: tuple(
            selectors.coupon_stats(c, start=days_ago(2), end=days_ago(0))[k] for k in numbers
        )
        for c in stacked
    }
    assert got == {
        "TYPED10": (3, 3, "34.00", "340.00", "306.00", "113.33", 2),  # s-1, s-2, s-4
        "PROMO5": (3, 3, "18.00", "330.00", "312.00", "110.00", 2),  # s-1, s-4, s-5
        "SOLO": (2, 2, "11.00", "260.00", "249.00", "130.00", 2),  # s-3, s-4
    }
    top = {
        t["code"]: (t["redemptions"], t["order_value"], t["new_customers"])
        for t in selectors.top_coupons(start=days_ago(2), end=days_ago(0))
    }
    assert top == {
        "TYPED10": (3, "340.00", 2),
        "PROMO5": (3, "330.00", 2),
        "SOLO": (2, "260.00", 2),
    }
    promo_today = selectors.daily_series(start=days_ago(0), end=days_ago(0), coupon=promo)
    assert (promo_today[0]["order_value"], promo_today[0]["new_customers"]) == ("230.00", 1)


def test_site_totals_from_the_facts_equal_the_live_ones():
    # given: the same stacked orders yesterday (closed: read from the facts) and today (live)
    typed, promo = CouponFactory(code="TWIN1"), CouponFactory(code="TWIN2")
    for day in (days_ago(1), days_ago(0)):
        write(
            *order(
                f"t-{day}",
                at(day, 0, 30),
                [(typed, 700, False), (promo, 300, True)],
                customer="n-1",
                new=True,
                value=9_000,
            ),
            *order(
                f"u-{day}",
                at(day, 0, 40),
                [(typed, 100, False)],
                customer="n-1",
                new=True,
                value=1_001,
            ),
            *order("", at(day, 0, 45), [(promo, 50, True)], value=500),
        )  # no order id
    rollup.rollup_days([days_ago(1)])
    # when
    closed, live = selectors.daily_series(start=days_ago(1), end=days_ago(0))
    # then
    assert closed.pop("day") != live.pop("day")
    assert (
        closed
        == live
        == {
            "validations": 0,
            "redemptions": 4,
            "orders": 3,
            "discount": "11.50",
            "order_value": "105.01",
            "revenue_impact": "93.51",
            "new_customers": 1,
        }
    )
    # and today's roll-up (the beat rebuilds it every 5 minutes) says what the live one says
    rollup.rollup_days([days_ago(0)])
    site = DailySiteFact.objects.get(day=days_ago(0), currency="USD")
    assert (site.orders, site.order_value_minor, site.new_customers) == (3, 10_501, 1)
