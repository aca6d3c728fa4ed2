"""Suspicious patterns are held for review instead of rewarded automatically: more than
the program's limit of referrals from one IP or device in a day, or a burst for one
referrer in an hour. A held referral converts but is not rewarded until approved."""

import pytest

from billing import services as billing_services
from billing.tests import support as billing
from referrals import services
from referrals.models import Referral

pytestmark = pytest.mark.django_db


def _code(referrer="ref-1"):
    return services.code_get_or_create(customer_id=referrer)[0].code


def test_the_fourth_referral_from_one_ip_in_a_day_is_held():
    code = _code()
    for n in range(4):
        services.attribute(code=code, customer_id=f"new-{n}", context={"ip": "203.0.113.7"})
    held = dict(Referral.objects.values_list("invitee_id", "held_for_review"))
    assert held == {"new-0": False, "new-1": False, "new-2": False, "new-3": True}
    assert Referral.objects.get(invitee_id="new-3").review_reason == "many_per_ip"


def test_a_burst_for_one_referrer_is_held_and_identities_are_stored_hashed():
    code = _code()
    for n in range(6):
        services.attribute(code=code, customer_id=f"new-{n}", context={"device_id": f"d-{n}"})
    last = Referral.objects.get(invitee_id="new-5")
    assert (last.held_for_review, last.review_reason) == (True, "referrer_burst")
    assert "d-5" not in str(last.identity)  # only keyed hashes are kept
    assert len(last.identity["device"]) == 64


def test_a_held_referral_is_rewarded_only_after_approval():
    billing.plan("pro", 2900)
    code = _code()
    for n in range(4):
        services.attribute(code=code, customer_id=f"new-{n}", context={"device_id": "same"})
    held = Referral.objects.get(held_for_review=True)
    billing.customer(held.invitee_id)
    billing_services.subscription_create(customer_id=held.invitee_id, plan_code="pro", trial=False)
    from billing import events

    events.deliver_pending_now()
    held.refresh_from_db()
    assert held.status == "converted"
    assert services.rewards_due(now=held.reward_due_at) == 0
    services.review_release(referral_id=held.pk, approve=True, by="mia")
    assert services.rewards_due(now=held.reward_due_at) == 1
    held.refresh_from_db()
    assert held.status == "rewarded"


def test_a_rejected_review_never_rewards():
    code = _code()
    for n in range(4):
        services.attribute(code=code, customer_id=f"new-{n}", context={"ip": "198.51.100.1"})
    held = Referral.objects.get(held_for_review=True)
    services.review_release(referral_id=held.pk, approve=False, by="mia")
    held.refresh_from_db()
    assert (held.status, held.reason) == ("rejected", "review_rejected")
