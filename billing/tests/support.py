"""Helpers for billing tests: plans, customers on test clocks, and API calls."""

from __future__ import annotations

import itertools
from datetime import datetime

from billing import events
from billing.models import BillingCustomer, Plan, TestClock

_keys = itertools.count()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def plan(code="pro", amount=2900, interval="month", trial_days=0, currency="USD", **kw) -> Plan:
    return Plan.objects.create(
        code=code,
        name=kw.pop("name", code.title()),
        amount_minor=amount,
        currency=currency,
        interval=interval,
        trial_days=trial_days,
        **kw,
    )


def clock(frozen="2026-01-31T12:00:00+00:00") -> TestClock:
    return TestClock.objects.create(frozen_time=at(frozen))


def customer(customer_id="u-1", card="pm_card_visa", test_clock=None, **kw) -> BillingCustomer:
    """Created directly (not through customer_upsert), signed up as the service would:
    at the test clock's time when on one, else now (the field's default)."""
    if test_clock is not None:
        kw.setdefault("signed_up_at", test_clock.frozen_time)
    return BillingCustomer.objects.create(
        customer_id=customer_id,
        payment_method=card,
        test_clock=test_clock,
        email=kw.pop("email", f"{customer_id}@example.com"),
        **kw,
    )


def subscribe(client, key=None, **body):
    key = key or f"sub-{next(_keys)}"
    return client.post(
        "/api/v1/billing/subscriptions", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )


def advance(admin_api, clock_id, frozen: str):
    response = admin_api.post(
        f"/api/v1/admin/billing/test-clocks/{clock_id}/advance",
        {"frozen_time": frozen},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response


def change(client, sub_id, key=None, **body):
    key = key or f"chg-{next(_keys)}"
    return client.post(
        f"/api/v1/billing/subscriptions/{sub_id}/change",
        body,
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def invoices(client, customer_id="u-1") -> list[dict]:
    response = client.get(f"/api/v1/billing/invoices?customer_id={customer_id}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def drain_events() -> None:
    events.deliver_pending_now()


def due_subscriptions(n: int, plan_row: Plan, *, card="pm_card_visa", prefix="due") -> list:
    """`n` wall-clock customers with an active monthly subscription whose first period
    ended an hour ago: each is due for exactly one renewal (the next period ends in about
    a month). Bulk-inserted, no invoices of their own."""
    from datetime import timedelta

    from django.utils import timezone

    from billing.engine import periods
    from billing.models import Subscription

    now = timezone.now()
    anchor = periods.add_months(now - timedelta(hours=1), -1)
    start, end = periods.bounds(anchor, plan_row.interval, 0)
    customers = BillingCustomer.objects.bulk_create(
        BillingCustomer(customer_id=f"{prefix}-{i}", payment_method=card) for i in range(n)
    )
    return Subscription.objects.bulk_create(
        Subscription(
            customer=c,
            plan=plan_row,
            status="active",
            anchor=anchor,
            period_index=0,
            current_period_start=start,
            current_period_end=end,
            created_at=start,
        )
        for c in customers
    )
