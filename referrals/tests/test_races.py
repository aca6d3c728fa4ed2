"""Referrals under concurrency: the first referrer wins, a conversion event delivered
twice and at once rewards once, a refund racing the hold's end is either a rejection or a
reward clawed back, never a reward kept."""

from collections import Counter

import pytest

from billing import services as billing_services
from billing.models import BillingCustomer, CreditEntry, Invoice
from billing.tests import support as billing
from referrals import consumers, services
from referrals.models import Referral, ReferralTransition, Reward
from tests.race import race, unexpected

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_invitee_attributed_at_once_with_two_codes_gets_one_referral():
    codes = [services.code_get_or_create(customer_id=f"ref-{n}")[0].code for n in range(2)]
    outcomes = race(
        lambda i: services.attribute(code=codes[i % 2], customer_id="new-1"), range(10), workers=10
    )
    assert not unexpected(outcomes), unexpected(outcomes)
    assert Referral.objects.count() == 1
    referral = Referral.objects.get()
    assert {o.value[0].pk for o in outcomes} == {referral.pk}
    assert sum(1 for o in outcomes if o.value[1]) == 1  # one 201, the rest 200
    assert ReferralTransition.objects.filter(referral=referral).count() == 1


def _converted():
    billing.plan("pro", 2900)
    code = services.code_get_or_create(customer_id="ref-1")[0].code
    billing.customer("ref-1")
    services.attribute(code=code, customer_id="new-1")
    billing.customer("new-1")
    billing_services.subscription_create(customer_id="new-1", plan_code="pro", trial=False)
    return Referral.objects.get(invitee_id="new-1")


def test_the_conversion_event_delivered_twice_at_once_rewards_once():
    referral = _converted()
    invoice = Invoice.objects.get(customer__customer_id="new-1")
    payload = {
        "customer_id": "new-1",
        "invoice_id": str(invoice.pk),
        "amount_paid": "29.00",
        "currency": "USD",
    }
    outcomes = race(lambda _: consumers.on_invoice_paid(1, "invoice.paid", payload), range(8))
    assert not unexpected(outcomes), unexpected(outcomes)
    referral.refresh_from_db()
    # and the reward job run by several workers at once
    outcomes = race(lambda _: services.rewards_due(now=referral.reward_due_at), range(6))
    assert not unexpected(outcomes), unexpected(outcomes)
    assert sum(o.value for o in outcomes) == 1
    assert Reward.objects.count() == 1
    assert CreditEntry.objects.filter(kind="referral_reward").count() == 1
    assert BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor == 1000
    assert Counter(
        ReferralTransition.objects.filter(referral=referral).values_list("to_status", flat=True)
    ) == Counter({"signed_up": 1, "converted": 1, "rewarded": 1})


@pytest.mark.parametrize("attempt", range(4))
def test_a_refund_racing_the_holds_end_is_never_a_reward_kept(attempt):
    referral = _converted()
    invoice = Invoice.objects.get(customer__customer_id="new-1")

    def act(which):
        if which == "refund":
            return billing_services.invoice_refund(invoice_id=invoice.pk)
        return services.rewards_due(now=referral.reward_due_at)

    outcomes = race(act, ["refund", "reward"], workers=2)
    assert not unexpected(outcomes), unexpected(outcomes)
    referral.refresh_from_db()
    balance = BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor
    if referral.status == "rejected":
        assert not Reward.objects.exists()
    else:
        assert referral.status == "rewarded"
        reward = Reward.objects.get()
        assert reward.clawed_back_minor == reward.amount_minor
    assert balance == 0  # never rewarded and kept
