"""Guessing limits: unknown codes (coupon_not_found) per customer, shopper IP and checkout
session; 429 + Retry-After; real-but-ineligible codes never count; Redis down -> open."""

import time
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone

from core import redis_guard
from coupons.tests.factories import CouponFactory
from tests.support import cart, customer_token

pytestmark = pytest.mark.django_db

VALIDATE = "/api/v1/coupons/validate"
CART = cart(("SKU-1", "electronics", "50.00", 3))


def validate(client, code, customer="c-1", **context):
    body = {"coupon_code": code, "customer": {"id": customer}, "cart": CART}
    if context:
        body["context"] = context
    return client.post(VALIDATE, body, format="json")


def assert_limited(response, max_wait: int):
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= max_wait


@pytest.fixture
def real(db):
    return CouponFactory(code="REAL10")


def test_customer_limit_trips_after_ten_unknown_codes_a_minute(storefront, real):
    for n in range(10):
        response = validate(storefront, f"GUESS{n}")
        assert response.status_code == 200
        assert response.json()["reason"] == "coupon_not_found"
    assert_limited(validate(storefront, "GUESS10"), 60)
    # Blocked means blocked: a real code from the same customer is refused too, so a
    # script cannot tell its hits from its misses.
    assert_limited(validate(storefront, "REAL10"), 60)
    # Someone else is not affected.
    assert validate(storefront, "REAL10", customer="c-2").json()["valid"] is True


def test_session_limit_trips_after_five_across_customers(storefront, real):
    for n in range(5):
        assert (
            validate(storefront, f"G{n}", customer=f"s-{n}", session_id="sess-1").status_code == 200
        )
    assert_limited(validate(storefront, "G5", customer="s-9", session_id="sess-1"), 3600)
    assert validate(storefront, "G5", customer="s-9", session_id="sess-2").status_code == 200


def test_ip_limit_keys_on_the_shoppers_ip_from_context(storefront, real):
    for n in range(10):
        assert validate(storefront, f"G{n}", customer=f"i-{n}", ip="203.0.113.7").status_code == 200
    # Ten misses are allowed; a real code still works; the eleventh miss is refused.
    assert validate(storefront, "REAL10", customer="i-98", ip="203.0.113.7").json()["valid"]
    assert_limited(validate(storefront, "G10", customer="i-10", ip="203.0.113.7"), 60)
    assert_limited(validate(storefront, "REAL10", customer="i-99", ip="203.0.113.7"), 60)
    assert validate(storefront, "REAL10", customer="i-99", ip="203.0.113.8").json()["valid"]


def test_api_key_calls_never_key_on_the_servers_own_address(storefront, real):
    # Thirty shoppers behind one storefront server (same REMOTE_ADDR), no context.
    for n in range(30):
        response = validate(storefront, f"G{n}", customer=f"shop-{n}")
        assert response.status_code == 200, n


def test_end_customer_jwt_falls_back_to_the_connection_address(client, real):
    client.credentials = None
    for n in range(11):
        token = customer_token(f"jwt-{n}")
        response = client.post(
            VALIDATE,
            {"coupon_code": f"G{n}", "cart": CART},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            REMOTE_ADDR="198.51.100.4",
        )
        assert response.status_code == (200 if n < 10 else 429)
    token = customer_token("jwt-new")
    response = client.post(
        VALIDATE,
        {"coupon_code": "REAL10", "cart": CART},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        REMOTE_ADDR="198.51.100.4",
    )
    assert_limited(response, 60)


def test_ineligible_real_codes_do_not_count(storefront):
    CouponFactory(
        code="OLD",
        valid_from=timezone.now() - timedelta(days=9),
        valid_to=timezone.now() - timedelta(days=1),
    )
    CouponFactory(code="BIG", min_cart_minor=1_000_000)
    for n in range(15):
        code = "OLD" if n % 2 else "BIG"
        response = validate(storefront, code, session_id="sess-x")
        assert response.status_code == 200
        assert response.json()["reason"] in {"coupon_expired", "min_cart_value_not_met"}


def test_each_unknown_code_of_a_multi_code_call_counts(storefront, real):
    body = {"coupon_codes": [f"X{n}" for n in range(6)], "customer": {"id": "multi"}, "cart": CART}
    assert storefront.post(VALIDATE, body, format="json").status_code == 200
    body["coupon_codes"] = [f"Y{n}" for n in range(5)]
    assert_limited(storefront.post(VALIDATE, body, format="json"), 60)


def test_apply_and_evaluate_count_and_are_refused_too(storefront, real):
    for n in range(11):
        body = {
            "coupon_code": f"G{n}",
            "customer": {"id": "ap"},
            "cart": CART,
            "order_id": f"o-{n}",
        }
        response = storefront.post(
            "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY=f"k-{n}"
        )
        if n < 10:
            assert response.status_code == 422
            assert response.json()["reason"] == "coupon_not_found"
        else:
            assert_limited(response, 60)
    body = {"coupon_code": "REAL10", "customer": {"id": "ap"}, "cart": CART, "order_id": "o-real"}
    assert_limited(
        storefront.post(
            "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY="k-real"
        ),
        60,
    )
    assert_limited(
        storefront.post(
            "/api/v1/promotions/evaluate",
            {"coupon_code": "REAL10", "customer": {"id": "ap"}, "cart": CART},
            format="json",
        ),
        60,
    )
    # Without codes there is nothing to guess: pricing a cart is never refused.
    response = storefront.post(
        "/api/v1/promotions/evaluate", {"customer": {"id": "ap"}, "cart": CART}, format="json"
    )
    assert response.status_code == 200


@override_settings(ABUSE_NOT_FOUND_RATE_CUSTOMER="2/2s")
def test_limits_follow_settings_and_recover_after_the_window(storefront, real):
    assert validate(storefront, "G1").status_code == 200
    assert validate(storefront, "G2").status_code == 200
    blocked = validate(storefront, "G3")
    assert_limited(blocked, 2)
    time.sleep(int(blocked["Retry-After"]) + 1.1)
    assert validate(storefront, "REAL10").json()["valid"] is True


@override_settings(ABUSE_RATE_LIMITS_ENABLED=False)
def test_limits_can_be_switched_off(storefront, real):
    for n in range(15):
        assert validate(storefront, f"G{n}").status_code == 200


DEAD_REDIS = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "KEY_PREFIX": "dead",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 0.25,
            "SOCKET_TIMEOUT": 0.25,
            "IGNORE_EXCEPTIONS": True,
        },
    }
}


def test_redis_down_lets_checkout_continue_unlimited(storefront, real, caplog):
    with override_settings(CACHES=DEAD_REDIS):
        caches["default"].get("probe")  # the override really points at nothing
        for n in range(15):
            redis_guard.reset()  # every call tries Redis (no pause between them)
            response = validate(storefront, f"G{n}")
            assert response.status_code == 200
            assert response.json()["reason"] == "coupon_not_found"
        redis_guard.reset()
        assert validate(storefront, "REAL10").json()["valid"] is True
    assert "rate limits skipped" in caplog.text


def test_a_refused_apply_is_not_replayed_to_its_retry(storefront, real, settings):
    settings.ABUSE_NOT_FOUND_RATE_CUSTOMER = "1/m"
    validate(storefront, "G1", customer="retry")
    validate(storefront, "G2", customer="retry")  # blocked from here on
    body = {
        "coupon_code": "REAL10",
        "customer": {"id": "retry"},
        "cart": CART,
        "order_id": "o-retry",
    }
    first = storefront.post(
        "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key"
    )
    assert_limited(first, 60)
    settings.ABUSE_RATE_LIMITS_ENABLED = False  # as if the window had passed
    retry = storefront.post(
        "/api/v1/coupons/apply", body, format="json", HTTP_IDEMPOTENCY_KEY="same-key"
    )
    assert retry.status_code == 200
    assert retry.json()["applied"] is True
    assert "Idempotent-Replayed" not in retry


def test_the_block_check_shares_the_promotions_version_round_trip(real, monkeypatch, rf):
    from coupons import promotions
    from coupons.abuse.ratelimit import Guard

    promotions.catalog()  # publishes the version token
    request = rf.post(VALIDATE)
    Guard.for_request(request, "c-1", {"ip": "203.0.113.1"}).check()

    def no_second_read(*args, **kwargs):
        raise AssertionError("the version was read again")

    monkeypatch.setattr(promotions.cache, "get", no_second_read)
    assert promotions.catalog() is not None  # served by the check's MGET


@pytest.mark.django_db(transaction=True)
def test_racing_guesses_get_exactly_the_limit_through(monkeypatch):
    from tests.race import api_key, client_for, race, unexpected

    # 30 threads of one process share its GIL, so a Redis call can look slower than the
    # "Redis is frozen" threshold and pause the limits (fail open); gunicorn's workers
    # are processes. What is raced here is the counting itself.
    monkeypatch.setattr(redis_guard, "SLOW_SECONDS", 10.0)
    # For the same reason a busy machine can push one call past the 0.25 s socket timeout,
    # and a call that fails fails open (by design): give this test's calls 5 s.
    from django_redis import get_redis_connection

    pool = get_redis_connection("default").connection_pool
    monkeypatch.setitem(pool.connection_kwargs, "socket_timeout", 5.0)
    pool.disconnect()

    key = api_key(["storefront"])
    try:
        outcomes = race(
            lambda n: validate(client_for(key), f"RACE{n}", customer="racer"), range(30), workers=30
        )
    finally:
        monkeypatch.undo()
        pool.disconnect()  # later tests get connections with the usual timeout
    assert not unexpected(outcomes), unexpected(outcomes)
    statuses = sorted(o.value.status_code for o in outcomes)
    # The counter is one atomic INCR per miss: the first ten misses are answered, every
    # other call is refused, however they interleave.
    assert statuses == [200] * 10 + [429] * 20, statuses
