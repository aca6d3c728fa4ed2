"""Redis is a cache: with Redis unreachable the checkout path answers from PostgreSQL,
and readiness reports `degraded`, not down. Uses a real refused connection (a closed
port), not a mock."""

import copy

import pytest
from django.conf import settings
from django.test import override_settings

from coupons.tests.factories import CouponFactory
from tests.support import cart

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:6390/0"  # nothing listens here


def _dead_cache_settings():
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = DEAD_REDIS
    return caches


def test_live_answers(client):
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_ok_when_everything_answers(client):
    body = client.get("/health/ready").json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "redis", "broker"}


def test_ready_degraded_without_redis_or_broker(client):
    with override_settings(CACHES=_dead_cache_settings(), CELERY_BROKER_URL=DEAD_REDIS):
        response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["postgres"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["broker"]["ok"] is False


def test_validate_and_apply_work_without_redis(storefront):
    # given a limited coupon and Redis unreachable
    coupon = CouponFactory(code="NOREDIS", percent_bp=2500, max_uses_total=1)
    body = {
        "coupon_code": "NOREDIS",
        "user_id": "u-1",
        "cart": cart(("SKU-1", "books", "40.00", 1)),
    }
    with override_settings(CACHES=_dead_cache_settings()):
        # when validating and applying
        validated = storefront.post("/api/v1/coupons/validate", body, format="json")
        applied = storefront.post(
            "/api/v1/coupons/apply",
            {**body, "order_id": "o-1"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-1",
        )
        again = storefront.post("/api/v1/coupons/validate", body, format="json")
    # then both answer from PostgreSQL and the limit still holds
    assert validated.status_code == 200
    assert validated.json()["discount"] == "10.00"
    assert applied.status_code == 200
    assert applied.json()["redemptions"][0]["status"] == "reserved"
    assert again.json() == {
        "valid": False,
        "reason": "usage_limit_reached",
        "message": "Coupon usage limit reached",
        "code": "NOREDIS",
    }
    coupon.refresh_from_db()
    assert coupon.uses == 1


def test_metrics_exposes_business_counters(client, storefront):
    CouponFactory(code="METRIC10")
    storefront.post(
        "/api/v1/coupons/validate",
        {"coupon_code": "METRIC10", "cart": cart(("S", "c", "10.00", 1))},
        format="json",
    )
    text = client.get("/metrics").content.decode()
    assert "coupon_validations_total" in text
    assert 'outcome="valid"' in text


def test_schema_and_docs_are_served_offline(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    for path in (
        "/api/v1/coupons/validate",
        "/api/v1/coupons/apply",
        "/api/v1/orders/{order_id}/confirm",
        "/api/v1/orders/{order_id}/release",
        "/api/v1/orders/{order_id}/return",
        "/api/v1/admin/coupons",
        "/api/v1/admin/coupons/{code}",
    ):
        assert path in text
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()


def test_end_customer_cannot_grant_itself_segments(customer_client):
    # given a members-only coupon
    CouponFactory(code="MEMBERS", eligible_segments=["premium_members"])
    body = {
        "coupon_code": "MEMBERS",
        "customer": {"id": "u-7", "segments": ["premium_members"]},
        "cart": cart(("SKU-1", "books", "40.00", 1)),
    }
    # when the shopper's own token claims no segment but the body does
    response = customer_client("u-7").post("/api/v1/coupons/validate", body, format="json")
    # then the body's segments are ignored
    assert response.json()["reason"] == "segment_not_eligible"


def test_replay_returns_the_first_response_byte_for_byte(storefront):
    CouponFactory(code="BYTES10")
    body = {
        "coupon_code": "BYTES10",
        "order_id": "o-bytes",
        "user_id": "u-1",
        "cart": cart(("SKU-1", "books", "40.00", 1)),
    }
    first = storefront.post(
        "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY="bytes-1"
    )
    replay = storefront.post(
        "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY="bytes-1"
    )
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.content == first.content
