"""Billing's "now": the customer's test clock when it has one, else the wall clock.

Every billing service takes its time from here, so a customer on a test clock lives on
that clock everywhere (trials, renewals, dunning, grace) and a year runs in seconds."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from billing.models import BillingCustomer, TestClock


def now_for(customer: BillingCustomer) -> datetime:
    if customer.test_clock_id is None:
        return timezone.now()
    clock = customer.test_clock if _loaded(customer) else None
    if clock is None:
        clock = TestClock.objects.only("frozen_time").get(pk=customer.test_clock_id)
    return clock.frozen_time


def _loaded(customer: BillingCustomer) -> bool:
    return "test_clock" in customer._state.fields_cache
