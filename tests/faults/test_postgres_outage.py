"""PostgreSQL unreachable under a running gunicorn: validate, apply and readiness answer
`503` with `Retry-After` and the standard error body (never a stack trace), whether the
connection is refused, the psycopg pool times out, or the database disappears mid-run;
and service resumes by itself when the database comes back.

The shared PostgreSQL is never touched: the fault is a port where nothing listens, or a
TCP proxy owned by the test that is cut and restored.
"""

import time

import jwt
import pytest

from core.models import ApiKey
from coupons.models import Coupon, Redemption
from coupons.tests.factories import CouponFactory
from tests.faults.conftest import (
    free_port,
    port_refuses,
    service_env,
    subprocess_database_url,
    wait_until,
)
from tests.support import cart

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

VALIDATE = "/api/v1/coupons/validate"
APPLY = "/api/v1/coupons/apply"
JWT_KEY = "fault-tests-jwt-signing-key-0123456789abcdef"
UNAVAILABLE = {
    "error": {
        "code": "database_unavailable",
        "message": "The database is unavailable; retry shortly.",
        "fields": {},
    }
}
BODY = {"coupon_code": "PGDOWN", "user_id": "u-1", "cart": cart(("SKU-1", "books", "40.00", 1))}


def customer_auth(sub: str) -> dict:
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, JWT_KEY, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def assert_unavailable(reply, *, within: float) -> None:
    """The API.md error body for a lost database: 503, Retry-After, no traceback."""
    assert reply.status == 503, (reply.status, reply.body[:500])
    assert int(reply.headers["retry-after"]) > 0
    assert reply.headers["content-type"].startswith("application/json")
    assert b"Traceback" not in reply.body
    assert b"psycopg" not in reply.body
    assert reply.json() == UNAVAILABLE
    assert reply.elapsed < within, f"503 took {reply.elapsed:.2f}s"


def assert_ready_down(reply, *, within: float) -> None:
    assert reply.status == 503, (reply.status, reply.body[:500])
    assert int(reply.headers["retry-after"]) > 0
    assert b"Traceback" not in reply.body
    body = reply.json()
    assert body["status"] == "down"
    assert body["checks"]["postgres"]["ok"] is False
    assert reply.elapsed < within, f"readiness took {reply.elapsed:.2f}s"


def every_call_unavailable(web, api_auth: dict, *, within: float, order: str) -> None:
    """validate and apply, as a server key and as an end customer, and readiness."""
    for auth in (api_auth, customer_auth("u-1")):
        assert_unavailable(web.call("POST", VALIDATE, BODY, headers=auth), within=within)
        assert_unavailable(
            web.call(
                "POST",
                APPLY,
                {**BODY, "order_id": order},
                headers={**auth, "Idempotency-Key": f"k-{order}"},
            ),
            within=within,
        )
    assert_ready_down(web.call("GET", "/health/ready"), within=within)


@pytest.mark.parametrize("pool", ["0", "1"], ids=["connect-refused", "pool-timeout"])
def test_unreachable_database_is_503_with_retry_after(gunicorn, private_redis, pool):
    # given gunicorn whose DATABASE_URL points at a port where nothing listens, with the
    # psycopg pool off (psycopg's "connection refused") or on (the pool's PoolTimeout)
    dead_port = free_port()
    assert port_refuses(dead_port)
    redis = private_redis()
    web = gunicorn(
        service_env(
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{dead_port}/nowhere",
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            JWT_SIGNING_KEY=JWT_KEY,
            DB_POOL=pool,
            DB_POOL_TIMEOUT="1",
            DB_CONNECT_TIMEOUT="2",
        )
    )
    _, key = ApiKey.objects.create_key(name="faults", scopes=["storefront"])

    # when calling the checkout endpoints (twice: the second call finds the pool empty)
    # then each answers 503 database_unavailable quickly, with no stack trace
    for attempt in range(2):
        every_call_unavailable(
            web, {"Authorization": f"Api-Key {key}"}, within=4.0, order=f"o-{attempt}"
        )
    # and a non-DRF page that needs the database (the admin, with a session cookie) gets
    # the same 503 from core.middleware instead of a 500
    admin = web.call("GET", "/admin/", headers={"Cookie": "sessionid=" + "x" * 32})
    assert_unavailable(admin, within=4.0)
    # and liveness does not depend on the database
    assert web.call("GET", "/health/live").status == 200
    assert "Traceback" not in web.service.log(), web.service.log_tail()


def test_database_lost_mid_run_then_back(gunicorn, private_redis, db_proxy):
    # given gunicorn (psycopg pool on) reaching the test database through a TCP proxy,
    # with warm pooled connections
    coupon = CouponFactory(code="PGDOWN", percent_bp=2500, max_uses_total=100)
    _, key = ApiKey.objects.create_key(name="faults", scopes=["storefront"])
    api_auth = {"Authorization": f"Api-Key {key}"}
    url = subprocess_database_url().replace(":5432/", f":{db_proxy.port}/")
    assert f":{db_proxy.port}/" in url
    redis = private_redis()
    web = gunicorn(
        service_env(
            DATABASE_URL=url,
            REDIS_URL=redis.url(0),
            CELERY_BROKER_URL=redis.url(1),
            JWT_SIGNING_KEY=JWT_KEY,
            DB_POOL="1",
            DB_POOL_TIMEOUT="1",
            DB_CONNECT_TIMEOUT="2",
        )
    )
    applied_ok = 0
    for i in range(6):  # both workers get a pooled connection
        assert web.call("POST", VALIDATE, BODY, headers=api_auth).status == 200
        reply = web.call(
            "POST",
            APPLY,
            {**BODY, "order_id": f"before-{i}"},
            headers={**api_auth, "Idempotency-Key": f"k-before-{i}"},
        )
        assert reply.status == 200, reply.body
        applied_ok += 1

    # when the database disappears (every connection dropped, nothing listening)
    db_proxy.stop()
    assert port_refuses(db_proxy.port)

    # then the pooled (now broken) connections and the empty pool both give 503
    for attempt in range(3):
        every_call_unavailable(web, api_auth, within=4.0, order=f"during-{attempt}")
    assert "Traceback" not in web.service.log(), web.service.log_tail()

    # when the database comes back
    db_proxy.start()

    # then the service resumes by itself, and nothing was counted during the outage
    wait_until(
        lambda: web.call("GET", "/health/ready").status == 200,
        timeout=120,
        what="readiness to recover",
        interval=0.5,
    )

    # Each worker's pool reconnects on its own schedule: psycopg_pool retries a failed
    # connection with exponential backoff (1 s, 2 s, 4 s, ...), so a worker can answer 503
    # for up to about the outage's length again after the database is back. A cached
    # validate touches no table and proves nothing here: wait for applies to succeed.
    def apply_once_back(order: str):
        reply = web.call(
            "POST",
            APPLY,
            {**BODY, "order_id": order},
            headers={**api_auth, "Idempotency-Key": f"k-{order}"},
        )
        assert reply.status in (200, 503), reply.body  # nothing else, ever
        return reply if reply.status == 200 else None

    # the keys used during the outage were not burnt: a retry now succeeds
    for order in ("after-0", "after-1", "after-2", "during-0"):
        wait_until(
            lambda order=order: apply_once_back(order),
            timeout=120,
            what=f"apply {order} to succeed after the database came back",
            interval=0.5,
        )
        applied_ok += 1

    # and, the other worker's pool back too, a run of calls is all answered (a worker
    # still in its backoff answers 503, never anything else)
    def calls_all_answered() -> bool:
        statuses = [web.call("POST", VALIDATE, BODY, headers=api_auth).status for _ in range(8)]
        assert set(statuses) <= {200, 503}, statuses
        return statuses == [200] * 8

    wait_until(calls_all_answered, timeout=120, what="every worker to answer", interval=0.5)
    assert Coupon.objects.get(pk=coupon.pk).uses == applied_ok == 10
    assert Redemption.objects.filter(coupon=coupon).count() == applied_ok
