"""A referral from invite to reward (API.md "Referrals"): codes, attribution with its
checks, conversion on the first paid invoice, the reward after the hold through billing's
credit ledger, rejection by a refund inside the hold, clawback after it."""

from datetime import timedelta

import pytest

from billing import services as billing_services
from billing.models import BillingCustomer, CreditEntry, Invoice
from billing.tests import support as billing
from referrals import services
from referrals.models import Referral, ReferralTransition, Reward

# Real commits: billing's outbox reaches referrals after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _code(client, customer_id="ref-1", **context):
    body = {"customer_id": customer_id}
    if context:
        body["context"] = context
    return client.post("/api/v1/referrals/codes", body, format="json")


def _attribute(client, code, customer_id="new-1", **context):
    body = {"code": code, "customer_id": customer_id}
    if context:
        body["context"] = context
    return client.post("/api/v1/referrals/attribute", body, format="json")


@pytest.fixture
def pro():
    return billing.plan("pro", 2900)


def test_one_code_per_referrer(storefront):
    first = _code(storefront)
    assert first.status_code == 201
    again = _code(storefront)
    assert (again.status_code, again.json()["code"]) == (200, first.json()["code"])


def test_attribution_once_with_a_welcome_coupon_bound_to_the_invitee(storefront):
    code = _code(storefront).json()["code"]
    made = _attribute(storefront, code)
    assert made.status_code == 201, made.content
    body = made.json()
    assert (body["status"], body["referrer_id"]) == ("signed_up", "ref-1")
    assert body["invitee_coupon"].startswith("WELCOME-")
    # the same customer again, with another code: the first referral
    other = _code(storefront, "ref-2").json()["code"]
    again = _attribute(storefront, other)
    assert (again.status_code, again.json()["referral_id"]) == (200, body["referral_id"])
    # the welcome code is the invitee's own
    validate = storefront.post(
        "/api/v1/coupons/validate",
        {
            "coupon_code": body["invitee_coupon"],
            "user_id": "someone-else",
            "cart": {
                "currency": "USD",
                "items": [{"sku": "A", "unit_price": "10.00", "quantity": 1}],
            },
        },
        format="json",
    ).json()
    assert validate["valid"] is False


@pytest.mark.parametrize(
    ("invitee", "context", "reason"),
    [
        ("ref-1", {}, "self_referral"),
        ("new-2", {"email": "Ref.One+x@Example.com"}, "self_referral"),
        ("new-3", {"device_id": "dev-1"}, "self_referral"),
    ],
)
def test_self_referral_is_refused(storefront, invitee, context, reason):
    billing.customer("ref-1", email="refone@example.com")
    code = _code(storefront, device_id="dev-1").json()["code"]
    refused = _attribute(storefront, code, invitee, **context)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, reason)


def test_unknown_code_and_not_new_customer(storefront, pro):
    assert _attribute(storefront, "NOPE1234").json()["error"]["code"] == "referral_code_not_found"
    code = _code(storefront).json()["code"]
    billing.customer("old-1")
    billing.subscribe(storefront, customer_id="old-1", plan="pro")
    refused = _attribute(storefront, code, "old-1")
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "not_new_customer")


def _converted(storefront, pro):
    code = _code(storefront).json()["code"]
    billing.customer("ref-1")
    _attribute(storefront, code, "new-1")
    billing.customer("new-1")
    billing.subscribe(storefront, customer_id="new-1", plan="pro")  # the first paid invoice
    referral = Referral.objects.get(invitee_id="new-1")
    assert referral.status == "converted"
    return referral


def test_conversion_then_reward_after_the_hold_through_the_credit_ledger(storefront, pro):
    referral = _converted(storefront, pro)
    # not before the hold
    assert services.rewards_due(now=referral.reward_due_at - timedelta(seconds=1)) == 0
    assert services.rewards_due(now=referral.reward_due_at) == 1
    assert services.rewards_due(now=referral.reward_due_at) == 0
    referral.refresh_from_db()
    assert referral.status == "rewarded"
    assert BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor == 1000
    assert CreditEntry.objects.filter(kind="referral_reward").count() == 1
    assert list(
        ReferralTransition.objects.filter(referral=referral).values_list("to_status", flat=True)
    ) == ["signed_up", "converted", "rewarded"]
    summary = storefront.get("/api/v1/referrals/customers/ref-1").json()
    assert summary["rewards_earned"] == "10.00"
    assert summary["credit_balance"] == "10.00"
    assert [r["status"] for r in summary["referrals"]] == ["rewarded"]


def test_a_refund_inside_the_hold_rejects(storefront, admin_api, pro):
    referral = _converted(storefront, pro)
    invoice = Invoice.objects.get(customer__customer_id="new-1")
    billing_services.invoice_refund(invoice_id=invoice.pk)
    referral.refresh_from_db()
    assert (referral.status, referral.reason) == ("rejected", "refunded")
    assert services.rewards_due(now=referral.reward_due_at) == 0
    assert not Reward.objects.exists()


def test_a_refund_after_the_reward_claws_back_the_unused_credit(storefront, pro):
    referral = _converted(storefront, pro)
    services.rewards_due(now=referral.reward_due_at)
    invoice = Invoice.objects.get(customer__customer_id="new-1")
    billing_services.invoice_refund(invoice_id=invoice.pk)
    reward = Reward.objects.get()
    assert (reward.clawed_back_minor, reward.clawed_back_at is not None) == (1000, True)
    assert BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor == 0
    summary = storefront.get("/api/v1/referrals/customers/ref-1").json()
    assert summary["rewards_earned"] == "0.00"


def test_stats(storefront, admin_api, pro):
    _converted(storefront, pro)
    stats = admin_api.get("/api/v1/admin/referrals/stats").json()
    assert stats["signups"] >= 2
    assert stats["referred_signups"] == 1
    assert stats["conversions"] == 1
    assert stats["conversion_rate"] == 1.0
    bad = admin_api.get("/api/v1/admin/referrals/stats?from=2026-12-10&to=2026-12-01")
    assert bad.status_code == 400


def test_a_clawback_takes_only_the_unused_credit(storefront, pro):
    referral = _converted(storefront, pro)
    services.rewards_due(now=referral.reward_due_at)
    # the referrer spends 4.00 of the 10.00 credit on an invoice of their own
    billing.plan("mini", 400)
    BillingCustomer.objects.filter(customer_id="ref-1").update(payment_method="pm_card_visa")
    billing.subscribe(storefront, customer_id="ref-1", plan="mini")
    assert BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor == 600
    invoice = Invoice.objects.get(customer__customer_id="new-1")
    billing_services.invoice_refund(invoice_id=invoice.pk)
    reward = Reward.objects.get()
    assert reward.clawed_back_minor == 600
    assert BillingCustomer.objects.get(customer_id="ref-1").credit_balance_minor == 0
