"""POST /api/v1/coupons/validate through HTTP: API.md's body shapes, multi-code stacking,
customer resolution and authentication, read-only behaviour, cache invalidation."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from coupons import selectors
from coupons.models import Coupon, Redemption
from coupons.tests.factories import CodeFactory, CouponFactory, CustomerFactory
from tests.support import cart, customer_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/coupons/validate"
CART_150 = cart(("SKU-1", "electronics", "50.00", 3), shipping="7.99", subtotal="150.00")


def validate(client, **body):
    body.setdefault("cart", CART_150)
    return client.post(URL, body, format="json")


@pytest.fixture
def summer25(db):
    return CouponFactory(
        code="SUMMER25", percent_bp=2500, cap_minor=5000, stackable=True, stack_group="percentage"
    )


def test_valid_body_shape(storefront, summer25):
    # when
    response = validate(storefront, coupon_code="SUMMER25", user_id="u-1")
    # then
    assert response.status_code == 200
    body = response.json()
    assert {"valid", "discount", "type", "message", "coupons", "lines", "shipping_discount"} <= set(
        body
    )
    assert body["valid"] is True
    assert body["discount"] == "37.50"
    assert body["type"] == "percentage"
    assert body["message"] == "25% off (max $50.00)"
    assert body["shipping_discount"] == "0.00"
    assert body["lines"] == [{"sku": "SKU-1", "discount": "37.50"}]
    assert len(body["coupons"]) == 1
    assert body["coupons"][0]["code"] == "SUMMER25"
    assert body["coupons"][0]["discount"] == "37.50"
    assert body["coupons"][0]["type"] == "percentage"


def test_cap_applies_through_the_api(storefront, summer25):
    response = validate(
        storefront, coupon_code="SUMMER25", cart=cart(("TV", "electronics", "400.00", 1))
    )
    assert response.json()["discount"] == "50.00"


def test_json_numbers_are_read_as_decimals(storefront, summer25):
    # given prices as JSON numbers, as the seed's example sends them
    response = storefront.post(
        URL,
        '{"coupon_code": "SUMMER25", "cart": {"currency": "USD", "subtotal": 150.00,'
        ' "items": [{"sku": "SKU-1", "category": "electronics", "unit_price": 50.00,'
        ' "quantity": 3}]}}',
        content_type="application/json",
    )
    assert response.status_code == 200
    assert response.json()["discount"] == "37.50"


def test_code_is_case_insensitive(storefront, summer25):
    response = validate(storefront, coupon_code="  summer25 ")
    assert response.json()["valid"] is True


def test_invalid_body_shape(storefront):
    # given an expired coupon
    CouponFactory(
        code="OLD",
        valid_from=timezone.now() - timedelta(days=10),
        valid_to=timezone.now() - timedelta(days=1),
    )
    # when
    response = validate(storefront, coupon_code="OLD")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert body["reason"] == "coupon_expired"
    assert body["message"] == "Coupon expired"
    assert body["code"] == "OLD"


def test_unknown_code(storefront):
    body = validate(storefront, coupon_code="NOPE").json()
    assert (body["valid"], body["reason"], body["code"]) == (False, "coupon_not_found", "NOPE")


def test_expired_and_below_minimum_reports_expired(storefront):
    CouponFactory(
        code="OLDMIN",
        min_cart_minor=1_000_00,
        valid_from=timezone.now() - timedelta(days=10),
        valid_to=timezone.now() - timedelta(days=1),
    )
    assert validate(storefront, coupon_code="OLDMIN").json()["reason"] == "coupon_expired"


def test_min_cart_not_met_message(storefront):
    CouponFactory(code="MIN200", min_cart_minor=20000)
    body = validate(storefront, coupon_code="MIN200").json()
    assert body["reason"] == "min_cart_value_not_met"
    assert body["message"] == "Add $50.00 more to use this coupon (minimum $200.00)"


def test_inactive_code(storefront):
    CodeFactory(code="STOPPED", active=False)
    assert validate(storefront, coupon_code="STOPPED").json()["reason"] == "coupon_inactive"


def test_currency_mismatch(storefront):
    CouponFactory(code="EURO10", currency="EUR")
    assert validate(storefront, coupon_code="EURO10").json()["reason"] == "currency_mismatch"


def test_excluded_sku_gets_no_discount(storefront):
    CouponFactory(code="NOGIFT", percent_bp=2500, excluded_skus=["SKU-GIFT-CARD"])
    body = validate(
        storefront,
        coupon_code="NOGIFT",
        cart=cart(("SKU-1", "electronics", "100.00", 1), ("SKU-GIFT-CARD", "gift", "50.00", 1)),
    ).json()
    assert body["discount"] == "25.00"
    assert body["lines"] == [
        {"sku": "SKU-1", "discount": "25.00"},
        {"sku": "SKU-GIFT-CARD", "discount": "0.00"},
    ]


def test_jpy_cart(storefront):
    CouponFactory(code="YEN10", currency="JPY", percent_bp=1000)
    body = validate(
        storefront, coupon_code="YEN10", cart=cart(("SKU-1", "books", "999", 1), currency="JPY")
    ).json()
    assert body["discount"] == "100"
    assert body["shipping_discount"] == "0"


# --- several codes ----------------------------------------------------------------------


@pytest.fixture
def freeship(db):
    return CouponFactory(
        code="FREESHIP",
        type="free_shipping",
        percent_bp=None,
        stackable=True,
        stack_group="shipping",
    )


def test_multi_code_stack(storefront, summer25, freeship):
    response = validate(storefront, coupon_codes=["SUMMER25", "FREESHIP"])
    body = response.json()
    assert body["valid"] is True
    assert body["discount"] == "37.50"
    assert body["shipping_discount"] == "7.99"
    assert {c["code"]: c["discount"] for c in body["coupons"]} == {
        "SUMMER25": "37.50",
        "FREESHIP": "0.00",
    }


def test_coupon_code_and_coupon_codes_together(storefront, summer25, freeship):
    body = validate(storefront, coupon_code="SUMMER25", coupon_codes=["FREESHIP"]).json()
    assert body["valid"] is True
    assert len(body["coupons"]) == 2


def test_same_code_twice_is_one_code(storefront, summer25):
    body = validate(storefront, coupon_codes=["SUMMER25", "summer25"]).json()
    assert body["valid"] is True
    assert body["discount"] == "37.50"
    assert len(body["coupons"]) == 1


def test_multi_code_group_conflict_names_the_code(storefront, summer25):
    CouponFactory(code="FALL20", percent_bp=2000, stackable=True, stack_group="percentage")
    body = validate(storefront, coupon_codes=["SUMMER25", "FALL20"]).json()
    assert body["valid"] is False
    assert body["reason"] == "stack_group_conflict"
    assert body["code"] == "FALL20"


def test_multi_code_non_stackable(storefront, summer25):
    CouponFactory(code="SOLO", type="fixed", percent_bp=None, amount_minor=500)
    body = validate(storefront, coupon_codes=["SUMMER25", "SOLO"]).json()
    assert (body["valid"], body["reason"], body["code"]) == (False, "not_stackable", "SOLO")


def test_multi_code_best_order(storefront, summer25):
    # given 25% and $10 off, entered fixed first: the customer still gets $35 off $100
    CouponFactory(
        code="TENOFF",
        type="fixed",
        percent_bp=None,
        amount_minor=1000,
        stackable=True,
        stack_group="fixed",
    )
    body = validate(
        storefront,
        coupon_codes=["TENOFF", "SUMMER25"],
        cart=cart(("SKU-1", "electronics", "100.00", 1)),
    ).json()
    assert body["discount"] == "35.00"


# --- the customer -----------------------------------------------------------------------


def test_body_segments_count_with_an_api_key(storefront):
    CouponFactory(code="VIP", eligible_segments=["premium_members"])
    assert (
        validate(storefront, coupon_code="VIP", user_id="u-1").json()["reason"]
        == "segment_not_eligible"
    )
    body = validate(
        storefront, coupon_code="VIP", customer={"id": "u-1", "segments": ["premium_members"]}
    ).json()
    assert body["valid"] is True


def test_stored_segments_are_merged(storefront):
    CouponFactory(code="VIP", eligible_segments=["premium_members"])
    CustomerFactory(external_id="u-7", segments=["premium_members"])
    assert validate(storefront, coupon_code="VIP", user_id="u-7").json()["valid"] is True


def test_stored_orders_count_ends_first_purchase(storefront):
    CouponFactory(code="WELCOME", first_purchase_only=True)
    CustomerFactory(external_id="u-8", orders_count=1)
    assert (
        validate(storefront, coupon_code="WELCOME", user_id="u-8").json()["reason"]
        == "first_purchase_only"
    )
    assert validate(storefront, coupon_code="WELCOME", user_id="u-9").json()["valid"] is True


def test_customer_required(storefront):
    CouponFactory(code="ONEEACH", max_uses_per_user=1)
    assert validate(storefront, coupon_code="ONEEACH").json()["reason"] == "customer_required"


def test_bound_code(storefront):
    owner = CustomerFactory(external_id="u-owner")
    CodeFactory(code="PERSONAL1", customer=owner)
    assert (
        validate(storefront, coupon_code="PERSONAL1", user_id="u-thief").json()["reason"]
        == "code_bound_to_other_customer"
    )
    assert validate(storefront, coupon_code="PERSONAL1", user_id="u-owner").json()["valid"]


def test_limits_count_live_uses(storefront):
    # given a one-use coupon applied once
    CouponFactory(code="ONCE", max_uses_total=1)
    applied = storefront.post(
        "/api/v1/coupons/apply",
        {
            "coupon_code": "ONCE",
            "user_id": "u-1",
            "order_id": "o-1",
            "cart": CART_150,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-once",
    )
    assert applied.status_code == 200
    # then validate sees it at once
    assert (
        validate(storefront, coupon_code="ONCE", user_id="u-2").json()["reason"]
        == "usage_limit_reached"
    )


def test_per_customer_limit_counts_live_uses(storefront):
    CouponFactory(code="ONEEACH", max_uses_per_user=1)
    storefront.post(
        "/api/v1/coupons/apply",
        {
            "coupon_code": "ONEEACH",
            "user_id": "u-1",
            "order_id": "o-1",
            "cart": CART_150,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert (
        validate(storefront, coupon_code="ONEEACH", user_id="u-1").json()["reason"]
        == "customer_limit_reached"
    )
    assert validate(storefront, coupon_code="ONEEACH", user_id="u-2").json()["valid"] is True


def test_validate_is_read_only(storefront, summer25):
    for _ in range(3):
        assert validate(storefront, coupon_code="SUMMER25", user_id="u-1").json()["valid"]
    summer25.refresh_from_db()
    assert summer25.uses == 0
    assert not Redemption.objects.exists()


# --- authentication ---------------------------------------------------------------------


def test_customer_jwt_validates_for_itself(customer_client, summer25):
    response = validate(customer_client("u-1"), coupon_code="SUMMER25")
    assert response.status_code == 200
    assert response.json()["valid"] is True


def test_customer_jwt_with_same_body_customer(customer_client, summer25):
    response = validate(customer_client("u-1"), coupon_code="SUMMER25", customer={"id": "u-1"})
    assert response.status_code == 200


@pytest.mark.parametrize(
    "body", [{"customer": {"id": "u-2"}}, {"user_id": "u-2"}], ids=["customer", "user_id"]
)
def test_customer_jwt_for_another_customer_is_403(customer_client, summer25, body):
    response = validate(customer_client("u-1"), coupon_code="SUMMER25", **body)
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_customer_jwt_cannot_grant_itself_segments(customer_client):
    CouponFactory(code="VIP", eligible_segments=["premium_members"])
    body = validate(
        customer_client("u-1"),
        coupon_code="VIP",
        customer={"id": "u-1", "segments": ["premium_members"]},
    ).json()
    assert body["reason"] == "segment_not_eligible"


def test_customer_jwt_segments_claim_counts(summer25):
    CouponFactory(code="VIP", eligible_segments=["premium_members"])
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION="Bearer " + customer_token("u-1", segments=["premium_members"])
    )
    assert validate(client, coupon_code="VIP").json()["valid"] is True


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "x.y.z",
        "Bearer ",
        "Api-Key not-a-real-key",
        "Api-Key ",
    ],
    ids=["garbage-jwt", "empty-bearer", "unknown-key", "empty-key"],
)
def test_invalid_credentials_are_401(header, summer25):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = validate(client, coupon_code="SUMMER25")
    assert response.status_code == 401
    assert response.json()["error"]["code"]


def test_expired_jwt_is_401(summer25):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + customer_token("u-1", exp=1))
    response = validate(client, coupon_code="SUMMER25")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_jwt_signed_with_another_key_is_401(summer25):
    import jwt

    token = jwt.encode(
        {"sub": "u-1", "exp": 4_000_000_000},
        "another-key-of-enough-length-0123456789",
        algorithm="HS256",
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert validate(client, coupon_code="SUMMER25").status_code == 401


def test_jwt_without_exp_is_401(summer25):
    import jwt
    from django.conf import settings

    token = jwt.encode({"sub": "u-1"}, settings.JWT_SIGNING_KEY, algorithm="HS256")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert validate(client, coupon_code="SUMMER25").status_code == 401


def test_no_credentials_is_401(summer25):
    response = validate(APIClient(), coupon_code="SUMMER25")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "fields"}


def test_admin_only_key_cannot_validate(admin_api, summer25):
    response = validate(admin_api, coupon_code="SUMMER25")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


# --- cache ------------------------------------------------------------------------------


def test_admin_patch_invalidates_cached_definition(
    storefront, admin_api, summer25, django_capture_on_commit_callbacks
):
    # given validate has cached the definition in Redis
    assert validate(storefront, coupon_code="SUMMER25").json()["discount"] == "37.50"
    assert cache.get(selectors._rule_key(summer25.pk)) is not None
    # when the value changes through the admin API (committed: on_commit hooks run)
    with django_capture_on_commit_callbacks(execute=True):
        patched = admin_api.patch("/api/v1/admin/coupons/SUMMER25", {"value": 10}, format="json")
    assert patched.status_code == 200
    # then the next validate shows the new discount
    body = validate(storefront, coupon_code="SUMMER25").json()
    assert body["discount"] == "15.00"
    assert body["message"] == "10% off (max $50.00)"


def test_admin_deactivation_is_seen_immediately(
    storefront, admin_api, summer25, django_capture_on_commit_callbacks
):
    assert validate(storefront, coupon_code="SUMMER25").json()["valid"] is True
    with django_capture_on_commit_callbacks(execute=True):
        admin_api.patch("/api/v1/admin/coupons/SUMMER25", {"active": False}, format="json")
    assert validate(storefront, coupon_code="SUMMER25").json()["reason"] == "coupon_inactive"


def test_code_created_after_a_miss_is_found(
    storefront, admin_api, django_capture_on_commit_callbacks
):
    # given a miss is cached ("no such code")
    assert validate(storefront, coupon_code="LATER").json()["reason"] == "coupon_not_found"
    # when the coupon is created
    with django_capture_on_commit_callbacks(execute=True):
        created = admin_api.post(
            "/api/v1/admin/coupons",
            {"code": "LATER", "type": "percentage", "value": 10},
            format="json",
        )
    assert created.status_code == 201
    # then it validates at once
    assert validate(storefront, coupon_code="LATER").json()["valid"] is True
    assert Coupon.objects.filter(code="LATER").exists()
