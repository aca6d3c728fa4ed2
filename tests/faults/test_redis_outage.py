"""Redis dies under a running gunicorn: checkout answers from PostgreSQL, limits hold,
readiness says `degraded`, and comes back to `ok` when Redis returns on the same port.

The Redis here is a private redis-server started for the test; the shared one is never
touched.
"""

import signal

import pytest

from core.models import ApiKey
from coupons.models import Coupon, Redemption, RedemptionStatus
from coupons.tests.factories import CouponFactory
from tests.faults.conftest import service_env, subprocess_database_url, wait_until
from tests.support import cart

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

VALIDATE = "/api/v1/coupons/validate"
APPLY = "/api/v1/coupons/apply"
# Every call during the outage must still be quick: a refused Redis costs no waiting.
FAST = 2.0


def test_checkout_survives_redis_loss_and_readiness_recovers(private_redis, gunicorn):
    # given a coupon limited to 3 uses, a private Redis, and gunicorn using it for the
    # cache and the broker
    coupon = CouponFactory(code="REDISDOWN", percent_bp=2500, max_uses_total=3)
    _, key = ApiKey.objects.create_key(name="faults", scopes=["storefront"])
    auth = {"Authorization": f"Api-Key {key}"}
    redis = private_redis()
    web = gunicorn(
        service_env(
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            COUPON_LOCAL_CACHE_SECONDS="0",
        )
    )
    body = {
        "coupon_code": "REDISDOWN",
        "user_id": "u-1",
        "cart": cart(("SKU-1", "books", "40.00", 1)),
    }

    def apply(order_id: str):
        return web.call(
            "POST",
            APPLY,
            {**body, "order_id": order_id},
            headers={**auth, "Idempotency-Key": f"k-{order_id}"},
        )

    ready = web.call("GET", "/health/ready")
    assert (ready.status, ready.json()["status"]) == (200, "ok"), ready.body
    first = web.call("POST", VALIDATE, body, headers=auth)
    assert first.status == 200, first.body
    assert first.json()["discount"] == "10.00", first.body
    applied = apply("o-1")
    assert applied.status == 200, applied.body
    assert redis.client(0).dbsize() > 0  # the cache really was in use

    # when Redis is killed
    redis.kill()

    # then readiness is degraded (200), not down
    ready = web.call("GET", "/health/ready")
    assert ready.status == 200, ready.body
    checks = ready.json()["checks"]
    assert ready.json()["status"] == "degraded"
    assert (checks["postgres"]["ok"], checks["redis"]["ok"], checks["broker"]["ok"]) == (
        True,
        False,
        False,
    )
    assert ready.elapsed < FAST
    # and validate / apply answer from PostgreSQL, quickly and correctly
    validated = web.call("POST", VALIDATE, body, headers=auth)
    assert validated.status == 200, validated.body
    assert validated.json()["valid"] is True
    assert validated.json()["discount"] == "10.00"
    second, third = apply("o-2"), apply("o-3")
    assert (second.status, third.status) == (200, 200), (second.body, third.body)
    assert second.json()["redemptions"][0]["status"] == "reserved"
    # and the limit still holds without Redis
    fourth = apply("o-4")
    assert fourth.status == 422, fourth.body
    assert fourth.json()["reason"] == "usage_limit_reached"
    sold_out = web.call("POST", VALIDATE, body, headers=auth)
    assert sold_out.json() == {
        "valid": False,
        "reason": "usage_limit_reached",
        "message": "Coupon usage limit reached",
        "code": "REDISDOWN",
    }
    # and idempotent replays are served from PostgreSQL too
    replay = apply("o-2")
    assert replay.status == 200
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.body == second.body
    # and the guessing limits fail open: twelve unknown codes in a row are all answered
    guesses = [
        web.call(
            "POST",
            VALIDATE,
            {**body, "coupon_code": f"GUESS{n}", "context": {"ip": "203.0.113.5"}},
            headers=auth,
        )
        for n in range(12)
    ]
    assert [g.status for g in guesses] == [200] * 12, guesses[-1].body
    assert {g.json()["reason"] for g in guesses} == {"coupon_not_found"}
    slowest = max(r.elapsed for r in (validated, second, third, fourth, sold_out, replay, *guesses))
    assert slowest < FAST, f"a call took {slowest:.2f}s without Redis"
    coupon.refresh_from_db()
    assert coupon.uses == 3
    held = Redemption.objects.filter(coupon=coupon)
    assert sorted(held.values_list("order_id", "status")) == [
        (f"o-{i}", RedemptionStatus.RESERVED) for i in (1, 2, 3)
    ]

    # when Redis comes back on the same port
    redis.start()

    # then readiness returns to ok and checkout keeps its counts
    wait_until(
        lambda: web.call("GET", "/health/ready").json()["status"] == "ok",
        timeout=15,
        what="readiness to report ok after Redis restarted",
    )
    again = web.call("POST", VALIDATE, body, headers=auth)
    assert again.json()["reason"] == "usage_limit_reached"
    assert Coupon.objects.get(pk=coupon.pk).uses == 3


def test_frozen_redis_does_not_stall_checkout_or_readiness(private_redis, gunicorn):
    # given gunicorn on a private Redis that is then frozen (SIGSTOP): connections are
    # still accepted by the kernel but nothing ever answers, like a hung or partitioned host
    CouponFactory(code="REDISHUNG", percent_bp=2500, max_uses_total=2)
    _, key = ApiKey.objects.create_key(name="faults", scopes=["storefront"])
    auth = {"Authorization": f"Api-Key {key}"}
    redis = private_redis()
    web = gunicorn(
        service_env(
            DATABASE_URL=subprocess_database_url(),
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            COUPON_LOCAL_CACHE_SECONDS="0",
            GUNICORN_TIMEOUT="10",
        )
    )
    body = {
        "coupon_code": "REDISHUNG",
        "user_id": "u-1",
        "cart": cart(("SKU-1", "books", "40.00", 1)),
    }
    assert web.call("POST", VALIDATE, body, headers=auth).status == 200
    redis.service.signal(signal.SIGSTOP)
    try:
        # when checkout and readiness are called
        validated = web.call("POST", VALIDATE, body, headers=auth, timeout=20)
        applied = web.call(
            "POST",
            APPLY,
            {**body, "order_id": "o-1"},
            timeout=20,
            headers={**auth, "Idempotency-Key": "k-o-1"},
        )
        ready = web.call("GET", "/health/ready", timeout=20)
    finally:
        redis.service.signal(signal.SIGCONT)
    # then they answer within the Redis socket timeouts, long before gunicorn's worker
    # timeout (10 s here, 30 s in production) would kill the worker
    assert (validated.status, applied.status) == (200, 200), (validated.body, applied.body)
    assert validated.elapsed < FAST, (validated.elapsed, applied.elapsed)
    assert applied.elapsed < FAST, (validated.elapsed, applied.elapsed)
    ready_report = f"/health/ready: {ready.status} after {ready.elapsed:.1f}s"
    assert ready.status == 200, f"{ready_report}\n{web.service.log_tail(60)}"
    assert ready.elapsed < FAST, f"{ready_report}\n{web.service.log_tail(60)}"
    assert ready.json()["status"] == "degraded"
