"""Subscribe, decline, trials, renewals and the coupon's duration through HTTP, on test
clocks (API.md "Billing")."""

import pytest
from django.core import mail

from billing.models import Invoice, Subscription, SubscriptionTransition
from billing.tests import support as t
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def pro(db):
    return t.plan("pro", 2900, features={"projects": 50})


def test_subscribe_without_trial_charges_the_first_invoice(storefront, pro):
    # given
    t.customer("u-1")
    # when
    response = t.subscribe(storefront, customer_id="u-1", plan="pro")
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "active"
    assert body["plan"] == "pro"
    assert body["trial_end"] is None
    assert body["discount"] is None
    invoice = storefront.get(f"/api/v1/billing/invoices/{body['latest_invoice']}").json()
    assert invoice["status"] == "paid"
    assert invoice["total"] == "29.00"
    assert invoice["amount_paid"] == "29.00"
    assert invoice["amount_due"] == "0.00"
    assert invoice["number"].startswith("INV-")
    assert [x["kind"] for x in invoice["lines"]] == ["subscription"]


def test_a_decline_is_402_and_leaves_no_live_subscription(storefront, pro):
    t.customer("u-1", card="pm_card_chargeDeclinedInsufficientFunds")
    response = t.subscribe(storefront, customer_id="u-1", plan="pro")
    assert response.status_code == 402, response.content
    assert response.json()["error"]["code"] == "payment_declined"
    assert not Subscription.objects.filter(
        status__in=["active", "trialing", "past_due", "incomplete"]
    ).exists()
    assert Invoice.objects.get().status == "void"
    # and the customer can subscribe again with a working card
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_visa"}, format="json"
    )
    assert t.subscribe(storefront, customer_id="u-1", plan="pro").status_code == 201


def test_unknown_plan_is_404_and_second_live_subscription_409(storefront, pro):
    t.customer("u-1")
    assert t.subscribe(storefront, customer_id="u-1", plan="nope").json()["error"]["code"] == (
        "plan_not_found"
    )
    assert t.subscribe(storefront, customer_id="u-1", plan="pro").status_code == 201
    second = t.subscribe(storefront, customer_id="u-1", plan="pro")
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "subscription_exists"


def test_replayed_subscribe_returns_the_first_answer(storefront, pro):
    t.customer("u-1")
    first = t.subscribe(storefront, key="same", customer_id="u-1", plan="pro")
    again = t.subscribe(storefront, key="same", customer_id="u-1", plan="pro")
    assert again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Subscription.objects.count() == 1


def test_trial_without_card_expires_at_its_end(storefront, admin_api, db):
    t.plan("pro", 2900, trial_days=14)
    clock = t.clock("2026-03-01T00:00:00+00:00")
    t.customer("u-1", card="", test_clock=clock)
    body = t.subscribe(storefront, customer_id="u-1", plan="pro").json()
    assert body["status"] == "trialing"
    assert body["trial_end"].startswith("2026-03-15")
    t.advance(admin_api, clock.pk, "2026-03-16T00:00:00+00:00")
    sub = storefront.get(f"/api/v1/billing/subscriptions/{body['id']}").json()
    assert sub["status"] == "expired"
    reasons = list(SubscriptionTransition.objects.values_list("to_status", flat=True))
    assert reasons == ["trialing", "expired"]


def test_trial_with_card_converts_and_renews_monthly(storefront, admin_api, db):
    t.plan("pro", 2900, trial_days=14)
    clock = t.clock("2026-01-17T09:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="pro").json()["id"]
    t.advance(admin_api, clock.pk, "2026-05-01T00:00:00+00:00")
    sub = storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()
    assert sub["status"] == "active"
    # trial ends Jan 31: periods Jan 31 -> Feb 28 -> Mar 31 -> Apr 30 (month-end anchor)
    paid = [x for x in t.invoices(storefront) if x["total"] != "0.00"]
    starts = sorted(x["period_start"][:10] for x in paid)
    assert starts == ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    assert all(x["status"] == "paid" for x in paid)
    numbers = sorted(int(x["number"].split("-")[1]) for x in t.invoices(storefront))
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


def test_twenty_percent_for_three_months_discounts_invoices_one_to_three(storefront, admin_api, db):
    t.plan("pro", 2900)
    CouponFactory(code="PROMO20", percent_bp=2000, duration="repeating", duration_invoices=3)
    clock = t.clock("2026-01-10T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    body = t.subscribe(storefront, customer_id="u-1", plan="pro", coupon_code="PROMO20").json()
    assert body["discount"] == {"coupon": "PROMO20", "remaining_invoices": 2}
    t.advance(admin_api, clock.pk, "2026-05-15T00:00:00+00:00")
    totals = [x["total"] for x in sorted(t.invoices(storefront), key=lambda x: x["number"])]
    assert totals == ["23.20", "23.20", "23.20", "29.00", "29.00"]
    first = sorted(t.invoices(storefront), key=lambda x: x["number"])[0]
    assert [x["kind"] for x in first["lines"]] == ["subscription", "discount"]
    assert first["discount"] == "5.80"


def test_a_coupon_that_cannot_be_used_is_422_with_its_reason(storefront, pro):
    t.customer("u-1")
    CouponFactory(code="GONE", percent_bp=1000, active=False)
    response = t.subscribe(storefront, customer_id="u-1", plan="pro", coupon_code="GONE")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "coupon_inactive"
    missing = t.subscribe(storefront, customer_id="u-1", plan="pro", coupon_code="NOPE")
    assert missing.json()["error"]["code"] == "coupon_not_found"
    assert not Subscription.objects.exists()


def test_dunning_retries_then_cancels(
    storefront, admin_api, db, settings, django_capture_on_commit_callbacks
):
    settings.BILLING_DUNNING_RETRY_DAYS = [1, 3, 5, 7]
    t.plan("pro", 2900)
    clock = t.clock("2026-01-10T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="pro").json()["id"]
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_chargeDeclined"}, format="json"
    )
    mail.outbox.clear()
    # the renewal on Feb 10 fails: past_due, retried on days 1, 3, 5 and 7
    with django_capture_on_commit_callbacks(execute=True):
        t.advance(admin_api, clock.pk, "2026-02-10T00:00:00+00:00")
    assert storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()["status"] == "past_due"
    with django_capture_on_commit_callbacks(execute=True):
        t.advance(admin_api, clock.pk, "2026-02-16T00:00:00+00:00")
    renewal = Invoice.objects.get(billing_reason="subscription_cycle")
    assert renewal.status == "open"
    assert renewal.attempt_count == 4
    with django_capture_on_commit_callbacks(execute=True):
        t.advance(admin_api, clock.pk, "2026-02-18T00:00:00+00:00")
    renewal.refresh_from_db()
    assert renewal.status == "uncollectible"
    assert renewal.attempt_count == 5
    assert storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()["status"] == "cancelled"
    assert len(mail.outbox) == 5
    assert "update" in mail.outbox[0].body.lower()
    assert mail.outbox[0].alternatives[0][1] == "text/html"


def test_a_new_card_while_past_due_retries_at_once(storefront, admin_api, db):
    t.plan("pro", 2900)
    clock = t.clock("2026-01-10T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="pro").json()["id"]
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_chargeDeclined"}, format="json"
    )
    t.advance(admin_api, clock.pk, "2026-02-10T00:00:00+00:00")
    assert storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()["status"] == "past_due"
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_mastercard"}, format="json"
    )
    assert storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()["status"] == "active"
    assert Invoice.objects.get(billing_reason="subscription_cycle").status == "paid"


def test_upgrade_charges_exactly_the_preview(storefront, admin_api, db):
    t.plan("basic", 1000)
    t.plan("team", 4000)
    clock = t.clock("2026-04-01T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="basic").json()["id"]
    t.advance(admin_api, clock.pk, "2026-04-11T00:00:00+00:00")
    preview = storefront.post(
        f"/api/v1/billing/subscriptions/{sub_id}/preview-change", {"plan": "team"}, format="json"
    ).json()
    assert preview["effective"] == "now"
    # 20 of 30 days left: -6.67 + 26.67 = 20.00
    assert [x["amount"] for x in preview["lines"]] == ["-6.67", "26.67"]
    assert preview["amount_due"] == "20.00"
    t.advance(admin_api, clock.pk, "2026-04-12T00:00:00+00:00")
    changed = t.change(storefront, sub_id, plan="team", proration_date=preview["proration_date"])
    assert changed.status_code == 200, changed.content
    assert changed.json()["plan"] == "team"
    upgrade = Invoice.objects.get(billing_reason="subscription_update")
    assert upgrade.total_minor == 2000
    assert upgrade.status == "paid"


def test_downgrade_waits_for_the_period_end(storefront, admin_api, db):
    t.plan("basic", 1000)
    t.plan("team", 4000)
    clock = t.clock("2026-04-01T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="team").json()["id"]
    body = t.change(storefront, sub_id, plan="basic").json()
    assert body["plan"] == "team"
    assert body["pending_plan"] == "basic"
    t.advance(admin_api, clock.pk, "2026-05-01T00:00:00+00:00")
    sub = storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()
    assert sub["plan"] == "basic"
    assert sub["pending_plan"] is None
    renewal = Invoice.objects.get(billing_reason="subscription_cycle")
    assert renewal.total_minor == 1000


def test_cancel_at_period_end_resume_and_cancel_now(storefront, admin_api, db):
    t.plan("pro", 2900)
    clock = t.clock("2026-04-01T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="pro").json()["id"]
    url = f"/api/v1/billing/subscriptions/{sub_id}"
    pending = storefront.post(f"{url}/cancel", {"at_period_end": True}, format="json").json()
    assert pending["cancel_at_period_end"] is True
    assert pending["status"] == "active"
    resumed = storefront.post(f"{url}/resume", format="json").json()
    assert resumed["cancel_at_period_end"] is False
    storefront.post(f"{url}/cancel", {"at_period_end": True}, format="json")
    t.advance(admin_api, clock.pk, "2026-05-02T00:00:00+00:00")
    assert storefront.get(url).json()["status"] == "cancelled"
    assert Invoice.objects.filter(billing_reason="subscription_cycle").count() == 0
    # cancelling again is idempotent
    again = storefront.post(f"{url}/cancel", {"at_period_end": False}, format="json")
    assert again.status_code == 200
    assert again.json()["status"] == "cancelled"


def test_refund_creates_a_credit_note_and_refuses_more_than_paid(storefront, admin_api, pro):
    t.customer("u-1")
    invoice_id = t.subscribe(storefront, customer_id="u-1", plan="pro").json()["latest_invoice"]
    url = f"/api/v1/admin/billing/invoices/{invoice_id}/refund"
    part = admin_api.post(url, {"amount": "10.00"}, format="json", HTTP_IDEMPOTENCY_KEY="r1")
    assert part.status_code == 201, part.content
    assert part.json()["amount"] == "10.00"
    too_much = admin_api.post(url, {"amount": "19.01"}, format="json", HTTP_IDEMPOTENCY_KEY="r2")
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "refund_exceeds_payment"
    rest = admin_api.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="r3")
    assert rest.json()["amount"] == "19.00"


def test_test_clock_cannot_move_back(admin_api, db):
    clock = admin_api.post(
        "/api/v1/admin/billing/test-clocks", {"frozen_time": "2026-01-01T00:00:00Z"}, format="json"
    ).json()
    assert clock["status"] == "ready"
    back = admin_api.post(
        f"/api/v1/admin/billing/test-clocks/{clock['id']}/advance",
        {"frozen_time": "2025-12-31T00:00:00Z"},
        format="json",
    )
    assert back.status_code == 400
    assert "frozen_time" in back.json()["error"]["fields"]


def test_test_clocks_are_404_when_off(admin_api, settings):
    settings.BILLING_TEST_CLOCKS_ENABLED = False
    response = admin_api.post(
        "/api/v1/admin/billing/test-clocks", {"frozen_time": "2026-01-01T00:00:00Z"}, format="json"
    )
    assert response.status_code == 404


def test_grace_keeps_features_for_three_days_then_the_default_plan(storefront, admin_api, db):
    from billing import selectors
    from billing.models import OutboxEvent

    t.plan("free", 0, is_default=True)
    t.plan("pro", 2900)
    clock = t.clock("2026-01-10T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    t.subscribe(storefront, customer_id="u-1", plan="pro")
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_chargeDeclined"}, format="json"
    )
    t.advance(admin_api, clock.pk, "2026-02-10T00:00:00+00:00")
    access = selectors.access_plan("u-1")
    assert (access.plan.code, access.source) == ("pro", "grace")
    assert access.until.isoformat().startswith("2026-02-13")
    t.advance(admin_api, clock.pk, "2026-02-13T00:00:01+00:00")
    access = selectors.access_plan("u-1")
    assert (access.plan.code, access.source) == ("free", "default")
    assert SubscriptionTransition.objects.filter(reason="grace_ended").count() == 1
    ended = OutboxEvent.objects.filter(type="subscription.updated", payload__access="default")
    assert ended.count() == 1
    assert ended.get().occurred_at.isoformat().startswith("2026-02-13T00:00:00")
    # paying again gives the plan back
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_visa"}, format="json"
    )
    access = selectors.access_plan("u-1")
    assert (access.plan.code, access.source) == ("pro", "subscription")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/billing/subscriptions/not-a-uuid",
        "/api/v1/billing/invoices/not-a-uuid",
        "/api/v1/billing/subscriptions/00000000-0000-0000-0000-000000000000",
    ],
)
def test_malformed_or_unknown_ids_are_404(storefront, path):
    response = storefront.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"].endswith("_not_found")


def test_malformed_test_clock_id_is_404(admin_api):
    response = admin_api.get("/api/v1/admin/billing/test-clocks/not-a-uuid")
    assert response.status_code == 404


def test_a_declined_upgrade_keeps_a_scheduled_downgrade(storefront, admin_api, db):
    t.plan("basic", 1000)
    t.plan("pro", 2900)
    t.plan("team", 4000)
    clock = t.clock("2026-04-01T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan="pro").json()["id"]
    assert t.change(storefront, sub_id, plan="basic").json()["pending_plan"] == "basic"
    storefront.put(
        "/api/v1/billing/customers/u-1", {"payment_method": "pm_card_chargeDeclined"}, format="json"
    )
    declined = t.change(storefront, sub_id, plan="team")
    assert declined.status_code == 402
    sub = storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()
    assert (sub["plan"], sub["pending_plan"]) == ("pro", "basic")


@pytest.mark.parametrize(("start", "target"), [("monthly", "yearly"), ("yearly", "team")])
def test_a_change_to_another_interval_waits_for_the_period_end(
    storefront, admin_api, db, start, target
):
    t.plan("monthly", 2900)
    t.plan("yearly", 49900, interval="year")
    t.plan("team", 4999)
    clock = t.clock("2026-01-01T00:00:00+00:00")
    t.customer("u-1", test_clock=clock)
    sub_id = t.subscribe(storefront, customer_id="u-1", plan=start).json()["id"]
    t.advance(admin_api, clock.pk, "2026-03-15T00:00:00+00:00")
    preview = storefront.post(
        f"/api/v1/billing/subscriptions/{sub_id}/preview-change", {"plan": target}, format="json"
    ).json()
    assert (preview["effective"], preview["amount_due"]) == ("period_end", "0.00")
    changed = t.change(storefront, sub_id, plan=target)
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["plan"], body["pending_plan"]) == (start, target)
    end = body["current_period_end"]
    t.advance(admin_api, clock.pk, end)
    sub = storefront.get(f"/api/v1/billing/subscriptions/{sub_id}").json()
    assert sub["plan"] == target
    # the new interval counts from the change: its first period starts at the old end
    assert sub["current_period_start"] == end
