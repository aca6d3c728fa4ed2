"""API fuzzing (issue "Reliability harness", part 1): schemathesis against the served schema.

Every operation in `/api/schema/` is a test case (new endpoints are covered without
touching this file). For each operation schemathesis runs its examples, coverage and
fuzzing phases with valid and invalid inputs and applies its full default set of checks:
no 5xx, status code documented, body matches the documented shape, content type
documented, response headers documented, schema-violating data rejected, ...

One default check is left out: `positive_data_acceptance` (every schema-valid request
must get a 2xx). The contract (API.md) answers `400` to input JSON Schema cannot
describe: a `subtotal` that is not the items' sum, `user_id` naming another customer
than `customer.id`, neither `coupon_code` nor `coupon_codes`, a currency code that is
three letters but not ISO 4217, more decimals than the currency has. Those are
deliberate 400s, not server bugs; every other check runs on every response.

`FUZZ_EXAMPLES` bounds the number of generated examples per operation: small in
`make test`, 500 in `make fuzz`.
"""

from __future__ import annotations

import os

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck
from hypothesis import strategies as st
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import positive_data_acceptance

from core.models import ApiKey
from coupons.tests.factories import CouponFactory

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
# Known codes and orders the generated requests may use, so the success paths (a valid
# coupon, an order with reservations) are exercised, not only the rejections.
KNOWN_CODES = ("FUZZ10", "FUZZFIXED", "FUZZSHIP")
KNOWN_ORDERS = ("fuzz-order-1", "fuzz-order-2")

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

_CARTS = st.sampled_from([
    {"currency": "USD", "items": [{"sku": "SKU-1", "category": "electronics",
                                   "unit_price": "50.00", "quantity": 3}]},
    {"currency": "USD", "shipping": "7.99", "subtotal": "20.50",
     "items": [{"sku": "A", "unit_price": "10.25", "quantity": 2}]},
])


def _is_positive(case) -> bool:
    return case.meta is not None and not case.meta.generation.mode.is_negative


def _use_known(case, use: bool, code: str, order_id: str, cart: dict, key: str):
    """Point a valid generated request at data that exists (codes, orders), with a fresh
    Idempotency-Key (generated keys repeat, so most mutations would be replays)."""
    if not use:
        return case
    params = case.path_parameters or {}
    if "order_id" in params:
        params["order_id"] = order_id
    if "code" in params:
        params["code"] = code
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = key
    body = case.body
    if isinstance(body, dict) and "cart" in body:
        body["coupon_code"] = code
        body.pop("coupon_codes", None)
        body["cart"] = dict(cart)
        if "order_id" in body:  # a new order: the known ones already hold their codes
            body["order_id"] = f"fuzz-{key}"
        if isinstance(body.get("customer"), dict) and "user_id" in body:
            body["user_id"] = body["customer"]["id"]
    return case


@schema.hook
def flatmap_case(ctx, case):
    """Most valid requests use known coupon codes, orders and a valid cart, so the success
    paths are fuzzed too (random codes and currencies almost never exist)."""
    if not _is_positive(case):
        return st.just(case)
    return st.builds(lambda *args: _use_known(case, *args),
                     st.sampled_from([True, True, False]), st.sampled_from(KNOWN_CODES),
                     st.sampled_from(KNOWN_ORDERS), _CARTS, st.uuids().map(str))


@pytest.fixture
def fuzz_auth(transactional_db) -> dict[str, str]:
    """Committed data for the WSGI app: a key with both scopes and a few live coupons."""
    _, key = ApiKey.objects.create_key(name="fuzz", scopes=["storefront", "admin"])
    CouponFactory(code=KNOWN_CODES[0], stackable=True)
    CouponFactory(code=KNOWN_CODES[1], type="fixed", percent_bp=None, amount_minor=500,
                  currency="USD", stackable=True)
    CouponFactory(code=KNOWN_CODES[2], type="free_shipping", percent_bp=None, stackable=True)
    # Auto promotions, so evaluate/validate/apply combine codes with them.
    CouponFactory(code="FUZZAUTO5", auto_apply=True, percent_bp=500, stackable=True,
                  stack_group="auto")
    CouponFactory(code="FUZZAUTOSHIP", auto_apply=True, type="free_shipping", percent_bp=None,
                  eligible_categories=["electronics"], max_uses_total=50, stackable=True)
    headers = {"Authorization": f"Api-Key {key}"}
    client = APIClient()
    for n, order_id in enumerate(KNOWN_ORDERS):
        body = {"coupon_code": KNOWN_CODES[n], "user_id": f"fuzz-{n}", "order_id": order_id,
                "cart": {"currency": "USD", "items": [
                    {"sku": "SKU-1", "category": "electronics", "unit_price": "50.00",
                     "quantity": 3}]}}
        response = client.post("/api/v1/coupons/apply", body, format="json",
                                HTTP_AUTHORIZATION=headers["Authorization"],
                                HTTP_IDEMPOTENCY_KEY=f"fuzz-setup-{n}")
        assert response.status_code == 200, response.content
    return headers


@schema.parametrize()
@hypothesis.settings(
    max_examples=FUZZ_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
def test_api_conforms_to_schema(case, fuzz_auth):
    # positive_data_acceptance: see the module docstring (cross-field 400s in the contract).
    case.call_and_validate(headers=fuzz_auth, excluded_checks=[positive_data_acceptance])

