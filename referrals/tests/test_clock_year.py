"""A year of referrals on a billing test clock reconciles: the credit given through
billing's ledger equals the rewards minus the clawbacks, and every referral ends where
its story says (rewarded, rejected by a refund inside the hold, clawed back after)."""

from datetime import timedelta

import pytest
from django.db.models import Sum

from billing import services as billing_services
from billing import testclocks
from billing.models import BillingCustomer, CreditEntry, Invoice
from billing.tests import support as billing
from referrals import services
from referrals.models import Referral, ReferralTransition, Reward

pytestmark = pytest.mark.django_db(transaction=True)

REFUND_IN_HOLD = {2, 7}
REFUND_AFTER_REWARD = {4}


def _advance(clock, moment):
    testclocks.clock_advance(clock_id=clock.pk, frozen_time=moment)
    clock.refresh_from_db()


def test_a_year_of_referrals_on_a_test_clock_reconciles():
    billing.plan("pro", 2900)
    clock = billing.clock("2026-01-01T12:00:00+00:00")
    billing.customer("ref-1", card="", test_clock=clock)  # a referrer needs no card
    code = services.code_get_or_create(customer_id="ref-1")[0].code
    start = clock.frozen_time
    late_refunds = []
    for month in range(12):
        _advance(clock, start + timedelta(days=30 * month))
        invitee = f"inv-{month}"
        billing.customer(invitee, test_clock=clock)
        services.attribute(code=code, customer_id=invitee)
        billing_services.subscription_create(customer_id=invitee, plan_code="pro", trial=False)
        first = Invoice.objects.filter(customer__customer_id=invitee).order_by("created_at")[0]
        if month in REFUND_IN_HOLD:
            billing_services.invoice_refund(invoice_id=first.pk)
        if month in REFUND_AFTER_REWARD:
            late_refunds.append(first.pk)
        if month - 1 in REFUND_AFTER_REWARD:  # a month later: after the 14-day hold
            billing_services.invoice_refund(invoice_id=late_refunds.pop())
    _advance(clock, start + timedelta(days=380))

    statuses = dict(Referral.objects.values_list("invitee_id", "status"))
    assert {k for k, v in statuses.items() if v == "rejected"} == {
        f"inv-{m}" for m in REFUND_IN_HOLD
    }
    assert sum(1 for v in statuses.values() if v == "rewarded") == 12 - len(REFUND_IN_HOLD)
    rewards = Reward.objects.aggregate(given=Sum("amount_minor"), back=Sum("clawed_back_minor"))
    assert rewards["back"] == 1000 * len(REFUND_AFTER_REWARD)
    ledger = CreditEntry.objects.filter(customer__customer_id="ref-1")
    given = ledger.filter(kind="referral_reward").aggregate(s=Sum("amount_minor"))["s"]
    taken = -(ledger.filter(kind="clawback").aggregate(s=Sum("amount_minor"))["s"] or 0)
    assert (given, taken) == (rewards["given"], rewards["back"])
    balance = BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor
    assert balance == rewards["given"] - rewards["back"] == 9000
    # each transition once, and the rewards dated on the clock (the hold after conversion)
    assert ReferralTransition.objects.count() == 12 + 12 + (12 - len(REFUND_IN_HOLD)) + len(
        REFUND_IN_HOLD
    )
    for reward in Reward.objects.select_related("referral"):
        assert reward.granted_at - reward.referral.converted_at == timedelta(days=14)
