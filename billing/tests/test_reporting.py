"""The finance numbers (billing.reporting) on the small history of billing.tests.history,
each one worked out by hand in the comments."""

from datetime import date

import pytest
from django.utils import timezone

from billing import reporting, services
from billing.reporting import DunningMonth, FlowMonth, MrrMonth, TrialMonth
from billing.tests import support as t
from billing.tests.history import END

pytestmark = pytest.mark.django_db

JAN_TO_APR = reporting.months_ending(date(2026, 4, 1), 4)


def test_months_are_calendar_months_across_a_year_end():
    months = reporting.months_ending(date(2026, 2, 14), 3)
    assert [m.label for m in months] == ["2025-12", "2026-01", "2026-02"]
    assert months[0].start.isoformat() == "2025-12-01T00:00:00+00:00"
    assert months[-1].end.isoformat() == "2026-03-01T00:00:00+00:00"


def test_mrr_by_month_per_currency(billing_history):
    detail = reporting.mrr_detail(JAN_TO_APR, as_of=timezone.now())
    assert detail == {
        # Jan (at Feb 1): a, e, f, h, i $10 + b $29 + d $120/12 + k $10 half off = $94.00
        # Feb (at Mar 1): f uncollectible, h cancelled, k full price: $79.00
        # Mar (at the clock's Mar 12): i's renewal unpaid (past due): $69.00
        # Apr: after the clock's time, nothing known
        "USD": [MrrMonth(9400, 8), MrrMonth(7900, 6), MrrMonth(6900, 5), MrrMonth(0, 0)],
        # g and j EUR 20.00; j past due since Mar 10
        "EUR": [MrrMonth(4000, 2), MrrMonth(4000, 2), MrrMonth(2000, 1), MrrMonth(0, 0)],
    }
    assert reporting.mrr_by_month(JAN_TO_APR) == {
        "USD": [9400, 7900, 6900, 0],
        "EUR": [4000, 4000, 2000, 0],
    }


def test_a_dunned_renewal_counts_once_paid(billing_history):
    # given i's open March invoice is paid after all (a new card retries it at once)
    services.customer_upsert(customer_id="fin-i", fields={"payment_method": "pm_card_visa"})
    # then March's MRR has it back
    assert reporting.mrr_by_month(JAN_TO_APR)["USD"][2] == 7900


def test_yearly_plans_are_a_twelfth_rounded_once_per_month():
    # given two wall-clock customers on a $290.00 yearly plan, subscribed now
    t.plan("yearly", 29000, interval="year")
    for customer_id in ("y-1", "y-2"):
        t.customer(customer_id)
        services.subscription_create(customer_id=customer_id, plan_code="yearly")
    now = timezone.now()
    this_month = reporting.months_ending(timezone.localdate(now), 1)
    # then 2 x 29000 / 12 = 4833.33 -> 4833 (rounding each first would give 2 x 2417)
    assert reporting.mrr_detail(this_month, as_of=now) == {"USD": [MrrMonth(4833, 2)]}


def test_new_and_churned_subscriptions_per_month(billing_history):
    assert reporting.subscriptions_flow(JAN_TO_APR) == [
        FlowMonth(new=11, churned=1),  # every subscribe (c's trial too); c's trial expired
        FlowMonth(new=0, churned=2),  # f (dunning exhausted), h (cancelled at period end)
        FlowMonth(new=0, churned=0),
        FlowMonth(new=0, churned=0),
    ]


def test_a_declined_first_charge_is_neither_new_nor_churned(billing_history):
    t.customer("fin-z", card="pm_card_chargeDeclined", test_clock=billing_history.clock)
    with pytest.raises(Exception, match="declined"):
        services.subscription_create(customer_id="fin-z", plan_code="basic")
    assert reporting.subscriptions_flow(JAN_TO_APR)[2] == FlowMonth(new=0, churned=0)


def test_dunning_recovery_by_the_month_an_episode_started(billing_history):
    rows = reporting.dunning_recovery(JAN_TO_APR)
    assert rows == [
        DunningMonth(entered=0, recovered=0, lost=0, still_open=0),
        DunningMonth(entered=2, recovered=1, lost=1, still_open=0),  # e back, f cancelled
        DunningMonth(entered=2, recovered=0, lost=0, still_open=2),  # i and j still past due
        DunningMonth(entered=0, recovered=0, lost=0, still_open=0),
    ]
    assert str(rows[1].rate) == "0.5"
    assert rows[0].rate is None
    total = reporting.dunning_total(rows)
    assert (total.part, total.whole, str(total.rate)) == (1, 4, "0.25")


def test_trial_conversion_by_the_month_the_trial_ended(billing_history):
    rows = reporting.trial_conversion(JAN_TO_APR)
    assert rows == [TrialMonth(2, 1), TrialMonth(0, 0), TrialMonth(0, 0), TrialMonth(0, 0)]
    assert str(reporting.trial_total(rows).rate) == "0.5"


def test_past_due_now_with_the_amount_at_risk_per_currency(billing_history):
    rows = reporting.past_due()
    got = [
        (
            r.subscription.customer.customer_id,
            r.subscription.plan.code,
            r.first_failed_at.isoformat(),
            r.next_attempt_at.isoformat(),
            r.attempt_count,
            r.amount_due_minor,
            r.currency,
            len(r.open_invoice_ids),
            r.grace_ends_at.isoformat(),
        )
        for r in rows
    ]
    mar10, mar13 = "2026-03-10T12:00:00+00:00", "2026-03-13T12:00:00+00:00"
    grace = "2026-03-13T12:00:00+00:00"  # BILLING_GRACE_DAYS = 3
    assert sorted(got) == [
        ("fin-i", "basic", mar10, mar13, 2, 1000, "USD", 1, grace),
        ("fin-j", "euro", mar10, mar13, 2, 2000, "EUR", 1, grace),
    ]
    assert reporting.amount_at_risk() == {"EUR": 2000, "USD": 1000}
    assert billing_history.clock.frozen_time == t.at(END)
