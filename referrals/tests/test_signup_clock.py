"""A signup on a test clock is dated on the clock (API.md "Referrals": "a signup is a
billing customer created in the range (on its clock's time when it has one)"): the stats
and the overview's signups per week count it on the clock's day, not the wall clock's."""

from datetime import date

import pytest
from django.utils import timezone

from billing.models import BillingCustomer
from billing.tests import support as billing
from referrals import reporting
from referrals.models import Referral

pytestmark = pytest.mark.django_db

CLOCK_TIME = "2027-06-01T10:00:00+00:00"  # a Tuesday; its week's Monday is 2027-05-31


def _put(storefront, customer_id: str, **fields):
    response = storefront.put(
        f"/api/v1/billing/customers/{customer_id}",
        {"email": f"{customer_id}@example.com", **fields},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def _stats(admin_api, day: date) -> dict:
    response = admin_api.get(f"/api/v1/admin/referrals/stats?from={day}&to={day}")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def on_clock(storefront):
    """ref-1 on the wall clock (signed up today) refers new-1, created on a test clock at
    2027-06-01; org-1 signs up on the same clock without a referral."""
    clock = billing.clock(CLOCK_TIME)
    _put(storefront, "ref-1")
    code = storefront.post("/api/v1/referrals/codes", {"customer_id": "ref-1"}, format="json")
    _put(storefront, "new-1", test_clock=str(clock.pk))
    _put(storefront, "org-1", test_clock=str(clock.pk))
    made = storefront.post(
        "/api/v1/referrals/attribute",
        {"code": code.json()["code"], "customer_id": "new-1"},
        format="json",
    )
    assert made.status_code == 201, made.content
    return clock


def test_a_test_clock_signup_counts_on_the_clocks_day(admin_api, on_clock):
    assert _stats(admin_api, date(2027, 6, 1)) == {
        "signups": 2,
        "referred_signups": 1,
        "organic_signups": 1,
        "referred_share": 0.5,
        "conversions": 0,
        "conversion_rate": 0.0,
        "rewards_issued": 0,
        "k_factor": 1.0,  # ref-1 existed before the clock's day
    }
    today = _stats(admin_api, timezone.now().date())
    assert (today["signups"], today["referred_signups"]) == (1, 0)  # ref-1 only
    # the referral and the billing customer tell the same signup time
    invitee = BillingCustomer.objects.get(customer_id="new-1")
    assert invitee.signed_up_at == on_clock.frozen_time
    assert Referral.objects.get(invitee_id="new-1").signed_up_at == invitee.signed_up_at


def test_the_overviews_signups_per_week_put_it_in_the_clocks_week(on_clock):
    rows = reporting.signups_by_week(date(2027, 5, 24), date(2027, 6, 13))
    assert [(r.week, r.signups, r.referred, r.organic) for r in rows] == [
        (date(2027, 5, 24), 0, 0, 0),
        (date(2027, 5, 31), 2, 1, 1),
        (date(2027, 6, 7), 0, 0, 0),
    ]
    today = timezone.now().date()
    this_week = reporting.signups_by_week(today, today)
    assert [(r.signups, r.referred) for r in this_week] == [(1, 0)]  # ref-1 only
