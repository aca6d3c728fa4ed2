"""A billing customer's signup (`signed_up_at`) is on its clock: a test clock's time for a
customer created on one (or moved onto one before its first subscription), else the wall
clock; billing's signup reads for referrals (signups_between, customers_before,
signups_per_week) go by it, not by the row's wall-clock `created_at`."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from billing import selectors, services, testclocks
from billing.models import BillingCustomer
from billing.tests import support
from core.errors import Conflict

pytestmark = pytest.mark.django_db

CLOCK_TIME = "2027-06-02T09:30:00+00:00"  # a Wednesday; its week's Monday is 2027-05-31


def _upsert(customer_id: str, **fields) -> BillingCustomer:
    return services.customer_upsert(customer_id=customer_id, fields=fields).customer


def test_created_on_a_test_clock_it_signs_up_at_the_clocks_time():
    clock = support.clock(CLOCK_TIME)
    before = timezone.now()
    customer = _upsert("u-clock", email="c@example.com", test_clock=str(clock.pk))
    assert customer.signed_up_at == support.at(CLOCK_TIME)
    assert customer.created_at >= before  # the row's own time stays the wall clock's
    # later updates, and the clock moving on, leave the signup where it was
    testclocks.clock_advance(clock_id=clock.pk, frozen_time=support.at("2027-07-01T00:00:00Z"))
    customer = _upsert("u-clock", name="C", test_clock=str(clock.pk))
    assert customer.signed_up_at == support.at(CLOCK_TIME)


def test_a_wall_clock_customer_signs_up_now():
    before = timezone.now()
    customer = _upsert("u-wall", email="w@example.com")
    assert before <= customer.signed_up_at <= timezone.now()
    first_use = services._customer_for("u-first-use")  # a subscribe before any PUT
    assert before <= first_use.signed_up_at <= timezone.now()


def test_moved_onto_a_clock_before_subscribing_it_signs_up_again_on_it():
    clock = support.clock(CLOCK_TIME)
    _upsert("u-move", email="m@example.com")
    moved = _upsert("u-move", test_clock=str(clock.pk))
    assert moved.signed_up_at == support.at(CLOCK_TIME)
    before = timezone.now()
    off = _upsert("u-move", test_clock=None)  # back on the wall clock: dated now again
    assert before <= off.signed_up_at <= timezone.now()


def test_once_subscribed_the_clock_and_the_signup_are_fixed():
    support.plan("pro", 2900)
    clock = support.clock(CLOCK_TIME)
    _upsert("u-sub", email="s@example.com", payment_method="pm_card_visa", test_clock=str(clock.pk))
    services.subscription_create(customer_id="u-sub", plan_code="pro", trial=False)
    with pytest.raises(Conflict):
        _upsert("u-sub", test_clock=None)
    assert BillingCustomer.objects.get(customer_id="u-sub").signed_up_at == support.at(CLOCK_TIME)


def test_the_signup_reads_go_by_the_clocks_time():
    clock = support.clock(CLOCK_TIME)
    _upsert("u-clock", test_clock=str(clock.pk))
    support.customer("u-helper", test_clock=clock)  # direct creates: the helper does the same
    _upsert("u-wall")
    clock_day = support.at("2027-06-02T00:00:00Z")
    next_day = clock_day + timedelta(days=1)
    assert sorted(selectors.signups_between(clock_day, next_day)) == ["u-clock", "u-helper"]
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    assert selectors.signups_between(today, today + timedelta(days=1)) == ["u-wall"]
    assert selectors.customers_before(clock_day) == 1  # u-wall
    assert selectors.customers_before(next_day) == 3
    weeks = selectors.signups_per_week(
        support.at("2027-05-24T00:00:00Z"), support.at("2027-06-14T00:00:00Z")
    )
    assert weeks == {date(2027, 5, 31): 2}
    among = selectors.signups_per_week(clock_day, next_day, among=["u-clock"])
    assert among == {date(2027, 5, 31): 1}
    this_week = selectors.signups_per_week(today - timedelta(days=7), today + timedelta(days=1))
    assert sum(this_week.values()) == 1  # u-wall only


def test_bulk_created_customers_sign_up_now():
    before = timezone.now()
    support.due_subscriptions(2, support.plan("pro", 2900))
    stamps = list(BillingCustomer.objects.values_list("signed_up_at", flat=True))
    assert len(stamps) == 2
    assert all(before <= s <= timezone.now() for s in stamps)
