"""Admin API for coupon definitions: the seed's JSON as is, stored in minor units and
basis points, read back, listed, patched (conditions merge), tiered and BOGO round trips."""

import datetime as dt

import pytest
from django.utils import timezone

from coupons.models import Code, Coupon
from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db

URL = "/api/v1/admin/coupons"

# The 004 seed's "Coupon definition", verbatim (JSON numbers included).
SEED_JSON = """{
"coupon_id": "SUMMER25",
"type": "percentage",
"value": 25,
"conditions": {
"min_cart_value": 100.00,
"eligible_categories": ["electronics", "clothing"],
"eligible_user_segments": ["premium_members"],
"first_purchase_only": false,
"max_uses_total": 10000,
"max_uses_per_user": 1,
"valid_from": "2026-03-01",
"valid_to": "2026-03-31",
"stackable": false,
"excluded_skus": ["SKU-GIFT-CARD"]
},
"discount_cap": 50.00
}"""


def create_seed(admin_api):
    return admin_api.generic("POST", URL, SEED_JSON, content_type="application/json")


def test_create_seed_definition(admin_api):
    # when
    response = create_seed(admin_api)
    # then
    assert response.status_code == 201, response.content
    coupon = Coupon.objects.get(code="SUMMER25")
    assert coupon.type == "percentage"
    assert coupon.percent_bp == 2500
    assert coupon.cap_minor == 5000
    assert coupon.min_cart_minor == 10000
    assert coupon.currency == "USD"
    assert coupon.eligible_categories == ["electronics", "clothing"]
    assert coupon.eligible_segments == ["premium_members"]
    assert coupon.excluded_skus == ["SKU-GIFT-CARD"]
    assert coupon.first_purchase_only is False
    assert coupon.max_uses_total == 10000
    assert coupon.max_uses_per_user == 1
    assert coupon.stackable is False
    assert coupon.uses == 0
    # and a public code of the same name
    assert Code.objects.get(code="SUMMER25").coupon_id == coupon.pk


def test_seed_window_is_whole_days_in_site_time(admin_api):
    create_seed(admin_api)
    coupon = Coupon.objects.get(code="SUMMER25")
    start = timezone.localtime(coupon.valid_from)
    end = timezone.localtime(coupon.valid_to)
    assert (start.date(), start.time()) == (dt.date(2026, 3, 1), dt.time(0, 0))
    # valid_to "2026-03-31" means through the end of that day
    assert end.date() == dt.date(2026, 3, 31)
    assert end.time() == dt.time(23, 59, 59, 999999)


def test_create_response_body(admin_api):
    body = create_seed(admin_api).json()
    assert body["coupon_id"] == body["code"] == "SUMMER25"
    assert body["type"] == "percentage"
    assert body["value"] == "25"
    assert body["discount_cap"] == "50.00"
    assert body["currency"] == "USD"
    conditions = body["conditions"]
    assert conditions["min_cart_value"] == "100.00"
    assert conditions["eligible_categories"] == ["electronics", "clothing"]
    assert conditions["eligible_user_segments"] == ["premium_members"]
    assert conditions["excluded_skus"] == ["SKU-GIFT-CARD"]
    assert conditions["max_uses_total"] == 10000
    assert conditions["max_uses_per_user"] == 1
    assert conditions["first_purchase_only"] is False
    assert conditions["stackable"] is False
    assert dt.datetime.fromisoformat(conditions["valid_to"]) == Coupon.objects.get().valid_to
    assert body["uses"] == 0


def test_created_seed_coupon_prices_the_seed_cart(admin_api, storefront, monkeypatch):
    # given the seed coupon, and a moment inside its window
    create_seed(admin_api)
    inside = dt.datetime(2026, 3, 31, 23, 0, tzinfo=dt.UTC)
    monkeypatch.setattr(timezone, "now", lambda: inside)
    # when a premium member validates a $150 electronics cart
    response = storefront.post(
        "/api/v1/coupons/validate",
        {
            "coupon_code": "SUMMER25",
            "customer": {"id": "u-1", "segments": ["premium_members"]},
            "cart": cart(
                ("SKU-1", "electronics", "50.00", 3), ("SKU-GIFT-CARD", "electronics", "25.00", 1)
            ),
        },
        format="json",
    )
    # then 25% of the eligible $150 (the gift card is excluded)
    body = response.json()
    assert body["valid"] is True, body
    assert body["discount"] == "37.50"


def test_get_by_code(admin_api):
    create_seed(admin_api)
    response = admin_api.get(f"{URL}/SUMMER25")
    assert response.status_code == 200
    assert response.json()["code"] == "SUMMER25"
    assert response.json()["value"] == "25"
    # case-insensitive like the checkout path
    assert admin_api.get(f"{URL}/summer25").status_code == 200


def test_list(admin_api):
    CouponFactory(code="BBB")
    CouponFactory(code="AAA", active=False)
    CouponFactory(code="CCC", type="fixed", percent_bp=None, amount_minor=500)
    body = admin_api.get(URL).json()
    assert body["count"] == 3
    assert [c["code"] for c in body["results"]] == ["AAA", "BBB", "CCC"]
    assert [c["code"] for c in admin_api.get(URL, {"active": "true"}).json()["results"]] == [
        "BBB",
        "CCC",
    ]
    assert [c["code"] for c in admin_api.get(URL, {"type": "fixed"}).json()["results"]] == ["CCC"]
    page = admin_api.get(URL, {"limit": 1, "offset": 1}).json()
    assert page["count"] == 3
    assert [c["code"] for c in page["results"]] == ["BBB"]


def test_patch_is_partial_and_conditions_merge(admin_api):
    create_seed(admin_api)
    # when only the minimum and the value change
    response = admin_api.patch(
        f"{URL}/SUMMER25", {"value": 30, "conditions": {"min_cart_value": "80.00"}}, format="json"
    )
    # then everything else stays as it was
    assert response.status_code == 200, response.content
    coupon = Coupon.objects.get(code="SUMMER25")
    assert coupon.percent_bp == 3000
    assert coupon.min_cart_minor == 8000
    assert coupon.cap_minor == 5000
    assert coupon.eligible_categories == ["electronics", "clothing"]
    assert coupon.eligible_segments == ["premium_members"]
    assert coupon.excluded_skus == ["SKU-GIFT-CARD"]
    assert coupon.max_uses_total == 10000
    assert coupon.max_uses_per_user == 1
    assert timezone.localtime(coupon.valid_to).date() == dt.date(2026, 3, 31)
    assert response.json()["conditions"]["eligible_categories"] == ["electronics", "clothing"]
    assert coupon.version == 2


def test_patch_can_clear_a_condition(admin_api):
    create_seed(admin_api)
    response = admin_api.patch(
        f"{URL}/SUMMER25",
        {"discount_cap": None, "conditions": {"max_uses_per_user": None}},
        format="json",
    )
    assert response.status_code == 200
    coupon = Coupon.objects.get(code="SUMMER25")
    assert coupon.cap_minor is None
    assert coupon.max_uses_per_user is None
    assert coupon.percent_bp == 2500


def test_patch_does_not_rename(admin_api):
    create_seed(admin_api)
    response = admin_api.patch(f"{URL}/SUMMER25", {"code": "WINTER25"}, format="json")
    assert response.status_code in (200, 400)
    assert Coupon.objects.filter(code="SUMMER25").exists()
    assert not Coupon.objects.filter(code="WINTER25").exists()


def test_tiered_round_trip(admin_api):
    definition = {
        "code": "SPEND",
        "type": "tiered",
        "tiers": [{"threshold": "100.00", "discount": "10.00"}, {"threshold": 200, "discount": 30}],
    }
    response = admin_api.post(URL, definition, format="json")
    assert response.status_code == 201, response.content
    coupon = Coupon.objects.get(code="SPEND")
    assert coupon.tiers == [
        {"threshold_minor": 10000, "discount_minor": 1000},
        {"threshold_minor": 20000, "discount_minor": 3000},
    ]
    assert admin_api.get(f"{URL}/SPEND").json()["tiers"] == [
        {"threshold": "100.00", "discount": "10.00"},
        {"threshold": "200.00", "discount": "30.00"},
    ]


def test_bogo_round_trip(admin_api):
    response = admin_api.post(
        URL,
        {"code": "B2G1", "type": "bogo", "bogo": {"buy": 2, "get": 1, "percent_off": 50}},
        format="json",
    )
    assert response.status_code == 201, response.content
    coupon = Coupon.objects.get(code="B2G1")
    assert (coupon.bogo_buy, coupon.bogo_get, coupon.bogo_percent_bp) == (2, 1, 5000)
    assert response.json()["bogo"] == {"buy": 2, "get": 1, "percent_off": "50"}


def test_bogo_defaults_to_free(admin_api):
    response = admin_api.post(
        URL, {"code": "BOGO", "type": "bogo", "bogo": {"buy": 1, "get": 1}}, format="json"
    )
    assert response.status_code == 201
    assert Coupon.objects.get(code="BOGO").bogo_percent_bp == 10_000
    assert response.json()["bogo"]["percent_off"] == "100"


def test_fixed_and_free_shipping_and_extras(admin_api):
    fixed = admin_api.post(
        URL,
        {
            "code": "TENOFF",
            "type": "fixed",
            "value": "10.00",
            "stack_group": "fixed",
            "stackable": True,
            "auto_apply": True,
            "active": False,
        },
        format="json",
    )
    assert fixed.status_code == 201, fixed.content
    coupon = Coupon.objects.get(code="TENOFF")
    assert coupon.amount_minor == 1000
    assert coupon.percent_bp is None
    assert (coupon.stack_group, coupon.stackable, coupon.auto_apply, coupon.active) == (
        "fixed",
        True,
        True,
        False,
    )
    assert fixed.json()["value"] == "10.00"
    ship = admin_api.post(URL, {"code": "FREESHIP", "type": "free_shipping"}, format="json")
    assert ship.status_code == 201, ship.content
    assert Coupon.objects.get(code="FREESHIP").type == "free_shipping"


def test_currency_sets_the_minor_units(admin_api):
    response = admin_api.post(
        URL, {"code": "YEN500", "type": "fixed", "value": 500, "currency": "jpy"}, format="json"
    )
    assert response.status_code == 201, response.content
    coupon = Coupon.objects.get(code="YEN500")
    assert (coupon.currency, coupon.amount_minor) == ("JPY", 500)
    assert response.json()["value"] == "500"


@pytest.mark.parametrize(
    ("value", "bp", "shown"),
    [
        (25, 2500, "25"),
        (10, 1000, "10"),
        (20, 2000, "20"),
        (50, 5000, "50"),
        (100, 10_000, "100"),
        ("12.5", 1250, "12.5"),
        ("33.33", 3333, "33.33"),
        ("0.5", 50, "0.5"),
    ],
)
def test_percent_value_round_trip(admin_api, value, bp, shown):
    response = admin_api.post(
        URL, {"code": "PCT", "type": "percentage", "value": value}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Coupon.objects.get(code="PCT").percent_bp == bp
    assert response.json()["value"] == shown
    assert admin_api.get(f"{URL}/PCT").json()["value"] == shown


def test_fractional_percent(admin_api):
    response = admin_api.post(
        URL, {"code": "THIRD", "type": "percentage", "value": "33.33"}, format="json"
    )
    assert response.status_code == 201
    assert Coupon.objects.get(code="THIRD").percent_bp == 3333


def test_code_is_upper_cased(admin_api):
    response = admin_api.post(
        URL, {"code": "summer10", "type": "percentage", "value": 10}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["code"] == "SUMMER10"
    assert Code.objects.filter(code="SUMMER10").exists()


def test_create_with_idempotency_key_replays(admin_api):
    first = admin_api.post(
        URL,
        {"code": "ONCE", "type": "percentage", "value": 10},
        format="json",
        HTTP_IDEMPOTENCY_KEY="create-1",
    )
    second = admin_api.post(
        URL,
        {"code": "ONCE", "type": "percentage", "value": 10},
        format="json",
        HTTP_IDEMPOTENCY_KEY="create-1",
    )
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Coupon.objects.filter(code="ONCE").count() == 1
