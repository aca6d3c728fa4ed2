"""The gateway failing or hanging mid-renewal (issue 13 "Faults"): the invoice stays
consistent (open, its attempt `pending`, the subscription untouched), and the
reconciliation job later charges it exactly once, whether or not the lost call had
reached the gateway."""

import pytest

from billing import renewals
from billing.models import Invoice, PaymentAttempt, Subscription, TestGatewayCharge
from billing.payments import gateway
from billing.payments import services as payments
from billing.tests import support as t

pytestmark = pytest.mark.django_db


@pytest.fixture
def fault():
    yield gateway.set_fault
    gateway.set_fault(None)


def _renew_with(fault_mode, fault, settings):
    settings.BILLING_TEST_GATEWAY_HANG_SECONDS = 0.05
    (sub,) = t.due_subscriptions(1, t.plan("pro", 2900))
    fault(fault_mode)
    assert renewals.run_due() == 1
    fault(None)
    return sub


@pytest.mark.parametrize("mode", ["error", "hang", "error_after_charge"])
def test_a_lost_gateway_call_leaves_a_consistent_invoice_and_is_charged_once(mode, fault, settings):
    # given a renewal whose gateway call failed, hung, or charged and lost its answer
    sub = _renew_with(mode, fault, settings)
    invoice = Invoice.objects.get(subscription=sub, billing_reason="subscription_cycle")
    # then the invoice is open with one pending attempt, and nothing else moved
    assert invoice.status == "open"
    assert invoice.amount_paid_minor == 0
    assert list(invoice.attempts.values_list("status", flat=True)) == ["pending"]
    assert Subscription.objects.get(pk=sub.pk).status == "active"
    charged_before = TestGatewayCharge.objects.count()
    assert charged_before == (1 if mode == "error_after_charge" else 0)
    # and the renewal job does not invoice the period again
    assert renewals.run_due() == 0
    # when the reconciliation job runs (twice, as beat would)
    assert payments.attempts_reconcile(stale_seconds=0) == 1
    assert payments.attempts_reconcile(stale_seconds=0) == 0
    # then the invoice is paid by exactly one charge
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert invoice.amount_paid_minor == 2900
    assert TestGatewayCharge.objects.count() == 1
    assert PaymentAttempt.objects.get(invoice=invoice).status == "succeeded"


def test_a_recent_pending_attempt_is_left_to_its_call(fault, settings):
    # a call still in flight (younger than BILLING_ATTEMPT_STALE_SECONDS) is not retried
    _renew_with("error", fault, settings)
    assert payments.attempts_reconcile() == 0
    assert PaymentAttempt.objects.get().status == "pending"


def test_a_subscribe_whose_charge_is_lost_is_503_then_settles_on_retry(storefront, fault):
    # given the gateway errors during a subscribe
    t.plan("pro", 2900)
    t.customer("u-1")
    fault("error")
    first = t.subscribe(storefront, key="k1", customer_id="u-1", plan="pro")
    assert first.status_code == 503
    assert first.json()["error"]["code"] == "payment_pending"
    assert first["Retry-After"] == "5"
    assert Subscription.objects.get().status == "incomplete"
    # when the client retries with the same key once the gateway answers again
    fault(None)
    again = t.subscribe(storefront, key="k1", customer_id="u-1", plan="pro")
    # then the same subscription is active, charged once
    assert again.status_code == 201, again.content
    assert again.json()["status"] == "active"
    assert Subscription.objects.count() == 1
    assert TestGatewayCharge.objects.count() == 1
