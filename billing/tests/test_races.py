"""Billing's guarantees under concurrency, proven by racing real connections (issue 13
"Races"): the renewal job run by 4 workers at once invoices each period once; 20
concurrent subscribes with a coupon limited to 5 give exactly 5 discounts; a subscribe
sent twice at once with one Idempotency-Key creates one subscription; one customer's
concurrent subscribes leave one live subscription."""

from collections import Counter

import pytest

from billing import renewals
from billing.models import Invoice, PaymentAttempt, Subscription, TestGatewayCharge
from billing.tests import support as t
from coupons.models import Coupon, Redemption
from coupons.tests.factories import CouponFactory
from tests.race import api_key, client_for, race, race_calls, unexpected

pytestmark = pytest.mark.django_db(transaction=True)


def test_four_renewal_workers_invoice_each_period_once():
    # given 120 subscriptions due for one renewal each
    subs = t.due_subscriptions(120, t.plan("pro", 2900))
    # when 4 workers run the renewal job at once, in small batches so they interleave
    outcomes = race(lambda _: renewals.run_due(batch=7), range(4), workers=4)
    # then every period was invoiced exactly once, and charged exactly once
    assert not unexpected(outcomes), unexpected(outcomes)
    assert sum(o.value for o in outcomes) == len(subs)
    cycles = Invoice.objects.filter(billing_reason="subscription_cycle")
    per_sub = Counter(cycles.values_list("subscription_id", flat=True))
    assert set(per_sub.values()) == {1}
    assert len(per_sub) == len(subs)
    assert set(cycles.values_list("status", flat=True)) == {"paid"}
    assert PaymentAttempt.objects.filter(status="succeeded").count() == len(subs)
    assert TestGatewayCharge.objects.count() == len(subs)
    numbers = sorted(int(n.split("-")[1]) for n in cycles.values_list("number", flat=True))
    assert numbers == list(range(numbers[0], numbers[0] + len(subs)))
    # and a second pass finds nothing due
    assert renewals.run_due() == 0


def test_twenty_subscribes_with_a_coupon_limited_to_five_give_five_discounts():
    # given a coupon with 5 uses and 20 customers with cards
    t.plan("pro", 2900)
    CouponFactory(code="FIVE", percent_bp=2000, max_uses_total=5, duration="once")
    for i in range(20):
        t.customer(f"c-{i}")
    key = api_key(["storefront"])

    def subscribe(i):
        return t.subscribe(client_for(key), customer_id=f"c-{i}", plan="pro", coupon_code="FIVE")

    # when all 20 subscribe at once
    outcomes = race(subscribe, range(20), workers=20)
    # then exactly 5 subscriptions carry the discount, the others were refused
    assert not unexpected(outcomes), unexpected(outcomes)
    statuses = Counter(o.value.status_code for o in outcomes)
    assert statuses == {201: 5, 422: 15}, statuses
    refused = {o.value.json()["error"]["code"] for o in outcomes if o.value.status_code == 422}
    assert refused == {"usage_limit_reached"}
    assert Subscription.objects.exclude(coupon_code="").count() == 5
    assert Invoice.objects.filter(discount_minor=580).count() == 5
    assert Coupon.objects.get(code="FIVE").uses == 5
    assert Redemption.objects.filter(status="confirmed").count() == 5


def test_a_double_submitted_subscribe_creates_one_subscription():
    t.plan("pro", 2900)
    t.customer("u-1")
    key = api_key(["storefront"])
    outcomes = race(
        lambda _: t.subscribe(client_for(key), key="once", customer_id="u-1", plan="pro"),
        range(8),
        workers=8,
    )
    assert not unexpected(outcomes), unexpected(outcomes)
    codes = Counter(o.value.status_code for o in outcomes)
    # the first answer, replayed; a duplicate still waiting at the deadline gets 409
    assert codes[201] >= 1, codes
    assert set(codes) <= {201, 409}, codes
    assert Subscription.objects.count() == 1
    assert TestGatewayCharge.objects.count() == 1
    bodies = {o.value.content for o in outcomes if o.value.status_code == 201}
    assert len(bodies) == 1


def test_one_customers_concurrent_subscribes_leave_one_live_subscription():
    t.plan("pro", 2900)
    t.customer("u-1")
    key = api_key(["storefront"])
    outcomes = race_calls(
        [lambda: t.subscribe(client_for(key), customer_id="u-1", plan="pro") for _ in range(10)]
    )
    assert not unexpected(outcomes), unexpected(outcomes)
    codes = Counter(o.value.status_code for o in outcomes)
    assert codes == {201: 1, 409: 9}, codes
    assert Subscription.objects.filter(status="active").count() == 1
    assert TestGatewayCharge.objects.count() == 1
