"""Multi-account farming: hashed identities, flag or block, identity-counted per-customer
limits (raced), and the return-rate flag."""

import json

import pytest
from django.test import override_settings

from coupons import services
from coupons.abuse import identity
from coupons.abuse.models import AbuseAlert, AlertKind, IdentityUse
from coupons.engine.types import Cart, Line, Shopper
from coupons.models import Redemption
from coupons.tests.factories import CouponFactory
from tests.race import race, unexpected

CART = Cart(currency="USD", lines=(Line("SKU-1", "books", 4000, 1),))
_orders = iter(range(10**9))


def apply(code: str, customer: str, **context) -> services.ApplyResult:
    return services.redemption_apply(
        codes=[code],
        shopper=Shopper(id=customer),
        cart=CART,
        order_id=f"o-{next(_orders)}",
        context=context,
    )


def reason(result) -> str:
    return "applied" if result.rejection is None else result.rejection.reason


def test_email_normalisation_and_hashing():
    same = identity.digest("email", "John.Doe+promo@GoogleMail.com")
    assert same == identity.digest("email", " johndoe@gmail.com ")
    assert same != identity.digest("email", "johndoe@example.com")
    assert identity.digest("ip", "2001:db8::1") == identity.digest("ip", "2001:0db8:0::1")
    assert len(same) == 64
    assert "john" not in same


@pytest.mark.django_db(transaction=True)
def test_same_card_on_a_first_purchase_coupon_is_flagged_and_stored_hashed():
    coupon = CouponFactory(code="WELCOME", first_purchase_only=True)
    assert (
        reason(
            apply(
                "WELCOME",
                "alice",
                payment_fingerprint="card-123",
                email="Alice.Smith@example.com",
                ip="203.0.113.9",
            )
        )
        == "applied"
    )
    assert not AbuseAlert.objects.exists()
    # A "new" account with the same card: allowed (coupon flags), but flagged.
    assert reason(apply("WELCOME", "alice2", payment_fingerprint="card-123")) == "applied"
    alert = AbuseAlert.objects.get()
    assert alert.kind == AlertKind.MULTI_ACCOUNT
    assert alert.coupon == coupon
    assert alert.details == {"identity": "payment", "customers": ["alice", "alice2"]}
    # A third account with the same card counts up the same alert.
    apply("WELCOME", "alice3", payment_fingerprint="card-123")
    assert AbuseAlert.objects.get().occurrences == 2
    # Nothing raw is stored: not in the redemption's context, not in the identities.
    stored = json.dumps(list(Redemption.objects.values_list("context", flat=True)))
    assert "card-123" not in stored
    assert "Alice" not in stored
    assert "203.0.113.9" not in stored
    first = Redemption.objects.get(customer__external_id="alice").context
    assert set(first) == {"payment_fingerprint", "email", "ip"}
    assert first["email"] == identity.digest("email", "alicesmith@example.com")
    assert IdentityUse.objects.filter(kind="payment").count() == 3
    assert all(len(d) == 64 for d in IdentityUse.objects.values_list("digest", flat=True))


@pytest.mark.django_db(transaction=True)
def test_block_mode_refuses_with_a_reason_code_and_still_flags():
    CouponFactory(code="FIRSTONLY", first_purchase_only=True, farming_action="block")
    assert reason(apply("FIRSTONLY", "bob", email="bob.b+1@gmail.com")) == "applied"
    result = apply("FIRSTONLY", "bob-alt", email="BobB@gmail.com")
    assert reason(result) == "multi_account_suspected"
    assert Redemption.objects.filter(customer__external_id="bob-alt").count() == 0
    assert AbuseAlert.objects.get().details["customers"] == ["bob", "bob-alt"]
    # A different person is fine.
    assert reason(apply("FIRSTONLY", "carol", email="carol@example.com")) == "applied"


@pytest.mark.django_db(transaction=True)
def test_released_redemptions_free_the_identity():
    CouponFactory(code="ONCE", max_uses_per_user=1, farming_action="block")
    first = apply("ONCE", "dan", device_id="dev-1")
    services.order_release(order_id=first.redemptions[0].order_id)
    assert reason(apply("ONCE", "dan-alt", device_id="dev-1")) == "applied"


@pytest.mark.django_db(transaction=True)
def test_coupons_that_allow_repeat_use_are_not_checked():
    CouponFactory(code="EVERYDAY")
    apply("EVERYDAY", "eve", payment_fingerprint="card-9")
    assert reason(apply("EVERYDAY", "eve2", payment_fingerprint="card-9")) == "applied"
    assert not AbuseAlert.objects.exists()
    assert not IdentityUse.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_identity_limit_stops_a_new_account_with_the_same_card():
    CouponFactory(code="PERCARD", max_uses_per_user=1, limit_by_identity=True)
    assert reason(apply("PERCARD", "fay", payment_fingerprint="card-7")) == "applied"
    assert (
        reason(apply("PERCARD", "fay-new", payment_fingerprint="card-7"))
        == "customer_limit_reached"
    )
    assert reason(apply("PERCARD", "gus", payment_fingerprint="card-8")) == "applied"


@pytest.mark.django_db(transaction=True)
def test_identity_limit_holds_when_new_accounts_race():
    coupon = CouponFactory(code="RACECARD", max_uses_per_user=1, limit_by_identity=True)
    outcomes = race(
        lambda n: apply("RACECARD", f"farm-{n}", payment_fingerprint="card-X"),
        range(30),
        workers=30,
    )
    assert not unexpected(outcomes), unexpected(outcomes)
    reasons = [reason(o.value) for o in outcomes]
    assert reasons.count("applied") == 1, reasons
    assert set(reasons) == {"applied", "customer_limit_reached"}
    assert Redemption.objects.filter(coupon=coupon).count() == 1


@pytest.mark.django_db(transaction=True)
@override_settings(ABUSE_RETURN_MIN_ORDERS=10, ABUSE_RETURN_RATE_THRESHOLD=0.30)
def test_return_rate_above_threshold_flags_the_coupon():
    coupon = CouponFactory(code="HALFOFF")
    orders = []
    for n in range(10):
        result = apply("HALFOFF", f"r-{n}")
        order_id = result.redemptions[0].order_id
        services.order_confirm(order_id=order_id)
        orders.append(order_id)
    for order_id in orders[:3]:  # 30%: not above the threshold
        services.order_return(order_id=order_id)
    assert not AbuseAlert.objects.filter(kind=AlertKind.RETURN_RATE).exists()
    services.order_return(order_id=orders[3])  # 40%
    alert = AbuseAlert.objects.get(kind=AlertKind.RETURN_RATE)
    assert alert.coupon == coupon
    assert alert.details == {"confirmed": 10, "returned": 4, "rate": 0.4}
    services.order_return(order_id=orders[3])  # a repeated return changes nothing
    assert AbuseAlert.objects.get(kind=AlertKind.RETURN_RATE).occurrences == 1


@pytest.mark.django_db(transaction=True)
@override_settings(ABUSE_RETURN_MIN_ORDERS=10)
def test_return_rate_waits_for_enough_orders():
    CouponFactory(code="FEW")
    result = apply("FEW", "few-1")
    services.order_confirm(order_id=result.redemptions[0].order_id)
    services.order_return(order_id=result.redemptions[0].order_id)  # 100% of one order
    assert not AbuseAlert.objects.exists()
