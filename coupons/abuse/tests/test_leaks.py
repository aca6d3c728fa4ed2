"""Leaked public codes: disabled at N+1 unique customers within an hour (not before, not
for repeats, never for per-customer codes), alert + email, audit trail, staff re-enable."""

import pytest
from django.core import mail
from django.test import override_settings

from coupons import services
from coupons.abuse.models import AbuseAlert, AlertKind
from coupons.engine.types import Cart, Line, Shopper
from coupons.models import Code, Coupon
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db(transaction=True)

CART = Cart(currency="USD", lines=(Line("SKU-1", "books", 4000, 1),))
_orders = iter(range(10**9))


def apply(code: str, customer: str) -> services.ApplyResult:
    return services.redemption_apply(
        codes=[code], shopper=Shopper(id=customer), cart=CART, order_id=f"o-{next(_orders)}"
    )


def active(coupon: Coupon) -> bool:
    coupon.refresh_from_db()
    return coupon.active


def test_disables_at_n_plus_one_unique_customers_not_before():
    coupon = CouponFactory(code="LEAKY", leak_threshold=5)
    for n in range(5):
        assert apply("LEAKY", f"c-{n}").rejection is None
    # Repeat customers are not new unique redeemers.
    for n in range(5):
        assert apply("LEAKY", f"c-{n}").rejection is None
    assert active(coupon)
    assert not AbuseAlert.objects.exists()
    assert not mail.outbox

    assert apply("LEAKY", "c-5").rejection is None  # the sixth unique customer
    assert not active(coupon)
    assert "6 unique customers" in coupon.disabled_reason
    alert = AbuseAlert.objects.get()
    assert alert.kind == AlertKind.LEAKED_CODE
    assert alert.coupon == coupon
    assert alert.details["unique_customers"] == 6
    assert alert.details["threshold"] == 5
    assert len(mail.outbox) == 1
    assert "LEAKY" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["marketing@localhost"]
    # The automatic action is in the coupon's history, with its reason and no user.
    last = coupon.history.first()
    assert last.active is False
    assert last.history_user is None
    assert last.history_change_reason.startswith("Automatic: Leaked code")
    # And it takes effect: the next shopper is told the coupon is inactive.
    assert apply("LEAKY", "c-6").rejection.reason == "coupon_inactive"


@override_settings(ABUSE_LEAK_THRESHOLD=3)
def test_site_default_threshold_applies_without_an_override():
    coupon = CouponFactory(code="DEFAULTED")
    for n in range(3):
        apply("DEFAULTED", f"d-{n}")
    assert active(coupon)
    apply("DEFAULTED", "d-3")
    assert not active(coupon)


def test_per_customer_and_generated_codes_never_trigger_it():
    coupon = CouponFactory(code="PERSONAL", leak_threshold=2)
    from coupons.models import Customer

    for n in range(6):
        customer = Customer.objects.create(external_id=f"p-{n}")
        Code.objects.create(coupon=coupon, code=f"PERSONAL-{n}", customer=customer)
        assert apply(f"PERSONAL-{n}", f"p-{n}").rejection is None
    assert active(coupon)
    assert not AbuseAlert.objects.exists()


def test_staff_reenable_clears_the_reason_and_starts_the_count_over():
    coupon = CouponFactory(code="BACKAGAIN", leak_threshold=2)
    for n in range(3):
        apply("BACKAGAIN", f"b-{n}")
    assert not active(coupon)

    services.coupons_set_active(
        coupon_ids=[coupon.pk], active=True, who="alice", reason="Activated by alice"
    )
    coupon.refresh_from_db()
    assert coupon.active
    assert coupon.disabled_reason == ""
    assert coupon.disabled_at is None
    leak = AbuseAlert.objects.get(kind=AlertKind.LEAKED_CODE)
    assert leak.status == "reviewed"
    assert AbuseAlert.objects.get(kind=AlertKind.REENABLED).message == "Re-enabled by alice"
    # The old hour's customers no longer count: one new customer does not disable it.
    assert apply("BACKAGAIN", "b-new").rejection is None
    assert active(coupon)


def test_reenable_through_the_admin_form_path(admin_user):
    coupon = CouponFactory(code="FORMBACK", leak_threshold=1)
    apply("FORMBACK", "f-1")
    apply("FORMBACK", "f-2")
    assert not active(coupon)
    services.coupon_update(coupon_id=coupon.pk, fields={"active": True}, who="bob")
    coupon.refresh_from_db()
    assert coupon.active
    assert coupon.disabled_reason == ""
    assert AbuseAlert.objects.filter(kind=AlertKind.REENABLED).count() == 1


def test_racing_new_customers_disable_it_once(monkeypatch):
    from core import redis_guard
    from tests.race import race, unexpected

    # 30 threads on a busy 2-core box can make a Redis call slower than the guard's
    # "not answering" mark (0.2 s), which pauses leak counting for a second: that is the
    # frozen-Redis fault test's subject, not this one's (disabled once under a race).
    monkeypatch.setattr(redis_guard, "SLOW_SECONDS", 30.0)
    coupon = CouponFactory(code="RUSH", leak_threshold=10)
    outcomes = race(lambda n: apply("RUSH", f"rush-{n}"), range(30), workers=30)
    assert not unexpected(outcomes), unexpected(outcomes)
    assert not active(coupon)
    applied = [o.value for o in outcomes if o.value.rejection is None]
    assert len(applied) >= 11  # at least the N+1 that tripped it
    assert AbuseAlert.objects.filter(kind=AlertKind.LEAKED_CODE).count() == 1
    assert AbuseAlert.objects.get().occurrences == 1
    assert len(mail.outbox) == 1


def test_the_alert_email_is_queued_not_sent_inside_the_checkout(monkeypatch):
    from coupons.abuse import tasks

    queued = []
    monkeypatch.setattr(tasks.alert_email, "delay", lambda *args: queued.append(args))
    CouponFactory(code="QUEUED", leak_threshold=1)
    apply("QUEUED", "q-1")
    # when the second unique customer trips the detector
    assert apply("QUEUED", "q-2").rejection is None
    # then the checkout sent nothing itself: one task is queued for the alert's occurrence
    alert = AbuseAlert.objects.get(coupon__code="QUEUED")
    assert not mail.outbox
    assert queued == [(alert.pk, 1)]
    # and the task sends it once, however often it is delivered
    assert tasks.alert_email(alert.pk, 1) is True
    assert tasks.alert_email(alert.pk, 1) is False
    assert len(mail.outbox) == 1


def test_a_broker_outage_never_fails_the_checkout(monkeypatch):
    from coupons.abuse import tasks

    def down(*args):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.alert_email, "delay", down)
    coupon = CouponFactory(code="NOBROKER", leak_threshold=1)
    apply("NOBROKER", "b-1")
    assert apply("NOBROKER", "b-2").rejection is None
    assert not active(coupon)
    assert AbuseAlert.objects.filter(coupon=coupon).exists()


def test_a_failed_send_is_given_back_for_the_retry(monkeypatch):
    from coupons.abuse import services as abuse_services
    from coupons.abuse import tasks

    monkeypatch.setattr(tasks.alert_email, "delay", lambda *args: None)
    CouponFactory(code="SMTPDOWN", leak_threshold=1)
    apply("SMTPDOWN", "s-1")
    apply("SMTPDOWN", "s-2")
    alert = AbuseAlert.objects.get(coupon__code="SMTPDOWN")

    def refuse(*args, **kwargs):
        raise OSError("SMTP refused")

    monkeypatch.setattr(abuse_services, "send_mail", refuse)
    with pytest.raises(OSError, match="SMTP refused"):
        abuse_services.alert_email(alert_id=alert.pk, occurrence=1)
    monkeypatch.undo()
    assert abuse_services.alert_email(alert_id=alert.pk, occurrence=1) is True
    assert len(mail.outbox) == 1
