"""One order, one coupon set: concurrent applies of DIFFERENT coupon sets to the same
order_id (same customer, other customers, anonymous shoppers) leave the order holding
exactly one set, at the service level and over HTTP; the exclusion constraint refuses a
second set even when the service's lock is bypassed; confirm and release of an order
serialise with its applies; an apply that turns out to be a replay writes no event."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import Conflict
from coupons import services
from coupons.analytics.models import CouponEvent
from coupons.engine.types import Cart, Line, Shopper
from coupons.models import HOLDING, Coupon, Redemption, RedemptionStatus
from coupons.tests.factories import CouponFactory
from tests.race import api_key, client_for, race, unexpected
from tests.support import cart

pytestmark = pytest.mark.django_db(transaction=True)

CART = Cart(
    currency="USD", lines=(Line(sku="SKU-1", category="books", unit_price=4000, quantity=1),)
)
TRIES = 4
RACERS = 16


@pytest.fixture
def two_coupons():
    # Unrelated coupons that cannot stack: the order may hold one or the other.
    return (
        CouponFactory(code="ALPHA", percent_bp=1000),
        CouponFactory(code="BRAVO", percent_bp=2000),
    )


def held_sets() -> dict[str, set[str]]:
    sets: dict[str, set[str]] = {}
    for order_id, code in Redemption.objects.filter(status__in=HOLDING).values_list(
        "order_id", "code__code"
    ):
        sets.setdefault(order_id, set()).add(code)
    return sets


def assert_counters_match_rows():
    for coupon in Coupon.objects.all():
        live = Redemption.objects.filter(coupon=coupon, status__in=HOLDING).count()
        assert coupon.uses == live, (coupon.code, coupon.uses, live)


@pytest.mark.parametrize("who", ["same customer", "other customers", "anonymous"])
def test_racing_applies_of_two_sets_leave_one_set_per_order(two_coupons, who):
    def shopper(i: int) -> Shopper:
        if who == "same customer":
            return Shopper(id="c-1")
        if who == "other customers":
            return Shopper(id=f"c-{i}")
        return Shopper(id=None)

    def attempt(item):
        order_id, i = item
        return services.redemption_apply(
            codes=["ALPHA" if i % 2 else "BRAVO"], shopper=shopper(i), cart=CART, order_id=order_id
        )

    # when 16 applies of two unrelated coupons race for each of 4 orders
    items = [(f"o-{t}", i) for t in range(TRIES) for i in range(RACERS)]
    outcomes = race(attempt, items, workers=RACERS)
    # then every order holds exactly one of the two sets, and the losers were told why
    assert not unexpected(outcomes, allowed=(Conflict,)), unexpected(outcomes, (Conflict,))
    sets = held_sets()
    assert sorted(sets) == [f"o-{t}" for t in range(TRIES)]
    assert all(s in ({"ALPHA"}, {"BRAVO"}) for s in sets.values()), sets
    codes = Counter(o.error.code for o in outcomes if o.error is not None)
    assert set(codes) <= {"order_has_coupons"}, codes
    fresh = [o.value for o in outcomes if o.error is None and not o.value.replayed]
    assert len(fresh) == TRIES  # one winner per order; the rest replayed or were refused
    assert_counters_match_rows()


def test_racing_applies_over_http_leave_one_set_per_order(two_coupons):
    key = api_key(["storefront"])

    def attempt(item):
        order_id, i = item
        body = {
            "coupon_code": "ALPHA" if i % 2 else "BRAVO",
            "order_id": order_id,
            "customer": {"id": f"h-{i}"},
            "cart": cart(("SKU-1", "books", "40.00", 1)),
        }
        return client_for(key).post(
            "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
        )

    items = [(f"http-{t}", i) for t in range(TRIES) for i in range(RACERS)]
    outcomes = race(attempt, items, workers=RACERS)
    assert not unexpected(outcomes), unexpected(outcomes)
    statuses = Counter(o.value.status_code for o in outcomes)
    assert set(statuses) <= {200, 409}, statuses
    assert statuses[200] == TRIES, statuses  # different customers: no replays
    refused = {o.value.json()["error"]["code"] for o in outcomes if o.value.status_code == 409}
    assert refused <= {"order_has_coupons"}, refused
    sets = held_sets()
    assert len(sets) == TRIES, sets
    assert all(len(s) == 1 for s in sets.values()), sets
    assert_counters_match_rows()


def test_the_database_refuses_a_second_set_for_an_order(two_coupons):
    # given an order holding ALPHA
    services.redemption_apply(
        codes=["ALPHA"], shopper=Shopper(id="c-1"), cart=CART, order_id="o-db"
    )
    held = Redemption.objects.get(order_id="o-db")
    # when code that skipped the order lock inserts BRAVO's use for the same order
    bravo = Coupon.objects.get(code="BRAVO")
    with pytest.raises(IntegrityError, match="redemption_one_set_per_order"), transaction.atomic():
        Redemption.objects.create(
            coupon=bravo,
            code=bravo.codes.get(),
            order_id="o-db",
            apply_id=uuid.uuid4(),
            currency="USD",
            discount_minor=700,
            order_value_minor=4000,
            expires_at=timezone.now() + timedelta(minutes=5),
        )
    # then the constraint stopped it; a row of the same apply, or after release, is fine
    services.order_release(order_id="o-db")
    Redemption.objects.create(
        coupon=bravo,
        code=bravo.codes.get(),
        order_id="o-db",
        apply_id=uuid.uuid4(),
        currency="USD",
        discount_minor=700,
        order_value_minor=4000,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    assert held.apply_id != Redemption.objects.get(order_id="o-db", status="reserved").apply_id


def test_the_order_check_runs_after_the_lock_wait(two_coupons):
    """The re-check is a statement of its own: an apply that waited for the order lock
    sees the set committed while it waited (a check inside the waiting statement would
    read the data as of before the wait)."""
    import threading

    from django.db import connections

    from coupons import locks

    entered, release = threading.Event(), threading.Event()
    result = {}

    def holder():
        try:
            with transaction.atomic():
                locks.order_lock("o-wait")
                entered.set()
                release.wait(30)
                bravo = Coupon.objects.get(code="BRAVO")
                Redemption.objects.create(
                    coupon=bravo,
                    code=bravo.codes.get(),
                    order_id="o-wait",
                    apply_id=uuid.uuid4(),
                    currency="USD",
                    discount_minor=700,
                    order_value_minor=4000,
                    expires_at=timezone.now() + timedelta(minutes=5),
                )
        finally:
            connections.close_all()

    def waiter():
        try:
            result["held"] = None
            with transaction.atomic():
                result["held"] = locks.order_lock("o-wait")
        finally:
            connections.close_all()

    first = threading.Thread(target=holder)
    first.start()
    assert entered.wait(30)
    second = threading.Thread(target=waiter)
    second.start()
    # the waiter is blocked on the advisory lock before the holder commits
    with connection.cursor() as cursor:
        for _ in range(600):
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                break
            threading.Event().wait(0.05)
        else:
            raise AssertionError("the second apply never waited for the order lock")
    release.set()
    first.join(30)
    second.join(30)
    assert result["held"] is True


def test_concurrent_replays_write_one_apply_event(two_coupons):
    # when 30 identical applies of one code to one order race
    outcomes = race(
        lambda _: services.redemption_apply(
            codes=["ALPHA"], shopper=Shopper(id="c-1"), cart=CART, order_id="o-ev"
        ),
        range(30),
        workers=30,
    )
    assert not unexpected(outcomes), unexpected(outcomes)
    # then one reservation, 29 replays, and one "applied" event
    assert sum(not o.value.replayed for o in outcomes) == 1
    assert Redemption.objects.filter(order_id="o-ev").count() == 1
    assert CouponEvent.objects.filter(kind="apply", outcome="applied", order_id="o-ev").count() == 1


def test_confirm_counts_only_what_it_moved(two_coupons):
    services.redemption_apply(codes=["ALPHA"], shopper=Shopper(id="c-1"), cart=CART, order_id="o-c")
    outcomes = race(lambda _: services.order_confirm(order_id="o-c"), range(20), workers=20)
    assert not unexpected(outcomes), unexpected(outcomes)
    assert CouponEvent.objects.filter(kind="confirm", order_id="o-c").count() == 1
    assert Redemption.objects.get(order_id="o-c").status == RedemptionStatus.CONFIRMED
    from coupons.models import Customer

    assert Customer.objects.get(external_id="c-1").orders_count == 1
