"""POST /api/v1/coupons/apply and the order lifecycle (confirm / release / return /
expiry) through HTTP, with idempotency and customer authentication."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from coupons.models import Code, Coupon, Customer, Redemption
from coupons.tasks import expire_stale_reservations
from coupons.tests.factories import CouponFactory
from tests.support import cart, customer_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/coupons/apply"
CART_150 = cart(("SKU-1", "electronics", "50.00", 3), shipping="7.99", subtotal="150.00")
_keys = iter(range(10**9))


def apply(client, key: str | None = "auto", **body):
    body.setdefault("cart", CART_150)
    body.setdefault("order_id", "o-1")
    headers = {}
    if key == "auto":
        key = f"key-{next(_keys)}"
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(URL, body, format="json", **headers)


def order(client, order_id: str, action: str, **kw):
    return client.post(f"/api/v1/orders/{order_id}/{action}", format="json", **kw)


@pytest.fixture
def summer25(db):
    return CouponFactory(
        code="SUMMER25", percent_bp=2500, cap_minor=5000, stackable=True, stack_group="percentage"
    )


def uses(coupon) -> int:
    coupon.refresh_from_db()
    return coupon.uses


def assert_error_body(response, status: int, code: str | None = None):
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


# --- apply ------------------------------------------------------------------------------


def test_apply_reserves(storefront, summer25):
    # when
    response = apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["applied"] is True
    assert body["discount"] == "37.50"
    assert body["order_id"] == "o-1"
    assert len(body["redemptions"]) == 1
    redemption = body["redemptions"][0]
    assert {"id", "code", "discount", "status", "expires_at"} <= set(redemption)
    assert redemption["code"] == "SUMMER25"
    assert redemption["discount"] == "37.50"
    assert redemption["status"] == "reserved"
    assert uses(summer25) == 1
    row = Redemption.objects.get(pk=redemption["id"])
    assert row.discount_minor == 3750
    assert row.order_value_minor == 15000
    assert row.customer.external_id == "u-1"
    assert row.lines == [{"sku": "SKU-1", "discount_minor": 3750}]
    assert abs((row.expires_at - timezone.now()) - timedelta(minutes=30)) < timedelta(minutes=1)


def test_apply_several_codes(storefront, summer25):
    freeship = CouponFactory(
        code="FREESHIP",
        type="free_shipping",
        percent_bp=None,
        stackable=True,
        stack_group="shipping",
    )
    response = apply(storefront, coupon_codes=["SUMMER25", "FREESHIP"], user_id="u-1")
    assert response.status_code == 200
    body = response.json()
    assert body["discount"] == "37.50"
    assert {r["code"] for r in body["redemptions"]} == {"SUMMER25", "FREESHIP"}
    assert uses(summer25) == 1
    assert uses(freeship) == 1


def test_apply_rejection_is_422(storefront):
    CouponFactory(
        code="OLD",
        valid_from=timezone.now() - timedelta(days=9),
        valid_to=timezone.now() - timedelta(days=1),
    )
    response = apply(storefront, coupon_code="OLD", user_id="u-1")
    assert response.status_code == 422
    body = response.json()
    assert body["applied"] is False
    assert body["reason"] == "coupon_expired"
    assert body["message"] == "Coupon expired"
    assert not Redemption.objects.exists()


def test_apply_unknown_code_is_422(storefront):
    response = apply(storefront, coupon_code="NOPE")
    assert response.status_code == 422
    assert response.json()["reason"] == "coupon_not_found"


def test_apply_rejection_in_a_stack_takes_nothing(storefront, summer25):
    CouponFactory(code="FALL20", percent_bp=2000, stackable=True, stack_group="percentage")
    response = apply(storefront, coupon_codes=["SUMMER25", "FALL20"], user_id="u-1")
    assert response.status_code == 422
    assert response.json()["reason"] == "stack_group_conflict"
    assert uses(summer25) == 0


def test_apply_over_the_total_limit_is_422(storefront):
    coupon = CouponFactory(code="ONCE", max_uses_total=1)
    assert apply(storefront, coupon_code="ONCE", order_id="o-1").status_code == 200
    response = apply(storefront, coupon_code="ONCE", order_id="o-2")
    assert response.status_code == 422
    assert response.json()["reason"] == "usage_limit_reached"
    assert uses(coupon) == 1


def test_apply_over_the_customer_limit_is_422(storefront):
    CouponFactory(code="ONEEACH", max_uses_per_user=1)
    assert (
        apply(storefront, coupon_code="ONEEACH", user_id="u-1", order_id="o-1").status_code == 200
    )
    response = apply(storefront, coupon_code="ONEEACH", user_id="u-1", order_id="o-2")
    assert response.status_code == 422
    assert response.json()["reason"] == "customer_limit_reached"
    assert (
        apply(storefront, coupon_code="ONEEACH", user_id="u-2", order_id="o-3").status_code == 200
    )


def test_apply_without_idempotency_key_is_400(storefront, summer25):
    response = apply(storefront, key=None, coupon_code="SUMMER25")
    error = assert_error_body(response, 400)
    assert "Idempotency-Key" in error["fields"]
    assert uses(summer25) == 0


def test_idempotency_key_too_long_is_400(storefront, summer25):
    response = apply(storefront, key="k" * 256, coupon_code="SUMMER25")
    assert_error_body(response, 400)
    assert uses(summer25) == 0


# --- idempotency ------------------------------------------------------------------------


def test_replay_returns_the_first_response(storefront, summer25):
    # given
    first = apply(storefront, key="k-1", coupon_code="SUMMER25", user_id="u-1")
    # when the same request is sent again with the same key
    second = apply(storefront, key="k-1", coupon_code="SUMMER25", user_id="u-1")
    # then
    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert uses(summer25) == 1
    assert Redemption.objects.count() == 1


def test_rejection_is_replayed_too(storefront):
    CouponFactory(
        code="OLD",
        valid_from=timezone.now() - timedelta(days=9),
        valid_to=timezone.now() - timedelta(days=1),
    )
    first = apply(storefront, key="k-422", coupon_code="OLD")
    second = apply(storefront, key="k-422", coupon_code="OLD")
    assert first.status_code == second.status_code == 422
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"


def test_same_key_different_body_is_409(storefront, summer25):
    apply(storefront, key="k-1", coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    response = apply(storefront, key="k-1", coupon_code="SUMMER25", user_id="u-1", order_id="o-2")
    assert_error_body(response, 409, "idempotency_key_reused")
    assert uses(summer25) == 1


def test_same_order_new_key_returns_existing_reservation(storefront, summer25):
    first = apply(storefront, key="k-1", coupon_code="SUMMER25", user_id="u-1")
    second = apply(storefront, key="k-2", coupon_code="SUMMER25", user_id="u-1")
    assert second.status_code == 200
    assert second.json()["redemptions"] == first.json()["redemptions"]
    assert second.json()["discount"] == "37.50"
    assert uses(summer25) == 1
    assert Redemption.objects.count() == 1


def test_same_order_other_code_is_409(storefront, summer25):
    CouponFactory(code="OTHER", percent_bp=1000)
    apply(storefront, coupon_code="SUMMER25", user_id="u-1")
    response = apply(storefront, coupon_code="OTHER", user_id="u-1")
    assert_error_body(response, 409)
    assert Redemption.objects.count() == 1


def test_apply_again_after_release_reserves_again(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    assert order(storefront, "o-1", "release").status_code == 200
    response = apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    assert response.status_code == 200
    assert response.json()["redemptions"][0]["status"] == "reserved"
    assert uses(summer25) == 1


# --- confirm / release / return ---------------------------------------------------------


def test_confirm(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    response = order(storefront, "o-1", "confirm")
    assert response.status_code == 200
    body = response.json()
    assert body["order_id"] == "o-1"
    assert body["status"] == "confirmed"
    assert [r["status"] for r in body["redemptions"]] == ["confirmed"]
    assert uses(summer25) == 1


def test_confirm_twice_is_200_both_times(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    first = order(storefront, "o-1", "confirm")
    second = order(storefront, "o-1", "confirm")
    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "confirmed"
    assert uses(summer25) == 1
    # the customer's first purchase was counted once
    assert Customer.objects.get(external_id="u-1").orders_count == 1


def test_confirm_ends_first_purchase_eligibility(storefront):
    CouponFactory(code="WELCOME", first_purchase_only=True)
    apply(storefront, coupon_code="WELCOME", user_id="u-1", order_id="o-1")
    order(storefront, "o-1", "confirm")
    response = apply(storefront, coupon_code="WELCOME", user_id="u-1", order_id="o-2")
    assert response.status_code == 422
    assert response.json()["reason"] == "first_purchase_only"


def test_release_gives_the_use_back(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    assert uses(summer25) == 1
    response = order(storefront, "o-1", "release")
    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert uses(summer25) == 0
    assert Code.objects.get(code="SUMMER25").uses == 0


def test_release_twice_gives_back_once(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    apply(storefront, coupon_code="SUMMER25", user_id="u-2", order_id="o-2")
    assert order(storefront, "o-1", "release").status_code == 200
    assert order(storefront, "o-1", "release").status_code == 200
    assert uses(summer25) == 1


def test_released_use_can_be_taken_by_another_order(storefront):
    coupon = CouponFactory(code="ONCE", max_uses_total=1)
    apply(storefront, coupon_code="ONCE", order_id="o-1")
    order(storefront, "o-1", "release")
    assert apply(storefront, coupon_code="ONCE", order_id="o-2").status_code == 200
    assert uses(coupon) == 1


def test_release_frees_the_customer_limit(storefront):
    CouponFactory(code="ONEEACH", max_uses_per_user=1)
    apply(storefront, coupon_code="ONEEACH", user_id="u-1", order_id="o-1")
    order(storefront, "o-1", "release")
    response = apply(storefront, coupon_code="ONEEACH", user_id="u-1", order_id="o-2")
    assert response.status_code == 200


def test_release_after_confirm_is_409(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    order(storefront, "o-1", "confirm")
    assert_error_body(order(storefront, "o-1", "release"), 409)
    assert uses(summer25) == 1
    assert Redemption.objects.get().status == "confirmed"


def test_confirm_after_release_is_409(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    order(storefront, "o-1", "release")
    assert_error_body(order(storefront, "o-1", "confirm"), 409)
    assert Redemption.objects.get().status == "released"


def test_return_on_reserved_order_is_409(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    assert_error_body(order(storefront, "o-1", "return"), 409)


def test_return_on_confirmed_order(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    order(storefront, "o-1", "confirm")
    first = storefront.post("/api/v1/orders/o-1/return", {"amount": "50.00"}, format="json")
    second = storefront.post("/api/v1/orders/o-1/return", {"amount": "50.00"}, format="json")
    assert first.status_code == second.status_code == 200
    row = Redemption.objects.get()
    assert row.returned_at is not None
    assert row.returned_minor == 5000
    assert row.status == "confirmed"
    assert uses(summer25) == 1


@pytest.mark.parametrize("action", ["confirm", "release", "return"])
def test_unknown_order_is_404(storefront, action):
    assert_error_body(order(storefront, "no-such-order", action), 404)


# --- reservation expiry -----------------------------------------------------------------


def test_expire_task_gives_the_use_back_once(storefront, summer25):
    # given a reservation past its hold and one still held
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-old")
    apply(storefront, coupon_code="SUMMER25", user_id="u-2", order_id="o-new")
    Redemption.objects.filter(order_id="o-old").update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert uses(summer25) == 2
    # when the beat job runs, twice
    assert expire_stale_reservations() == 1
    assert expire_stale_reservations() == 0
    # then the use came back exactly once
    assert uses(summer25) == 1
    assert Code.objects.get(code="SUMMER25").uses == 1
    assert Redemption.objects.get(order_id="o-old").status == "expired"
    assert Redemption.objects.get(order_id="o-new").status == "reserved"


def test_expired_reservation_cannot_be_confirmed_or_released_again(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    Redemption.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    expire_stale_reservations()
    assert_error_body(order(storefront, "o-1", "confirm"), 409)
    assert order(storefront, "o-1", "release").status_code == 200
    assert uses(summer25) == 0


def test_expire_does_not_touch_confirmed(storefront, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    order(storefront, "o-1", "confirm")
    Redemption.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert expire_stale_reservations() == 0
    assert uses(summer25) == 1


# --- customer tokens and scopes ---------------------------------------------------------


def test_customer_jwt_for_another_customer_is_403(customer_client, summer25):
    response = apply(customer_client("u-1"), coupon_code="SUMMER25", customer={"id": "u-2"})
    assert_error_body(response, 403)
    assert uses(summer25) == 0


def test_customer_jwt_without_body_customer_uses_sub(customer_client):
    coupon = CouponFactory(code="ONEEACH", max_uses_per_user=1)
    response = apply(customer_client("u-1"), coupon_code="ONEEACH")
    assert response.status_code == 200
    assert Redemption.objects.get().customer.external_id == "u-1"
    assert uses(coupon) == 1


def test_expired_jwt_is_401(summer25):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + customer_token("u-1", exp=1))
    assert_error_body(apply(client, coupon_code="SUMMER25"), 401)


def test_invalid_jwt_is_401(summer25):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    assert_error_body(apply(client, coupon_code="SUMMER25"), 401)


def test_no_credentials_is_401(summer25):
    assert_error_body(apply(APIClient(), coupon_code="SUMMER25"), 401)
    assert uses(summer25) == 0


def test_customer_jwt_cannot_confirm(storefront, customer_client, summer25):
    apply(storefront, coupon_code="SUMMER25", user_id="u-1", order_id="o-1")
    client = customer_client("u-1")
    for action in ("confirm", "release", "return"):
        assert_error_body(order(client, "o-1", action), 403)
    assert Redemption.objects.get().status == "reserved"


def test_admin_only_key_cannot_apply(admin_api, summer25):
    assert_error_body(apply(admin_api, coupon_code="SUMMER25"), 403)


def test_storefront_key_on_admin_endpoint_is_403(storefront):
    assert_error_body(storefront.get("/api/v1/admin/coupons"), 403)
    assert_error_body(
        storefront.post(
            "/api/v1/admin/coupons", {"code": "X", "type": "percentage", "value": 5}, format="json"
        ),
        403,
    )
    assert not Coupon.objects.filter(code="X").exists()


def test_customer_jwt_on_admin_endpoint_is_403(customer_client):
    assert_error_body(customer_client("u-1").get("/api/v1/admin/coupons"), 403)


def test_admin_endpoint_without_credentials_is_401(db):
    assert_error_body(APIClient().get("/api/v1/admin/coupons"), 401)


def test_confirm_counts_a_purchase_only_for_the_confirming_customer(storefront):
    # given u-1 applied to order o-reuse and released it, then u-2 applied to the same id
    from coupons.models import Customer
    from coupons.tests.factories import CouponFactory as _Coupon
    from tests.support import cart as _cart

    _Coupon(code="REUSE10")
    body = {
        "coupon_code": "REUSE10",
        "order_id": "o-reuse",
        "cart": _cart(("SKU-1", "books", "40.00", 1)),
    }
    first = storefront.post(
        "/api/v1/coupons/apply",
        {**body, "user_id": "u-1"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="reuse-1",
    )
    assert first.status_code == 200
    assert storefront.post("/api/v1/orders/o-reuse/release").status_code == 200
    second = storefront.post(
        "/api/v1/coupons/apply",
        {**body, "user_id": "u-2"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="reuse-2",
    )
    assert second.status_code == 200
    # when the order is confirmed
    assert storefront.post("/api/v1/orders/o-reuse/confirm").status_code == 200
    # then only u-2 has made a purchase
    counts = dict(Customer.objects.values_list("external_id", "orders_count"))
    assert counts == {"u-1": 0, "u-2": 1}
