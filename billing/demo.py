"""Billing's demo data for `seed_demo` (make run): Free / Pro / Team plans, a "20% off
for 3 months" coupon, and six customers with a year of history on one test clock
(renewals, a trial that converts and one that expires, an upgrade, a downgrade, dunning
that recovers and dunning that ends in a cancel). Safe to run again: the clock is made
once.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from billing import services, testclocks
from billing.models import Plan, Subscription, TestClock
from coupons import selectors as coupon_selectors
from coupons import services as coupon_services

CLOCK_NAME = "Demo: a year of billing"
PROMO = "PRO20X3"
PLANS = [
    dict(
        code="free",
        name="Free",
        amount_minor=0,
        interval="month",
        trial_days=0,
        is_default=True,
        features={"projects": 3, "sso": False, "api_calls": 1000},
    ),
    dict(
        code="pro",
        name="Pro",
        amount_minor=2900,
        interval="month",
        trial_days=14,
        features={"projects": 50, "sso": False, "api_calls": 100000},
    ),
    dict(
        code="team",
        name="Team",
        amount_minor=9900,
        interval="month",
        trial_days=14,
        features={"projects": 500, "sso": True, "api_calls": 1000000},
    ),
    dict(
        code="pro-yearly",
        name="Pro (yearly)",
        amount_minor=29000,
        interval="year",
        trial_days=0,
        features={"projects": 50, "sso": False, "api_calls": 100000},
    ),
]


def _plans() -> None:
    for fields in PLANS:
        if not Plan.objects.filter(code=fields["code"]).exists():
            services.plan_create(fields=dict(fields))


def _promo() -> None:
    if not coupon_selectors.coupon_exists(PROMO):
        coupon_services.coupon_create(
            fields=dict(
                code=PROMO,
                type="percentage",
                percent_bp=2000,
                duration="repeating",
                duration_invoices=3,
                description="20% off the first 3 months of Pro or Team",
            )
        )


def _customer(customer_id: str, clock: TestClock, card: str, name: str) -> None:
    services.customer_upsert(
        customer_id=customer_id,
        fields={
            "email": f"{customer_id}@example.com",
            "name": name,
            "payment_method": card,
            "test_clock": str(clock.pk),
        },
    )


def _advance(clock: TestClock, days: int) -> None:
    clock.refresh_from_db()
    testclocks.clock_advance(
        clock_id=clock.pk, frozen_time=clock.frozen_time + timedelta(days=days)
    )


def load() -> list[str]:
    """Create the demo (once); the lines seed_demo prints about it."""
    _plans()
    _promo()
    clock = TestClock.objects.filter(name=CLOCK_NAME).first()
    if clock is None:
        start = (timezone.now() - timedelta(days=365)).replace(microsecond=0)
        clock = testclocks.clock_create(frozen_time=start, name=CLOCK_NAME)
        card = "pm_card_visa"
        _customer("demo-ada", clock, card, "Ada (Pro with the promo)")
        services.subscription_create(
            customer_id="demo-ada", plan_code="pro", coupon_code=PROMO, trial=False
        )
        _customer("demo-ben", clock, card, "Ben (Team, trial converted)")
        services.subscription_create(customer_id="demo-ben", plan_code="team")
        _customer("demo-cy", clock, "", "Cy (trial without a card: expired)")
        services.subscription_create(customer_id="demo-cy", plan_code="pro")
        _advance(clock, 40)
        _customer("demo-dee", clock, card, "Dee (Pro, upgraded to Team)")
        dee = services.subscription_create(customer_id="demo-dee", plan_code="pro", trial=False)
        _customer("demo-eve", clock, card, "Eve (yearly)")
        services.subscription_create(customer_id="demo-eve", plan_code="pro-yearly")
        _customer("demo-fin", clock, card, "Fin (dunning, then cancelled)")
        services.subscription_create(customer_id="demo-fin", plan_code="pro", trial=False)
        _advance(clock, 45)
        services.subscription_change(sub_id=dee.pk, plan_code="team")
        # Fin's card starts failing: dunning runs its course and cancels.
        _customer(
            "demo-fin",
            clock,
            "pm_card_chargeDeclinedInsufficientFunds",
            "Fin (dunning, then cancelled)",
        )
        _advance(clock, 60)
        # Ada's card fails at her next renewal; two days into the retries she updates it,
        # which retries at once (dunning recovered).
        _customer("demo-ada", clock, "pm_card_chargeDeclined", "Ada (Pro with the promo)")
        renewal = Subscription.objects.get(customer__customer_id="demo-ada").current_period_end
        clock.refresh_from_db()
        _advance(clock, (renewal - clock.frozen_time).days + 2)
        _customer("demo-ada", clock, "pm_card_mastercard", "Ada (Pro with the promo)")
        clock.refresh_from_db()
        remaining = int((timezone.now() - clock.frozen_time).total_seconds() // 86400)
        if remaining > 0:
            _advance(clock, remaining)
    return [
        "Billing:          plans free / pro / team / pro-yearly; coupon "
        f"{PROMO} (20% off 3 months)",
        f"  demo test clock  {clock.pk} ({clock.customers.count()} customers, a year of history)",
        "  -> /admin/billing/ (log in as finance) and "
        "GET /api/v1/billing/invoices?customer_id=demo-ada",
    ]
