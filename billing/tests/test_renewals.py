"""The renewal job's runner stops at its time budget and queues its continuation, so a
due set of any size is worked through without the task being killed by its time limit."""

import pytest

from billing import invoicing, renewals, tasks
from billing.models import Invoice, OutboxEvent
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


def test_the_bulk_path_writes_what_the_one_by_one_path_would():
    # given two plain renewals (the bulk path: COPY, a batch gateway call, bulk record)
    subs = t.due_subscriptions(2, t.plan("pro", 2900))
    assert renewals.run_due() == 2
    for sub in subs:
        invoice = Invoice.objects.get(subscription=sub, billing_reason="subscription_cycle")
        # then each invoice is complete, numbered, paid by one attempt, with one line
        assert (invoice.status, invoice.total_minor, invoice.amount_paid_minor) == (
            "paid",
            2900,
            2900,
        )
        assert invoice.number
        assert invoice.paid_at
        assert invoice.finalized_at
        assert list(invoice.lines.values_list("kind", "amount_minor")) == [("subscription", 2900)]
        attempt = invoice.attempts.get()
        assert (attempt.status, attempt.amount_minor, attempt.payment_method) == (
            "succeeded",
            2900,
            "pm_card_visa",
        )
        assert attempt.created_at is not None
        assert attempt.provider_ref.startswith("ch_test_")
        # and its invoice.paid event carries the payload invoice_payload gives for it
        event = OutboxEvent.objects.get(type="invoice.paid", payload__invoice_id=str(invoice.pk))
        assert event.payload == invoicing.invoice_payload(invoice)
