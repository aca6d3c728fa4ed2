"""Bad input is 400 with {"error": {"code", "message", "fields"}}, never a 500 (SPEC rule 4).
Also the error body on 405 and on unknown paths."""

import copy
import json
import time

import pytest

from coupons.models import Coupon, Redemption
from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db

VALIDATE = "/api/v1/coupons/validate"
APPLY = "/api/v1/coupons/apply"
EVALUATE = "/api/v1/promotions/evaluate"


def base_body() -> dict:
    return {
        "coupon_code": "SUMMER25",
        "user_id": "u-1",
        "order_id": "o-1",
        "cart": cart(("SKU-1", "electronics", "50.00", 3), shipping="7.99", subtotal="150.00"),
    }


def item(**kw) -> dict:
    return {"sku": "SKU-1", "category": "electronics", "unit_price": "50.00", "quantity": 3, **kw}


def with_cart(**changes) -> dict:
    body = base_body()
    body["cart"].pop("subtotal")
    body["cart"].update(changes)
    return body


def with_item(**changes) -> dict:
    return with_cart(items=[item(**changes)])


def without(*names) -> dict:
    body = base_body()
    for name in names:
        body.pop(name)
    return body


@pytest.fixture(autouse=True)
def summer25(db):
    return CouponFactory(code="SUMMER25", percent_bp=2500, cap_minor=5000)


@pytest.fixture(autouse=True)
def _server_errors_as_responses(storefront, admin_api):
    """A crash shows up as the 500 a real client would get, not as a test exception."""
    storefront.raise_request_exception = False
    admin_api.raise_request_exception = False


def assert_400(response, field: str | None = None):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["code"]
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    if field is not None:
        assert field in body["error"]["fields"], body
    return body["error"]


# (id, body, top-level field expected in error.fields or None)
JSON_CASES = [
    ("body-list", [base_body()], None),
    ("body-string", "SUMMER25", None),
    ("body-number", 42, None),
    ("body-null", None, None),
    ("missing-cart", without("cart"), "cart"),
    ("missing-code", without("coupon_code"), "coupon_code"),
    ("code-null", {**base_body(), "coupon_code": None}, "coupon_code"),
    ("code-blank", {**base_body(), "coupon_code": ""}, "coupon_code"),
    ("code-list", {**base_body(), "coupon_code": ["SUMMER25"]}, "coupon_code"),
    ("code-too-long", {**base_body(), "coupon_code": "X" * 65}, "coupon_code"),
    ("code-nul-char", {**base_body(), "coupon_code": "SUMMER\x0025"}, "coupon_code"),
    (
        "codes-11",
        {**without("coupon_code"), "coupon_codes": [f"C{i}" for i in range(11)]},
        "coupon_codes",
    ),
    ("codes-empty", {**without("coupon_code"), "coupon_codes": []}, "coupon_codes"),
    ("codes-not-list", {**without("coupon_code"), "coupon_codes": "SUMMER25"}, "coupon_codes"),
    ("cart-string", {**base_body(), "cart": "150.00"}, "cart"),
    ("cart-list", {**base_body(), "cart": [item()]}, "cart"),
    ("items-not-list", with_cart(items=item()), "cart"),
    ("items-empty", with_cart(items=[]), "cart"),
    ("items-missing", {**base_body(), "cart": {"currency": "USD"}}, "cart"),
    ("item-not-object", with_cart(items=["SKU-1"]), "cart"),
    ("currency-unknown", with_cart(currency="XYZ"), "cart"),
    ("currency-missing", {**base_body(), "cart": {"items": [item()]}}, "cart"),
    ("currency-number", with_cart(currency=840), "cart"),
    ("quantity-abc", with_item(quantity="abc"), "cart"),
    ("quantity-string-number", with_item(quantity="3"), "cart"),
    ("quantity-zero", with_item(quantity=0), "cart"),
    ("quantity-negative", with_item(quantity=-1), "cart"),
    ("quantity-fraction", with_item(quantity=1.5), "cart"),
    ("quantity-huge", with_item(quantity=10**30), "cart"),
    ("quantity-bool", with_item(quantity=True), "cart"),
    ("quantity-null", with_item(quantity=None), "cart"),
    ("price-true", with_item(unit_price=True), "cart"),
    ("price-negative", with_item(unit_price="-5.00"), "cart"),
    ("price-too-many-decimals", with_item(unit_price="10.001"), "cart"),
    ("price-abc", with_item(unit_price="abc"), "cart"),
    ("price-missing", with_cart(items=[{"sku": "SKU-1", "quantity": 1}]), "cart"),
    ("price-object", with_item(unit_price={"amount": "1.00"}), "cart"),
    ("price-1e30-string", with_item(unit_price="1e30"), "cart"),
    ("price-nan-string", with_item(unit_price="NaN"), "cart"),
    ("price-infinity-string", with_item(unit_price="Infinity"), "cart"),
    ("sku-missing", with_cart(items=[{"unit_price": "1.00", "quantity": 1}]), "cart"),
    ("sku-number", with_item(sku=123), "cart"),
    ("sku-blank", with_item(sku="  "), "cart"),
    ("sku-too-long", with_item(sku="S" * 101), "cart"),
    ("shipping-negative", with_cart(shipping="-1.00"), "cart"),
    ("shipping-decimals", with_cart(shipping="7.999"), "cart"),
    ("subtotal-mismatch", with_cart(subtotal="149.99"), "cart"),
    ("subtotal-garbage", with_cart(subtotal="lots"), "cart"),
    (
        "too-many-items",
        with_cart(items=[item(sku=f"S{i}", quantity=1) for i in range(501)]),
        "cart",
    ),
    ("customer-string", {**without("user_id"), "customer": "u-1"}, "customer"),
    ("customer-no-id", {**without("user_id"), "customer": {"segments": []}}, "customer"),
    (
        "customer-segments-string",
        {**without("user_id"), "customer": {"id": "u-1", "segments": "vip"}},
        "customer",
    ),
    (
        "customer-orders-negative",
        {**without("user_id"), "customer": {"id": "u-1", "orders_count": -1}},
        "customer",
    ),
    ("customer-id-differs", {**base_body(), "customer": {"id": "u-2"}}, "user_id"),
    ("user-id-list", {**base_body(), "user_id": ["u-1"]}, "user_id"),
    ("user-id-too-long", {**base_body(), "user_id": "u" * 101}, "user_id"),
    ("context-ip", {**base_body(), "context": {"ip": "not-an-ip"}}, "context"),
    ("context-string", {**base_body(), "context": "web"}, "context"),
]


# Codes are required by validate only: apply without codes reserves the auto promotions
# the evaluation chooses, and evaluate prices the cart with the promotions alone.
CODES_OPTIONAL = {"missing-code", "codes-empty"}
BODY_CASES = [
    pytest.param(url, c[1], c[2], id=f"{c[0]}-{name}")
    for c in JSON_CASES
    for name, url in (("validate", VALIDATE), ("apply", APPLY), ("evaluate", EVALUATE))
    if name == "validate" or c[0] not in CODES_OPTIONAL
]


@pytest.mark.parametrize(("url", "body", "field"), BODY_CASES)
def test_bad_json_body_is_400(storefront, url, body, field):
    response = storefront.post(
        url, copy.deepcopy(body), format="json", HTTP_IDEMPOTENCY_KEY="k-bad"
    )
    assert_400(response, field)
    assert not Redemption.objects.exists()


def test_too_many_items_names_the_limit(storefront):
    body = with_cart(items=[item(sku=f"S{i}", quantity=1) for i in range(501)])
    error = assert_400(storefront.post(VALIDATE, body, format="json"), "cart")
    assert "500" in json.dumps(error["fields"])


def test_500_items_are_accepted(storefront):
    body = with_cart(items=[item(sku=f"S{i}", quantity=1, unit_price="1.00") for i in range(500)])
    response = storefront.post(VALIDATE, body, format="json")
    assert response.status_code == 200
    assert response.json()["discount"] == "50.00"  # 25% of $500 capped at $50


def test_item_errors_point_at_the_item(storefront):
    body = with_cart(items=[item(), item(sku="SKU-2", quantity="abc")])
    error = assert_400(storefront.post(VALIDATE, body, format="json"), "cart")
    items = error["fields"]["cart"]["items"]
    assert items[0] == {}
    assert "quantity" in items[1]


def test_subtotal_mismatch_message(storefront):
    error = assert_400(
        storefront.post(VALIDATE, with_cart(subtotal="149.99"), format="json"), "cart"
    )
    assert "subtotal" in error["fields"]["cart"]


RAW_CASES = [
    ("malformed", '{"coupon_code": "SUMMER25", "cart": '),
    ("trailing-comma", '{"coupon_code": "SUMMER25",}'),
    ("single-quotes", "{'coupon_code': 'SUMMER25'}"),
    (
        "nan",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": "USD", '
        '"items": [{"sku": "A", "unit_price": NaN, "quantity": 1}]}}',
    ),
    (
        "infinity",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": "USD", '
        '"items": [{"sku": "A", "unit_price": Infinity, "quantity": 1}]}}',
    ),
    (
        "minus-infinity",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": '
        '"USD", "items": [{"sku": "A", "unit_price": -Infinity, "quantity": 1}]}}',
    ),
    (
        "number-1e30",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": "USD",'
        ' "items": [{"sku": "A", "unit_price": 1e30, "quantity": 1}]}}',
    ),
    (
        "number-1e999999",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": '
        '"USD", "items": [{"sku": "A", "unit_price": 1e999999, "quantity": 1}]}}',
    ),
    (
        "huge-int-quantity",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": '
        '"USD", "items": [{"sku": "A", "unit_price": "1.00", "quantity": ' + "9" * 40 + "}]}}",
    ),
    (
        "fraction-quantity",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": {"currency": '
        '"USD", "items": [{"sku": "A", "unit_price": "1.00", "quantity": 2.5'
        "}]}}",
    ),
    ("invalid-utf8", b'{"coupon_code": "\xff\xfe"}'),
    (
        "lone-surrogate-code",
        '{"coupon_code": "\\ud800", "order_id": "o-1", "cart": '
        '{"currency": "USD", "items": [{"sku": "A", "unit_price": "1.00", '
        '"quantity": 1}]}}',
    ),
    (
        "lone-surrogate-sku",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": '
        '{"currency": "USD", "items": [{"sku": "A\\ud800", "unit_price": '
        '"1.00", "quantity": 1}]}}',
    ),
    (
        "lone-surrogate-category",
        '{"coupon_code": "SUMMER25", "order_id": "o-1", "cart": '
        '{"currency": "USD", "items": [{"sku": "A", "category": '
        '"\\udfff", "unit_price": "1.00", "quantity": 1}]}}',
    ),
    ("empty-object", "{}"),
]


@pytest.mark.parametrize("url", [VALIDATE, APPLY], ids=["validate", "apply"])
@pytest.mark.parametrize("raw", [c[1] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES])
def test_bad_raw_body_is_400(storefront, url, raw):
    response = storefront.generic(
        "POST", url, raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-raw"
    )
    assert_400(response)


def test_enormous_exponent_quantity_is_rejected_fast(storefront):
    # a 60-byte body must not pin a worker: 1e300000 is not a quantity worth expanding
    raw = (
        '{"coupon_code": "SUMMER25", "cart": {"currency": "USD", "items": [{"sku": "A", '
        '"unit_price": "1.00", "quantity": 1e300000}]}}'
    )
    started = time.monotonic()
    response = storefront.generic("POST", VALIDATE, raw, content_type="application/json")
    elapsed = time.monotonic() - started
    assert_400(response, "cart")
    assert elapsed < 1.5, f"took {elapsed:.1f}s"


def test_malformed_json_code(storefront):
    response = storefront.generic(
        "POST", VALIDATE, '{"coupon_code": ', content_type="application/json"
    )
    assert assert_400(response)["code"] == "malformed_json"


def test_empty_body_is_400(storefront):
    response = storefront.generic("POST", VALIDATE, "", content_type="application/json")
    assert_400(response)


def test_non_json_content_type_is_an_error_body(storefront):
    response = storefront.generic(
        "POST", VALIDATE, "coupon_code=SUMMER25", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert set(response.json()["error"]) == {"code", "message", "fields"}


# --- apply-only input -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (without("order_id"), "order_id"),
        ({**base_body(), "order_id": ""}, "order_id"),
        ({**base_body(), "order_id": None}, "order_id"),
        ({**base_body(), "order_id": "o" * 101}, "order_id"),
        ({**base_body(), "order_id": {"id": 1}}, "order_id"),
    ],
    ids=["missing", "blank", "null", "too-long", "object"],
)
def test_apply_order_id_is_required(storefront, body, field, summer25):
    response = storefront.post(APPLY, body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert_400(response, field)
    summer25.refresh_from_db()
    assert summer25.uses == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"sku": "SKU\x00NUL"},
        {"category": "elec\x00tronics"},
    ],
    ids=["nul-in-sku", "nul-in-category"],
)
def test_apply_with_nul_characters_is_400_not_500(storefront, changes, summer25):
    body = with_item(**changes)
    body["order_id"] = "o-nul"
    response = storefront.post(APPLY, body, format="json", HTTP_IDEMPOTENCY_KEY="k-nul")
    assert_400(response)
    summer25.refresh_from_db()
    assert summer25.uses == 0


def test_apply_enormous_cart_total_is_400_not_500(storefront, summer25):
    # given ten lines at the largest accepted price and quantity: each value is accepted
    # alone, but the cart's total (10 * 10^13 * 10^5 minor units) overflows a bigint
    items = [item(sku=f"S{i}", unit_price="100000000000.00", quantity=100_000) for i in range(10)]
    body = with_cart(items=items)
    response = storefront.post(APPLY, body, format="json", HTTP_IDEMPOTENCY_KEY="k-huge")
    assert_400(response)
    summer25.refresh_from_db()
    assert summer25.uses == 0


def test_return_amount_bad_input(storefront):
    response = storefront.post("/api/v1/orders/o-1/return", {"amount": "abc"}, format="json")
    assert_400(response, "amount")


# --- admin definitions ------------------------------------------------------------------

ADMIN_CASES = [
    ("percent-150", {"code": "BAD", "type": "percentage", "value": 150}, "value"),
    ("percent-0", {"code": "BAD", "type": "percentage", "value": 0}, "value"),
    ("percent-missing", {"code": "BAD", "type": "percentage"}, "value"),
    ("percent-3-decimals", {"code": "BAD", "type": "percentage", "value": "12.345"}, "value"),
    ("percent-negative", {"code": "BAD", "type": "percentage", "value": -5}, "value"),
    ("fixed-missing", {"code": "BAD", "type": "fixed"}, "value"),
    ("fixed-too-many-decimals", {"code": "BAD", "type": "fixed", "value": "10.001"}, "value"),
    ("unknown-type", {"code": "BAD", "type": "cashback", "value": 5}, "type"),
    ("missing-type", {"code": "BAD", "value": 5}, "type"),
    ("missing-code", {"type": "percentage", "value": 5}, "coupon_id"),
    ("bad-code", {"code": "BAD CODE!", "type": "percentage", "value": 5}, "code"),
    ("ids-differ", {"code": "AAA", "coupon_id": "BBB", "type": "percentage", "value": 5}, "code"),
    (
        "window-inverted",
        {
            "code": "BAD",
            "type": "percentage",
            "value": 5,
            "conditions": {"valid_from": "2026-04-01", "valid_to": "2026-03-31"},
        },
        "valid_to",
    ),
    (
        "window-bad-date",
        {"code": "BAD", "type": "percentage", "value": 5, "conditions": {"valid_to": "2026-02-30"}},
        "conditions",
    ),
    (
        "window-not-string",
        {"code": "BAD", "type": "percentage", "value": 5, "conditions": {"valid_to": 20260331}},
        "conditions",
    ),
    (
        "conditions-list",
        {"code": "BAD", "type": "percentage", "value": 5, "conditions": []},
        "conditions",
    ),
    (
        "min-cart-negative",
        {"code": "BAD", "type": "percentage", "value": 5, "conditions": {"min_cart_value": "-1"}},
        "conditions",
    ),
    (
        "max-uses-zero",
        {"code": "BAD", "type": "percentage", "value": 5, "conditions": {"max_uses_total": 0}},
        "conditions",
    ),
    (
        "currency-unknown",
        {"code": "BAD", "type": "percentage", "value": 5, "currency": "XYZ"},
        "currency",
    ),
    (
        "cap-negative",
        {"code": "BAD", "type": "percentage", "value": 5, "discount_cap": -1},
        "discount_cap",
    ),
    ("tiered-no-tiers", {"code": "BAD", "type": "tiered"}, "tiers"),
    (
        "tiered-duplicate",
        {
            "code": "BAD",
            "type": "tiered",
            "tiers": [
                {"threshold": "100", "discount": "10"},
                {"threshold": "100.00", "discount": "20"},
            ],
        },
        "tiers",
    ),
    ("bogo-missing", {"code": "BAD", "type": "bogo"}, "bogo"),
    ("bogo-buy-zero", {"code": "BAD", "type": "bogo", "bogo": {"buy": 0, "get": 1}}, "bogo"),
    (
        "bogo-percent-0",
        {"code": "BAD", "type": "bogo", "bogo": {"buy": 1, "get": 1, "percent_off": 0}},
        "bogo",
    ),
    (
        "bogo-percent-150",
        {"code": "BAD", "type": "bogo", "bogo": {"buy": 1, "get": 1, "percent_off": 150}},
        "bogo",
    ),
    ("body-list", [{"code": "BAD", "type": "percentage", "value": 5}], None),
]


@pytest.mark.parametrize(
    ("body", "field"), [c[1:] for c in ADMIN_CASES], ids=[c[0] for c in ADMIN_CASES]
)
def test_admin_create_bad_input_is_400(admin_api, body, field):
    response = admin_api.post("/api/v1/admin/coupons", body, format="json")
    assert_400(response, field)
    assert not Coupon.objects.exclude(code="SUMMER25").exists()


def test_admin_create_duplicate_code_is_409(admin_api):
    response = admin_api.post(
        "/api/v1/admin/coupons",
        {"coupon_id": "summer25", "type": "percentage", "value": 10},
        format="json",
    )
    assert response.status_code == 409
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert Coupon.objects.get(code="SUMMER25").percent_bp == 2500


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"value": 150}, "value"),
        ({"type": "cashback"}, "type"),
        ({"conditions": {"valid_from": "2030-01-01", "valid_to": "2029-01-01"}}, "valid_to"),
        ({"conditions": {"max_uses_total": "many"}}, "conditions"),
    ],
    ids=["percent-150", "unknown-type", "window-inverted", "max-uses-text"],
)
def test_admin_patch_bad_input_is_400(admin_api, body, field, summer25):
    response = admin_api.patch("/api/v1/admin/coupons/SUMMER25", body, format="json")
    assert_400(response, field)
    summer25.refresh_from_db()
    assert summer25.percent_bp == 2500


def test_admin_patch_limit_below_uses_is_400(admin_api, storefront, summer25):
    storefront.post(APPLY, base_body(), format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    storefront.post(
        APPLY, {**base_body(), "order_id": "o-2"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    response = admin_api.patch(
        "/api/v1/admin/coupons/SUMMER25", {"conditions": {"max_uses_total": 1}}, format="json"
    )
    assert_400(response, "max_uses_total")


def test_admin_unknown_coupon_is_404(admin_api):
    response = admin_api.get("/api/v1/admin/coupons/NOPE")
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    response = admin_api.patch("/api/v1/admin/coupons/NOPE", {"value": 5}, format="json")
    assert response.status_code == 404


# --- method and path --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_wrong_method_is_405_with_error_body(storefront, method):
    response = getattr(storefront, method)(VALIDATE)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert set(response.json()["error"]) == {"code", "message", "fields"}


@pytest.mark.parametrize(
    "path", ["/api/v1/nope", "/api/v1/coupons/validate/extra", "/api/v1/orders/o-1/explode"]
)
def test_unknown_path_is_json_404(storefront, path):
    response = storefront.post(path, {}, format="json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert response.json()["error"]["code"] == "not_found"
