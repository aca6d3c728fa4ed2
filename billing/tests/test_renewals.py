"""The renewal job's runner stops at its time budget and queues its continuation, so a
due set of any size is worked through without the task being killed by its time limit."""

import pytest

from billing import renewals, tasks
from billing.models import Invoice
from billing.tests import support as t

pytestmark = pytest.mark.django_db


def test_a_runner_out_of_time_stops_after_a_batch_and_says_so():
    t.due_subscriptions(12, t.plan("pro", 2900))
    assert renewals.run_due_within(batch=5, budget_seconds=0) == (5, False)
    assert renewals.run_due_within(batch=5) == (7, True)
    assert Invoice.objects.filter(billing_reason="subscription_cycle", status="paid").count() == 12


def test_the_beat_task_continues_itself_until_nothing_is_due(settings):
    settings.BILLING_RUN_DUE_SECONDS = 0
    settings.BILLING_RENEWAL_BATCH = 5
    settings.BILLING_RENEWAL_PARALLELISM = 1
    t.due_subscriptions(12, t.plan("pro", 2900))
    # eager Celery: each continuation runs when queued
    tasks.run_due()
    assert Invoice.objects.filter(billing_reason="subscription_cycle", status="paid").count() == 12
    assert renewals.run_due() == 0
