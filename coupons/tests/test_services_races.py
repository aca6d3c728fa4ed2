"""The "never over-redeemed" guarantees (SPEC rules 1 and 5), proven by racing real
PostgreSQL connections: every worker thread holds its own connection (tests/race.py) and
all of them are released together, so the calls really overlap on the locked rows."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connections
from django.db.models import Count, Q
from django.utils import timezone
from prometheus_client import REGISTRY

from core.errors import Conflict
from coupons import services
from coupons.engine import reasons as r
from coupons.engine.types import Cart, Line, Shopper
from coupons.models import HOLDING, Code, Coupon, Customer, Redemption, RedemptionStatus
from coupons.tests.factories import CodeFactory, CouponFactory
from tests.race import api_key, client_for, race, race_calls, unexpected
from tests.support import cart

pytestmark = pytest.mark.django_db(transaction=True)

CART = Cart(
    currency="USD", lines=(Line(sku="SKU-1", category="books", unit_price=4000, quantity=1),)
)
APPLIED = "applied"


def apply(code: str, customer: str | None, order_id: str) -> services.ApplyResult:
    return services.redemption_apply(
        codes=[code], shopper=Shopper(id=customer), cart=CART, order_id=order_id
    )


def outcome_of(result: services.ApplyResult) -> str:
    return APPLIED if result.rejection is None else result.rejection.reason


def tally(outcomes) -> Counter:
    """applied / <reason> per call; fails on any exception."""
    assert not unexpected(outcomes), unexpected(outcomes)
    return Counter(outcome_of(o.value) for o in outcomes)


def statuses(coupon: Coupon) -> Counter:
    return Counter(Redemption.objects.filter(coupon=coupon).values_list("status", flat=True))


def transitions(status: str) -> float:
    """Redemptions moved to `status` so far (a counter bumped on commit of each give-back)."""
    return (
        REGISTRY.get_sample_value("coupon_redemption_transitions_total", {"status": status}) or 0.0
    )


def reserve(code: str, orders: list[str]) -> None:
    """Set-up: reserve one use per order (customer "cust-<order>"), concurrently for speed."""
    counts = tally(race(lambda o: apply(code, f"cust-{o}", o), orders))
    assert counts == {APPLIED: len(orders)}


# --- limits under concurrent apply ------------------------------------------------------


def test_total_limit_holds_under_1500_concurrent_applies():
    # given a coupon limited to 1,000 uses
    coupon = CouponFactory(code="RACE1000", max_uses_total=1000)
    # when 1,500 customers apply it to 1,500 orders at once, from 40 connections
    outcomes = race(lambda i: apply("RACE1000", f"c-{i}", f"o-{i}"), range(1500))
    # then exactly 1,000 win and 500 are told the limit is reached
    counts = tally(outcomes)
    assert counts == {APPLIED: 1000, r.USAGE_LIMIT_REACHED: 500}
    won = [o.value for o in outcomes if o.value.rejection is None]
    assert all(len(x.redemptions) == 1 and not x.replayed for x in won)
    assert len({x.redemptions[0].pk for x in won}) == 1000
    coupon.refresh_from_db()
    assert coupon.uses == 1000
    assert statuses(coupon) == {RedemptionStatus.RESERVED: 1000}
    assert Code.objects.get(code="RACE1000").uses == 1000
    # and no order or customer holds more than one use
    assert Redemption.objects.values("order_id").distinct().count() == 1000
    assert Redemption.objects.values("customer").distinct().count() == 1000


@pytest.mark.parametrize("known", [True, False], ids=["returning-customer", "new-customer"])
def test_per_customer_limit_holds_for_one_customer_in_many_threads(known):
    # given a coupon each customer may use once (no total limit)
    coupon = CouponFactory(code="ONCEEACH", max_uses_per_user=1)
    if known:  # (a new customer's first insert would serialise the first wave by itself)
        Customer.objects.create(external_id="greedy")
    # when one customer applies it to 200 different orders at once
    outcomes = race(lambda i: apply("ONCEEACH", "greedy", f"order-{i}"), range(200))
    # then exactly one order gets it
    assert tally(outcomes) == {APPLIED: 1, r.CUSTOMER_LIMIT_REACHED: 199}
    coupon.refresh_from_db()
    assert coupon.uses == 1
    assert statuses(coupon) == {RedemptionStatus.RESERVED: 1}
    assert Customer.objects.filter(external_id="greedy").count() == 1


def test_code_limit_holds_under_concurrency():
    # given a coupon without a total limit whose public code allows 50 uses
    coupon = CouponFactory(code="CODE50", max_uses_total=None)
    Code.objects.filter(code="CODE50").update(max_uses=50)
    # when 200 customers apply the code at once
    outcomes = race(lambda i: apply("CODE50", f"c-{i}", f"o-{i}"), range(200))
    # then exactly 50 win
    assert tally(outcomes) == {APPLIED: 50, r.USAGE_LIMIT_REACHED: 150}
    assert Code.objects.get(code="CODE50").uses == 50
    coupon.refresh_from_db()
    assert coupon.uses == 50
    assert statuses(coupon) == {RedemptionStatus.RESERVED: 50}


def test_single_use_codes_and_coupon_limit_hold_together():
    # given 60 single-use codes on a coupon limited to 30 uses in total
    coupon = CouponFactory(code="BULKPARENT", max_uses_total=30)
    codes = [CodeFactory(coupon=coupon, code=f"ONE{i:03d}", max_uses=1).code for i in range(60)]
    # when every code is tried twice at once, each time by another customer and order
    jobs = [(code, n) for n in range(2) for code in codes]
    random.Random(3).shuffle(jobs)
    outcomes = race(lambda job: apply(job[0], f"c-{job[0]}-{job[1]}", f"o-{job[0]}-{job[1]}"), jobs)
    # then the coupon gives exactly 30 uses and no code is used twice
    assert tally(outcomes) == {APPLIED: 30, r.USAGE_LIMIT_REACHED: 90}
    coupon.refresh_from_db()
    assert coupon.uses == 30
    per_code = Counter(
        Redemption.objects.filter(coupon=coupon).values_list("code__code", flat=True)
    )
    assert len(per_code) == 30
    assert set(per_code.values()) == {1}
    assert dict(Code.objects.filter(coupon=coupon, uses__gt=0).values_list("code", "uses")) == dict(
        per_code
    )


@pytest.mark.parametrize(
    "shopper", ["returning", "new", None], ids=["returning-customer", "new-customer", "anonymous"]
)
def test_same_order_applied_concurrently_takes_one_use(shopper):
    # given a limited coupon
    coupon = CouponFactory(code="SAMEORDER", max_uses_total=10)
    if shopper == "returning":
        Customer.objects.create(external_id=shopper)
    # when one checkout applies it to the same order from 50 connections at once
    outcomes = race(lambda _: apply("SAMEORDER", shopper, "order-1"), range(50))
    # then all succeed with the same single redemption, and exactly one took the use
    assert tally(outcomes) == {APPLIED: 50}
    ids = {o.value.redemptions[0].pk for o in outcomes}
    assert len(ids) == 1
    assert all(len(o.value.redemptions) == 1 for o in outcomes)
    assert sum(not o.value.replayed for o in outcomes) == 1
    coupon.refresh_from_db()
    assert coupon.uses == 1
    assert list(Redemption.objects.values_list("pk", flat=True)) == list(ids)


# --- giving uses back under load ----------------------------------------------------------


def test_release_under_load_gives_each_use_back_exactly_once():
    # given 300 reserved orders (100 of them past their hold) and 20 confirmed ones
    coupon = CouponFactory(code="GIVEBACK", max_uses_total=320)
    reserved = [f"r-{i}" for i in range(300)]
    confirmed = [f"k-{i}" for i in range(20)]
    reserve("GIVEBACK", reserved + confirmed)
    for order_id in confirmed:
        services.order_confirm(order_id=order_id)
    stale = reserved[::3]
    Redemption.objects.filter(order_id__in=stale).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    released_before, expired_before = transitions("released"), transitions("expired")

    # when every reserved order is released twice, every confirmed one once, while the
    # expiry job runs 8 times in small batches, all at once and interleaved
    jobs = [("release", o) for o in reserved * 2 + confirmed] + [("expire", None)] * 8
    random.Random(11).shuffle(jobs)

    def run(job):
        kind, order_id = job
        if kind == "expire":
            return services.redemptions_expire_stale(batch_size=7)
        return services.order_release(order_id=order_id)

    outcomes = race(run, jobs)

    # then nothing failed except releasing confirmed orders, which is refused
    assert not unexpected(outcomes, allowed=(Conflict,)), unexpected(outcomes, (Conflict,))
    refused = [(j, o.error.code) for j, o in zip(jobs, outcomes, strict=True) if o.error]
    assert sorted(refused) == sorted((("release", o), "order_confirmed") for o in confirmed)
    for (kind, order_id), o in zip(jobs, outcomes, strict=True):
        if kind == "release" and o.error is None:
            assert [x.status for x in o.value] in (["released"], ["expired"]), order_id
    # and every use was given back exactly once: only the confirmed uses remain
    expired_by_job = sum(o.value for j, o in zip(jobs, outcomes, strict=True) if j[0] == "expire")
    coupon.refresh_from_db()
    assert coupon.uses == 20
    assert Code.objects.get(code="GIVEBACK").uses == 20
    final = statuses(coupon)
    assert final[RedemptionStatus.CONFIRMED] == 20
    assert final[RedemptionStatus.RESERVED] == 0
    assert final[RedemptionStatus.RELEASED] + final[RedemptionStatus.EXPIRED] == 300
    assert final[RedemptionStatus.EXPIRED] == expired_by_job
    assert set(
        Redemption.objects.filter(status=RedemptionStatus.EXPIRED).values_list(
            "order_id", flat=True
        )
    ) <= set(stale)
    assert transitions("released") - released_before == final[RedemptionStatus.RELEASED]
    assert transitions("expired") - expired_before == final[RedemptionStatus.EXPIRED]


def test_applies_and_releases_interleaved_never_exceed_the_limit():
    # given a coupon limited to 50 uses, all 50 held
    coupon = CouponFactory(code="CHURN", max_uses_total=50)
    held = [f"held-{i}" for i in range(50)]
    reserve("CHURN", held)
    snapshots: list[tuple[int, int]] = []
    done = threading.Event()

    def watch():
        # one statement = one snapshot: the counter and the live redemptions must agree
        try:
            query = Coupon.objects.filter(pk=coupon.pk).annotate(
                holding=Count("redemptions", filter=Q(redemptions__status__in=HOLDING))
            )
            while not done.is_set():
                snapshots.append(query.values_list("uses", "holding").get())
        finally:
            connections.close_all()

    # when those 50 are released while 150 new orders apply, interleaved
    jobs = [("release", o) for o in held] + [("apply", f"new-{i}") for i in range(150)]
    random.Random(5).shuffle(jobs)
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        outcomes = race_calls(
            [
                (lambda o=o: services.order_release(order_id=o))
                if kind == "release"
                else (lambda o=o: apply("CHURN", f"cust-{o}", o))
                for kind, o in jobs
            ],
            workers=30,
        )
    finally:
        done.set()
        watcher.join()

    # then the limit and the counter held at every moment
    assert not unexpected(outcomes), unexpected(outcomes)
    assert len(snapshots) > 10
    assert max(uses for uses, _ in snapshots) <= 50
    assert [s for s in snapshots if s[0] != s[1]] == []
    applies = Counter(
        outcome_of(o.value) for (kind, _), o in zip(jobs, outcomes, strict=True) if kind == "apply"
    )
    assert set(applies) <= {APPLIED, r.USAGE_LIMIT_REACHED}
    won = applies[APPLIED]
    coupon.refresh_from_db()
    final = statuses(coupon)
    assert final == {RedemptionStatus.RELEASED: 50, RedemptionStatus.RESERVED: won}
    assert coupon.uses == won
    # and exactly the slots that are free can still be taken, not one more
    for i in range(50 - won):
        assert outcome_of(apply("CHURN", f"late-{i}", f"late-{i}")) == APPLIED
    assert outcome_of(apply("CHURN", "late-x", "late-x")) == r.USAGE_LIMIT_REACHED
    coupon.refresh_from_db()
    assert coupon.uses == 50


def test_confirm_and_release_racing_on_the_same_orders_settle_each_once():
    # given 100 reserved orders, one customer each
    coupon = CouponFactory(code="SETTLE", max_uses_total=100)
    orders = [f"s-{i}" for i in range(100)]
    reserve("SETTLE", orders)
    # when each order is confirmed twice and released twice at the same time
    jobs = [(kind, o) for o in orders for kind in ("confirm", "release") * 2]
    random.Random(17).shuffle(jobs)
    op = {"confirm": services.order_confirm, "release": services.order_release}
    outcomes = race(lambda job: op[job[0]](order_id=job[1]), jobs)

    # then each order ended confirmed or released, and every answer agrees with that end
    assert not unexpected(outcomes, allowed=(Conflict,)), unexpected(outcomes, (Conflict,))
    end = dict(Redemption.objects.values_list("order_id", "status"))
    for (kind, order_id), o in zip(jobs, outcomes, strict=True):
        if kind == "confirm":
            expect_ok, refusal = RedemptionStatus.CONFIRMED, "reservation_expired"
        else:
            expect_ok, refusal = RedemptionStatus.RELEASED, "order_confirmed"
        if o.error is None:
            assert end[order_id] == expect_ok, (kind, order_id)
        else:
            assert o.error.code == refusal, (kind, order_id)
            assert end[order_id] != expect_ok, (kind, order_id)
    final = Counter(end.values())
    assert set(final) <= {RedemptionStatus.CONFIRMED, RedemptionStatus.RELEASED}
    assert sum(final.values()) == 100
    coupon.refresh_from_db()
    assert coupon.uses == final[RedemptionStatus.CONFIRMED]
    # and a confirmed order counted once towards its customer's orders
    counts = dict(
        Customer.objects.filter(external_id__in=[f"cust-{o}" for o in orders]).values_list(
            "external_id", "orders_count"
        )
    )
    assert counts == {f"cust-{o}": int(end[o] == RedemptionStatus.CONFIRMED) for o in orders}


# --- the same guarantee through the HTTP API ------------------------------------------------


def test_http_apply_race_holds_the_limit():
    # given a coupon limited to 100 uses and a storefront key
    coupon = CouponFactory(code="HTTP100", max_uses_total=100)
    key = api_key(["storefront"])

    def post(i: int):
        return client_for(key).post(
            "/api/v1/coupons/apply",
            {
                "coupon_code": "HTTP100",
                "user_id": f"web-{i}",
                "order_id": f"web-order-{i}",
                "cart": cart(("SKU-1", "books", "40.00", 1)),
            },
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"apply-{i}",
        )

    # when 300 checkouts post /coupons/apply at once
    outcomes = race(post, range(300))
    # then exactly 100 are applied and 200 are refused with usage_limit_reached
    assert not unexpected(outcomes), unexpected(outcomes)
    responses = [o.value for o in outcomes]
    assert Counter(x.status_code for x in responses) == {200: 100, 422: 200}, Counter(
        (x.status_code, x.content[:120]) for x in responses
    ).most_common(5)
    ok = [x.json() for x in responses if x.status_code == 200]
    assert all(b["applied"] is True and len(b["redemptions"]) == 1 for b in ok)
    assert len({b["redemptions"][0]["id"] for b in ok}) == 100
    refused = [x.json() for x in responses if x.status_code == 422]
    assert {(b["applied"], b["reason"]) for b in refused} == {(False, r.USAGE_LIMIT_REACHED)}
    coupon.refresh_from_db()
    assert coupon.uses == 100
    assert statuses(coupon) == {RedemptionStatus.RESERVED: 100}


# --- auto-apply promotions obey the same limits ------------------------------------------


def test_auto_promotion_limit_holds_and_the_next_best_takes_over():
    # given a $20 promotion limited to 100 uses and a $5 one without limit (same group)
    big = CouponFactory(
        code="BIG20",
        auto_apply=True,
        type="fixed",
        percent_bp=None,
        amount_minor=2000,
        max_uses_total=100,
        stackable=True,
    )
    small = CouponFactory(
        code="SMALL5",
        auto_apply=True,
        type="fixed",
        percent_bp=None,
        amount_minor=500,
        stackable=True,
    )
    # when 300 checkouts apply with no code at once
    outcomes = race(
        lambda i: services.redemption_apply(
            codes=[], shopper=Shopper(id=f"c-{i}"), cart=CART, order_id=f"o-{i}"
        ),
        range(300),
    )
    # then every order got exactly one promotion: BIG20 for exactly 100, SMALL5 for the rest
    assert not unexpected(outcomes), unexpected(outcomes)
    held = Counter(
        x.redemptions[0].code.code
        for x in (o.value for o in outcomes)
        if len(x.redemptions) == 1 and x.rejection is None
    )
    assert held == {"BIG20": 100, "SMALL5": 200}
    big.refresh_from_db()
    small.refresh_from_db()
    assert (big.uses, small.uses) == (100, 200)
    assert Redemption.objects.filter(auto=True).count() == 300
    assert Redemption.objects.values("order_id").distinct().count() == 300
