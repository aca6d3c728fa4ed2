"""End to end: what the checkout endpoints do shows up in the coupon's stats (the events
the checkout code emits, the buffer flush, the live aggregation for today)."""

import pytest

from coupons.analytics import events
from coupons.analytics.models import CouponEvent
from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db

CART = cart(("SKU-1", "electronics", "50.00", 2), shipping="5.00")  # $100 subtotal


def test_validate_apply_confirm_release_return_are_counted(storefront, admin_api):
    CouponFactory(
        code="STATS10", type="fixed", percent_bp=None, amount_minor=1000, budget_minor=100_000
    )

    def body(customer, **extra):
        return {
            "coupon_code": "STATS10",
            "customer": {"id": customer, "orders_count": 0},
            "cart": CART,
            **extra,
        }

    for customer in ("s-1", "s-2", "s-3"):
        assert storefront.post("/api/v1/coupons/validate", body(customer), format="json").json()[
            "valid"
        ]
    storefront.post(
        "/api/v1/coupons/validate", {"coupon_code": "NOPE", "cart": CART}, format="json"
    )
    for n, customer in enumerate(("s-1", "s-2", "s-3")):
        response = storefront.post(
            "/api/v1/coupons/apply",
            body(customer, order_id=f"o-{n}"),
            format="json",
            HTTP_IDEMPOTENCY_KEY=f"k-{n}",
        )
        assert response.status_code == 200, response.content
    storefront.post("/api/v1/orders/o-0/confirm")
    storefront.post("/api/v1/orders/o-1/confirm")
    storefront.post("/api/v1/orders/o-2/release")
    storefront.post("/api/v1/orders/o-1/return", {"amount": "40.00"}, format="json")
    # A cart priced without any coupon, for the "without coupon" average.
    storefront.post(
        "/api/v1/promotions/evaluate", {"cart": cart(("X", "toys", "30.00", 1))}, format="json"
    )
    assert events.flush() > 0

    kinds = sorted(CouponEvent.objects.values_list("kind", flat=True))
    assert kinds.count("validate") == 4
    assert kinds.count("apply") == 3
    assert kinds.count("confirm") == 2
    assert kinds.count("release") == 1
    assert kinds.count("return") == 1
    assert kinds.count("cart") == 8

    stats = admin_api.get("/api/v1/admin/coupons/stats10/stats").json()
    assert stats["validation_attempts"] == 3
    assert stats["valid_attempts"] == 3
    assert stats["applies"] == 3
    assert stats["redemptions"] == 2
    assert stats["releases"] == 1
    assert stats["returns"] == 1
    assert stats["discount_given"] == "20.00"
    assert stats["order_value"] == "200.00"
    assert stats["revenue_impact"] == "180.00"
    assert stats["average_order_value"] == "100.00"
    # Carts priced with no discount: the $100 one with an unknown code and the $30 one.
    assert stats["average_order_value_without_coupon"] == "65.00"
    assert stats["new_customers"] == 2
    assert stats["discount_per_new_customer"] == "10.00"
    assert stats["return_rate"] == 0.5
    assert stats["budget"]["budget"] == "1000.00"
    assert stats["budget"]["spent"] == "20.00"
