"""Answers a plain retry may change are not kept by the idempotency layer: a lost race
(`promotions_changed`, `order_conflict`) is answered, and the retry with the same
Idempotency-Key runs again instead of replaying the conflict forever."""

import pytest

from core.errors import Conflict
from core.models import IdempotencyRecord
from coupons import services
from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db

BODY = {
    "coupon_code": "RETRY10",
    "order_id": "o-retry",
    "cart": cart(("SKU-1", "books", "40.00", 1)),
}


@pytest.mark.parametrize("code", ["promotions_changed", "order_conflict"])
def test_a_retryable_conflict_is_not_replayed(storefront, monkeypatch, code):
    CouponFactory(code="RETRY10")
    real = services.redemption_apply
    calls = []

    def lose_the_first_race(**kwargs):
        calls.append(kwargs["order_id"])
        if len(calls) == 1:
            raise Conflict(code, "lost a race; try again", retryable=True)
        return real(**kwargs)

    monkeypatch.setattr(services, "redemption_apply", lose_the_first_race)
    # when the first attempt loses a race
    first = storefront.post(
        "/api/v1/coupons/apply", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-retry"
    )
    assert first.status_code == 409
    assert first.json()["error"]["code"] == code
    assert not IdempotencyRecord.objects.filter(key="k-retry").exists()
    # then the retry with the same key runs again and succeeds; a third call replays it
    second = storefront.post(
        "/api/v1/coupons/apply", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-retry"
    )
    assert second.status_code == 200
    assert "Idempotent-Replayed" not in second
    third = storefront.post(
        "/api/v1/coupons/apply", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-retry"
    )
    assert third.status_code == 200
    assert third["Idempotent-Replayed"] == "true"
    assert len(calls) == 2


def test_a_final_conflict_is_still_replayed(storefront):
    CouponFactory(code="RETRY10")
    CouponFactory(code="OTHER")
    assert (
        storefront.post(
            "/api/v1/coupons/apply", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
        ).status_code
        == 200
    )
    other = {**BODY, "coupon_code": "OTHER"}
    first = storefront.post(
        "/api/v1/coupons/apply", other, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert first.json()["error"]["code"] == "order_has_coupons"
    again = storefront.post(
        "/api/v1/coupons/apply", other, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert again.status_code == 409
    assert again["Idempotent-Replayed"] == "true"
