import pytest

from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db


def test_validate_seed_example(storefront):
    # given the seed's SUMMER25: 25% capped at $50
    CouponFactory(code="SUMMER25", percent_bp=2500, cap_minor=5000)
    # when a $150 cart is validated
    response = storefront.post(
        "/api/v1/coupons/validate",
        {
            "coupon_code": "SUMMER25",
            "user_id": "u-1",
            "cart": cart(("SKU-1", "electronics", "50.00", 3), subtotal="150.00"),
        },
        format="json",
    )
    # then it is $37.50 off
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is True
    assert body["discount"] == "37.50"
    assert body["message"] == "25% off (max $50.00)"
    assert body["lines"] == [{"sku": "SKU-1", "discount": "37.50"}]
