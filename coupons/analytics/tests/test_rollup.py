"""The daily facts equal a plain recount of the raw events, and rerunning never adds.
The events include stacked orders (one order, several coupons: a confirm per coupon):
the coupon facts count the order for each coupon, the site facts once."""

import io
import random
from collections import defaultdict
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.money import format_amount
from coupons.analytics import rollup, selectors
from coupons.analytics.models import CouponEvent, DailyCouponFact, DailySiteFact
from coupons.analytics.tests.factories import at, days_ago, event, write

pytestmark = pytest.mark.django_db

KINDS = [
    "cart",
    "validate",
    "validate",
    "apply",
    "confirm",
    "confirm",
    "release",
    "expire",
    "return",
]
OUTCOMES = {
    "validate": ["valid", "valid", "coupon_expired", "min_cart_value_not_met"],
    "apply": ["applied", "applied", "usage_limit_reached"],
    "cart": [""],
}
DAYS = 5


def _random_orders(rng: random.Random, n: int) -> list[dict]:
    """n confirmed orders with 1 to 3 coupons each (a typed code plus automatic
    promotions): one apply and one confirm event per coupon, all with the order's id,
    time, customer, currency, subtotal and new-customer flag; the discount per coupon."""
    out = []
    for number in range(n):
        when = at(days_ago(rng.randrange(DAYS)), 0) + timedelta(
            seconds=rng.choice([0, 86_399, rng.randrange(86_400)])
        )
        order = {
            "order_id": f"o-{number}",
            "code": "C",
            "customer_id": rng.choice(["", "u-1", "u-2", "u-3", "u-4", "u-5", "u-6"]),
            "currency": rng.choice(["USD", "USD", "EUR"]),
            "order_value_minor": rng.randrange(1_000, 50_000),
            "new_customer": rng.random() < 0.3,
        }
        for n_coupon, coupon_id in enumerate(rng.sample(range(1, 5), rng.choice([1, 2, 2, 3]))):
            use = {
                **order,
                "coupon_id": coupon_id,
                "auto": n_coupon > 0,
                "discount_minor": rng.randrange(1, 3_000),
            }
            out += [
                event("apply", when, outcome="applied", **use),
                event("confirm", when, outcome="ok", **use),
            ]
    return out


def _random_events(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    out = _random_orders(rng, n // 5)
    for _ in range(n):
        kind = rng.choice(KINDS)
        # any second of the last DAYS days, including both ends of each day
        when = at(days_ago(rng.randrange(DAYS)), 0) + timedelta(
            seconds=rng.choice([0, 86_399, rng.randrange(86_400)])
        )
        out.append(
            event(
                kind,
                when,
                outcome=rng.choice(OUTCOMES.get(kind, ["ok"])),
                coupon_id=None if kind == "cart" or rng.random() < 0.05 else rng.randrange(1, 5),
                code="C",
                customer_id=rng.choice(["", "u-1", "u-2", "u-3", "u-4", "u-5"]),
                currency=rng.choice(["USD", "USD", "EUR"]),
                order_value_minor=rng.randrange(0, 50_000),
                discount_minor=rng.choice([0, 0, rng.randrange(1, 5_000)]),
                new_customer=rng.random() < 0.3,
            )
        )
    return out


def _recount(items: list[dict]) -> tuple[dict, dict]:
    """The metrics by hand, in plain Python, from the same events."""
    tz = timezone.get_default_timezone()
    coupons: dict = defaultdict(lambda: defaultdict(int))
    new: dict = defaultdict(set)
    buyers: dict = defaultdict(set)
    site: dict = defaultdict(lambda: dict.fromkeys(rollup.SITE_METRICS, 0))
    orders: dict = defaultdict(dict)  # (day, currency) -> order -> (value, customer, new)
    for n, e in enumerate(items):
        day = e["occurred_at"].astimezone(tz).date()
        if e["kind"] == "cart":
            if e["discount_minor"] == 0:
                key = (day, e["currency"])
                site[key]["carts_without_discount"] += 1
                site[key]["order_value_without_discount_minor"] += e["order_value_minor"]
            continue
        if e["coupon_id"] is None:
            continue
        if e["kind"] == "confirm":  # the site counts the order, once for all its coupons
            order = e.get("order_id") or ("no order id", n)
            orders[day, e["currency"]][order] = (
                e["order_value_minor"],
                e["customer_id"],
                e["new_customer"],
            )
        key = (day, e["coupon_id"], e["currency"])
        f = coupons[key]
        kind = e["kind"]
        if kind == "validate":
            f["validations"] += 1
            f["valid_validations"] += e["outcome"] == "valid"
        elif kind == "apply":
            f["applies"] += e["outcome"] == "applied"
        elif kind == "confirm":
            f["confirms"] += 1
            f["discount_minor"] += e["discount_minor"]
            f["order_value_minor"] += e["order_value_minor"]
            if e["customer_id"]:
                buyers[key].add(e["customer_id"])
                if e["new_customer"]:
                    new[key].add(e["customer_id"])
        else:
            f[{"release": "releases", "expire": "expires", "return": "returns"}[kind]] += 1
            if kind == "return":
                f["returned_minor"] += e["order_value_minor"]
    for key, f in coupons.items():
        f["new_customers"] = len(new[key])
        f["customers"] = len(buyers[key])
    for key, by_order in orders.items():
        site[key]["orders"] = len(by_order)
        site[key]["order_value_minor"] = sum(value for value, _, _ in by_order.values())
        site[key]["new_customers"] = len({c for _, c, is_new in by_order.values() if is_new and c})
    return (
        {k: {m: v.get(m, 0) for m in rollup.COUPON_METRICS} for k, v in coupons.items()},
        dict(site),
    )


def _facts() -> tuple[dict, dict]:
    coupons = {
        (f.day, f.coupon_id, f.currency): {m: getattr(f, m) for m in rollup.COUPON_METRICS}
        for f in DailyCouponFact.objects.all()
    }
    site = {
        (f.day, f.currency): {m: getattr(f, m) for m in rollup.SITE_METRICS}
        for f in DailySiteFact.objects.all()
    }
    return coupons, site


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_equals_a_recount_of_random_events(seed):
    # given
    items = _random_events(seed, 1500)
    write(*items)
    days = [days_ago(n) for n in range(DAYS)]
    # when
    rollup.rollup_days(days)
    # then
    expected_coupons, expected_site = _recount(items)
    facts_coupons, facts_site = _facts()
    assert facts_coupons == expected_coupons
    assert facts_site == expected_site
    assert len(facts_coupons) > 20
    assert sum(f["confirms"] for f in facts_coupons.values()) > 100
    # the data has stacked orders: per coupon they count for each coupon, on the site once
    confirms = sum(f["confirms"] for f in facts_coupons.values())
    assert sum(f["orders"] for f in facts_site.values()) < confirms - 100
    # and the selectors (closed days from these facts, today live) give the same totals
    usd = [v for (_, cur), v in expected_site.items() if cur == "USD"]
    stats = selectors.site_stats(start=days_ago(DAYS - 1), end=days_ago(0))
    assert (stats["orders"], stats["order_value"], stats["new_customers"]) == (
        sum(v["orders"] for v in usd),
        format_amount(sum(v["order_value_minor"] for v in usd), "USD"),
        sum(v["new_customers"] for v in usd),
    )
    assert stats["redemptions"] == sum(
        f["confirms"] for (_, _, cur), f in expected_coupons.items() if cur == "USD"
    )


def test_rerunning_replaces_and_never_double_counts():
    items = _random_events(7, 600)
    write(*items)
    days = [days_ago(n) for n in range(DAYS)]
    rollup.rollup_days(days)
    first = _facts()
    rollup.rollup_days(days)
    rollup.rollup_days(days[:2])
    assert _facts() == first
    # a late event for one day changes that day's fact on the next run, by exactly one
    late = event(
        "confirm",
        at(days_ago(1), 23, 59),
        coupon_id=99,
        currency="USD",
        discount_minor=700,
        order_value_minor=7000,
        customer_id="late",
        new_customer=True,
    )
    write(late)
    rollup.rollup_days([days_ago(1)])
    assert _facts()[0] == _recount([*items, late])[0]


def test_rollup_recent_covers_today_and_yesterday_only():
    write(
        event("confirm", at(days_ago(0), 0, 1), coupon_id=1, currency="USD"),
        event("confirm", at(days_ago(1), 23, 59), coupon_id=1, currency="USD"),
        event("confirm", at(days_ago(2), 12), coupon_id=1, currency="USD"),
    )
    rollup.rollup_recent()
    assert sorted(DailyCouponFact.objects.values_list("day", "confirms")) == [
        (days_ago(1), 1),
        (days_ago(0), 1),
    ]


def test_rollup_task_and_backfill_command():
    from coupons.analytics import tasks

    write(
        *[
            event("validate", at(days_ago(n)), coupon_id=3, currency="USD", outcome="valid")
            for n in range(4)
        ]
    )
    tasks.rollup_recent.delay()
    assert DailyCouponFact.objects.count() == 2
    out = io.StringIO()
    call_command("rollup_analytics", days=4, stdout=out)
    assert out.getvalue().count("coupon facts") == 4
    assert sorted(DailyCouponFact.objects.values_list("day", "validations")) == [
        (days_ago(n), 1) for n in range(3, -1, -1)
    ]
    assert CouponEvent.objects.count() == 4
