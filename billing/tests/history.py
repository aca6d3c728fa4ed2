"""A small billing history on one test clock, built through billing's services, for the
finance admin and reporting tests (exact numbers in test_reporting.py).

The clock starts on 2026-01-10 12:00 UTC and stops on 2026-03-12 12:00 UTC:

| customer | plan | story |
|---|---|---|
| fin-a | basic $10.00/month | active throughout |
| fin-b | pro $29.00/month, 14-day trial | trial converts on Jan 24 |
| fin-c | pro, no card | trial expires on Jan 24 |
| fin-d | annual $120.00/year | active throughout ($10.00 of MRR) |
| fin-e | basic | card fails at the Feb 10 renewal; a new card on Feb 12 recovers it |
| fin-f | basic | card fails from Feb 10; dunning exhausted Feb 17: cancelled |
| fin-g | euro EUR 20.00/month | active throughout |
| fin-h | basic | cancels at period end on Feb 1: cancelled Feb 10 |
| fin-i | basic | card fails at the Mar 10 renewal: still past due (2 attempts) |
| fin-j | euro | card fails at the Mar 10 renewal: still past due (2 attempts) |
| fin-k | basic with HALF1 (50% off once) | $5.00 in January, $10.00 after |

Retries follow BILLING_DUNNING_RETRY_DAYS (1, 3, 5, 7 days after the first failure).
"""

from __future__ import annotations

from dataclasses import dataclass

from billing import services, testclocks
from billing.models import Subscription, TestClock
from billing.tests import support as t
from coupons.tests.factories import CouponFactory

START = "2026-01-10T12:00:00+00:00"
END = "2026-03-12T12:00:00+00:00"
GOOD = "pm_card_visa"
DECLINED = "pm_card_chargeDeclined"


@dataclass
class History:
    clock: TestClock
    subs: dict[str, Subscription]

    def sub(self, customer_id: str) -> Subscription:
        return Subscription.objects.select_related("customer", "plan").get(
            pk=self.subs[customer_id].pk
        )


def _card(customer_id: str, card: str) -> None:
    services.customer_upsert(customer_id=customer_id, fields={"payment_method": card})


def _advance(clock: TestClock, to: str) -> None:
    testclocks.clock_advance(clock_id=clock.pk, frozen_time=t.at(to))


def build() -> History:
    t.plan("basic", 1000, name="Basic")
    t.plan("pro", 2900, name="Pro", trial_days=14)
    t.plan("annual", 12000, interval="year", name="Annual")
    t.plan("euro", 2000, currency="EUR", name="Euro")
    CouponFactory(code="HALF1", percent_bp=5000, duration="once")
    clock = t.clock(START)
    plans = {
        "fin-a": "basic",
        "fin-b": "pro",
        "fin-c": "pro",
        "fin-d": "annual",
        "fin-e": "basic",
        "fin-f": "basic",
        "fin-g": "euro",
        "fin-h": "basic",
        "fin-i": "basic",
        "fin-j": "euro",
        "fin-k": "basic",
    }
    subs = {}
    for customer_id, plan_code in plans.items():
        t.customer(customer_id, card="" if customer_id == "fin-c" else GOOD, test_clock=clock)
        subs[customer_id] = services.subscription_create(
            customer_id=customer_id,
            plan_code=plan_code,
            coupon_code="HALF1" if customer_id == "fin-k" else None,
        )
    _advance(clock, "2026-02-01T12:00:00+00:00")  # fin-b converts, fin-c expires (Jan 24)
    services.subscription_cancel(sub_id=subs["fin-h"].pk, at_period_end=True)
    _card("fin-e", DECLINED)
    _card("fin-f", DECLINED)
    _advance(clock, "2026-02-12T12:00:00+00:00")  # Feb 10 renewals; e and f fail twice
    _card("fin-e", GOOD)  # retried at once: paid, active again
    _advance(clock, "2026-03-01T12:00:00+00:00")  # f exhausted on Feb 17; b renews Feb 24
    _card("fin-i", DECLINED)
    _card("fin-j", DECLINED)
    _advance(clock, END)  # Mar 10 renewals; i and j fail twice, next retry Mar 13
    clock.refresh_from_db()
    return History(clock=clock, subs=subs)
