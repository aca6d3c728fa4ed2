"""The entitlements cache across real processes (issue 14 "Tests"): two gunicorns (one
worker each, so each is one process with its own LRU) and a Celery worker (billing's
outbox) on the test database and a private Redis.

- After each kind of change, made through the API of one of them, the next read from
  each process sees it.
- Redis killed: reads and checks answer from PostgreSQL, correctly and fast (no 500, no
  stale denial, no stale "yes"), reserves still hold the limit; when Redis returns on the
  same port the cache serves again, and stays current.

"Served from a cache" is shown with a canary: a grant of a `canary` limit whose value the
test edits directly in PostgreSQL, bypassing the services (no version moves). An answer
that still shows an older canary value came from a cache; an answer computed from
PostgreSQL shows the latest one. So before each change both processes are seen answering
from their caches, and after it their answers show the change and the latest canary
(computed anew, not a cached answer that happens to agree).
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import OutboxEvent
from billing.tests import support as billing
from core.models import ApiKey
from entitlements import services
from entitlements.models import PLANS_ACCOUNT, Account, Grant
from entitlements.tests import support as t
from tests.faults.conftest import service_env, subprocess_database_url, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

CUSTOMER = "u-1"
ENTS = f"/api/v1/entitlements/{CUSTOMER}"
# Every call during the outage must still be quick: a refused Redis costs no waiting.
FAST = 2.0


class Shop:
    """The test's view of the deployment: API keys, the canary, the private Redis."""

    def __init__(self, redis):
        self.redis = redis
        _, storefront = ApiKey.objects.create_key(name="faults", scopes=["storefront"])
        _, admin = ApiKey.objects.create_key(name="faults-admin", scopes=["admin"])
        self.storefront = {"Authorization": f"Api-Key {storefront}"}
        self.admin = {"Authorization": f"Api-Key {admin}"}
        self.canary = services.grant_create(
            customer_id=CUSTOMER, feature_key="canary", value=1, expires_at=None
        )
        self.values = itertools.count(2)
        self.latest = 1
        self.keys = itertools.count()

    def poke(self) -> int:
        """Change the canary behind the caches' back (no version moves)."""
        self.latest = next(self.values)
        Grant.objects.filter(pk=self.canary.pk).update(value=self.latest)
        return self.latest

    def read(self, web) -> dict:
        reply = web.call("GET", ENTS, headers=self.storefront)
        assert reply.status == 200, reply.body
        return reply.json()

    def check(self, web, feature: str, quantity: int = 1) -> dict:
        reply = web.call(
            "POST",
            f"{ENTS}/check",
            {"feature": feature, "quantity": quantity},
            headers=self.storefront,
        )
        assert reply.status == 200, reply.body
        return reply.json()

    def cached(self, *webs) -> bool:
        """After a poke, does every one of `webs` still answer from its cache?"""
        poked = self.poke()
        return all(self.read(web)["features"]["canary"]["limit"] != poked for web in webs)

    def warm(self, *webs) -> None:
        """Wait until each process answers from its cache (a read that computed caches
        the answer, so the next poke shows whether it is served)."""
        wait_until(
            lambda: self.cached(*webs), timeout=30, what="both processes to answer from cache"
        )

    def fresh(self, body: dict) -> bool:
        return body["features"]["canary"]["limit"] == self.latest

    def idem(self) -> dict:
        return {**self.storefront, "Idempotency-Key": f"faults-{next(self.keys)}"}


def _published(shop: Shop) -> bool:
    """Billing's outbox delivered (the Celery worker ran entitlements' consumers) and the
    versions those moved published to Redis."""
    if OutboxEvent.objects.filter(delivered_at__isnull=True).exists():
        return False
    client = shop.redis.client(0)
    for account in (CUSTOMER, PLANS_ACCOUNT):
        number = Account.objects.filter(customer_id=account).values_list("version", flat=True)
        published = client.get(f"faults:ent:1:v:{account}")
        # a missing key is repaired from PostgreSQL by the next read
        if number and published is not None and int(published) < number[0]:
            return False
    return True


def _env(redis, **extra):
    return service_env(
        DATABASE_URL=subprocess_database_url(),
        REDIS_URL=redis.url(0),
        CELERY_BROKER_URL=redis.url(1),
        **extra,
    )


def _catalog():
    t.setup_catalog()  # free (default): 3 projects, no sso; pro: 10 + sso; team: unlimited
    t.feature("canary", "limit")
    billing.customer(CUSTOMER)


def test_every_kind_of_change_is_seen_by_the_next_read_of_every_process(
    private_redis, gunicorn, celery_worker
):
    # given two web processes and billing's outbox worker on one private Redis
    _catalog()
    redis = private_redis()
    shop = Shop(redis)
    env = _env(redis)
    a, b = gunicorn(env, workers=1), gunicorn(env, workers=1)
    celery_worker(env)
    sub_id = None

    def grant_sso(web):
        reply = web.call(
            "POST",
            f"/api/v1/admin/entitlements/{CUSTOMER}/grants",
            {"feature": "sso", "value": True},
            headers=shop.admin,
        )
        assert reply.status == 201, reply.body
        return reply.json()["id"]

    def subscribe(web):
        nonlocal sub_id
        reply = web.call(
            "POST",
            "/api/v1/billing/subscriptions",
            {"customer_id": CUSTOMER, "plan": "pro"},
            headers=shop.idem(),
        )
        assert reply.status == 201, reply.body
        sub_id = reply.json()["id"]

    def call(web, method, path, body, status, headers=None):
        reply = web.call(method, path, body, headers=headers or shop.storefront)
        assert reply.status == status, reply.body

    def projects(body):
        return body["features"]["projects"]

    state: dict = {}
    # (name, change(web), via billing's outbox, what the next reads must show, a check
    # that must now be refused)
    changes = [
        (
            "grant",
            lambda web: state.update(grant=grant_sso(web)),
            False,
            lambda x: x["features"]["sso"]["source"] == "grant",
            None,
        ),
        (
            "revoke",
            lambda web: call(
                web,
                "POST",
                f"/api/v1/admin/entitlements/{CUSTOMER}/grants/{state['grant']}/revoke",
                None,
                200,
                shop.admin,
            ),
            False,
            lambda x: x["features"]["sso"]["enabled"] is False,
            "sso",
        ),
        (
            "usage",
            lambda web: call(
                web,
                "POST",
                "/api/v1/usage",
                {
                    "events": [
                        {
                            "id": "ev-1",
                            "customer_id": CUSTOMER,
                            "feature": "api_calls",
                            "quantity": 5,
                            "timestamp": timezone.now().isoformat(),
                        }
                    ]
                },
                202,
            ),
            False,
            lambda x: x["features"]["api_calls"]["used"] == 5,
            None,
        ),
        (
            "reserve",
            lambda web: call(
                web,
                "POST",
                f"{ENTS}/reserve",
                {"feature": "projects", "resource_id": "p-1"},
                200,
            ),
            False,
            lambda x: projects(x)["used"] == 1,
            None,
        ),
        (
            "release",
            lambda web: call(
                web,
                "POST",
                f"{ENTS}/release",
                {"feature": "projects", "resource_id": "p-1"},
                200,
            ),
            False,
            lambda x: projects(x)["used"] == 0,
            None,
        ),
        (
            "subscribe",
            subscribe,
            True,
            lambda x: (
                (x["plan"], projects(x)["limit"], projects(x)["source"]) == ("pro", 10, "plan")
            ),
            None,
        ),
        (
            "plan edit",
            lambda web: call(
                web,
                "PATCH",
                "/api/v1/admin/plans/pro",
                {"features": {"projects": 20, "sso": False}},
                200,
                shop.admin,
            ),
            True,
            lambda x: projects(x)["limit"] == 20 and x["features"]["sso"]["enabled"] is False,
            "sso",
        ),
        (
            "upgrade",
            lambda web: call(
                web,
                "POST",
                f"/api/v1/billing/subscriptions/{sub_id}/change",
                {"plan": "team"},
                200,
                shop.idem(),
            ),
            True,
            lambda x: x["plan"] == "team" and projects(x)["limit"] is None,
            None,
        ),
        (
            "cancel now",
            lambda web: call(
                web,
                "POST",
                f"/api/v1/billing/subscriptions/{sub_id}/cancel",
                {"at_period_end": False},
                200,
                shop.idem(),
            ),
            True,
            lambda x: (
                (x["plan"], x["subscription_status"], projects(x)["limit"]) == ("free", None, 3)
            ),
            None,
        ),
        (
            "new feature",
            lambda web: call(
                web,
                "POST",
                "/api/v1/admin/features",
                {"key": "exports", "name": "Exports", "type": "boolean"},
                201,
                shop.admin,
            ),
            False,
            lambda x: x["features"].get("exports", {}).get("enabled") is False,
            None,
        ),
    ]
    for n, (name, change, outbox, shows, refused) in enumerate(changes):
        # given both processes answering from their caches
        shop.warm(a, b)
        before = {web.port: shop.read(web) for web in (a, b)}
        assert all(not shows(body) for body in before.values()), (name, before)
        if refused:
            assert all(shop.check(web, refused)["allowed"] for web in (a, b)), name
        # when the change is made through one of them (alternately)
        change((a, b)[n % 2])
        if outbox:
            wait_until(lambda: _published(shop), timeout=30, what=f"{name}: the outbox")
        # then the next read from each process shows it, computed anew
        for web in (a, b):
            body = shop.read(web)
            assert shows(body), (name, web.port, body)
            assert shop.fresh(body), (name, web.port, body["features"]["canary"], shop.latest)
            if refused:
                decision = shop.check(web, refused)
                assert decision["allowed"] is False, (name, web.port, decision)


def test_redis_killed_entitlements_answer_from_postgresql_and_the_cache_returns(
    private_redis, gunicorn
):
    # given a gunicorn with 2 workers on a private Redis, and a customer with an sso grant
    _catalog()
    redis = private_redis()
    shop = Shop(redis)
    grant = services.grant_create(
        customer_id=CUSTOMER, feature_key="sso", value=True, expires_at=None
    )
    web = gunicorn(_env(redis), workers=2)
    shop.warm(web)
    assert redis.client(0).keys("faults:ent:1:a:*"), "no answer was cached in Redis"
    timed = []

    def timed_call(method, path, body=None, headers=None):
        reply = web.call(method, path, body, headers=headers or shop.storefront)
        timed.append((method, path, reply.elapsed))
        assert reply.status < 500, (path, reply.status, reply.body)
        return reply

    def read():
        reply = timed_call("GET", ENTS)
        assert reply.status == 200, reply.body
        return reply.json()

    def check(feature, quantity=1):
        reply = timed_call("POST", f"{ENTS}/check", {"feature": feature, "quantity": quantity})
        assert reply.status == 200, reply.body
        return reply.json()

    def reserve(resource):
        return timed_call(
            "POST", f"{ENTS}/reserve", {"feature": "projects", "resource_id": resource}
        )

    # when Redis is killed
    redis.kill()

    # then every read is computed from PostgreSQL (the latest canary, each time; a few
    # reads so both workers answer) and correct
    for _ in range(6):
        shop.poke()
        body = read()
        assert shop.fresh(body), body["features"]["canary"]
        assert body["features"]["sso"] == {
            "type": "boolean",
            "enabled": True,
            "limit": None,
            "used": 0,
            "remaining": None,
            "source": "grant",
            "expires_at": None,
        }
        assert check("sso")["allowed"] is True
    # and a revoke is refused at once (no stale "yes"), a new grant allowed at once (no
    # stale denial)
    revoked = timed_call(
        "POST",
        f"/api/v1/admin/entitlements/{CUSTOMER}/grants/{grant.pk}/revoke",
        headers=shop.admin,
    )
    assert revoked.status == 200, revoked.body
    for _ in range(4):
        assert check("sso")["allowed"] is False
        assert read()["features"]["sso"]["enabled"] is False
    expires = (timezone.now() + timedelta(days=1)).isoformat()
    granted = timed_call(
        "POST",
        f"/api/v1/admin/entitlements/{CUSTOMER}/grants",
        {"feature": "projects", "value": 4, "expires_at": expires},
        headers=shop.admin,
    )
    assert granted.status == 201, granted.body
    for _ in range(4):
        assert check("projects", 4)["allowed"] is True
    # and reserves go to PostgreSQL and hold the limit (4, the grant's)
    assert [reserve(f"p-{n}").status for n in range(5)] == [200, 200, 200, 200, 422]
    assert reserve("p-0").json()["used"] == 4  # a retry counts once
    released = timed_call("POST", f"{ENTS}/release", {"feature": "projects", "resource_id": "p-0"})
    assert released.json()["used"] == 3
    assert check("projects")["allowed"] is True
    usage = timed_call(
        "POST",
        "/api/v1/usage",
        {
            "events": [
                {
                    "id": "ev-outage",
                    "customer_id": CUSTOMER,
                    "feature": "api_calls",
                    "quantity": 2,
                    "timestamp": timezone.now().isoformat(),
                }
            ]
        },
    )
    assert (usage.status, usage.json()) == (202, {"accepted": 1, "duplicates": 0})
    after = read()
    assert (after["features"]["api_calls"]["used"], after["features"]["projects"]["used"]) == (2, 3)
    ready = web.call("GET", "/health/ready")
    assert (ready.status, ready.json()["status"]) == (200, "degraded"), ready.body
    slowest = max(timed, key=lambda x: x[2])
    assert slowest[2] < FAST, f"{slowest} without Redis"

    # when Redis comes back on the same port (empty)
    redis.start()
    wait_until(
        lambda: web.call("GET", "/health/ready").json()["status"] == "ok",
        timeout=15,
        what="readiness to report ok after Redis restarted",
    )
    # then the cache serves again
    shop.warm(web)
    assert redis.client(0).keys("faults:ent:1:a:*"), "no answer cached after Redis returned"
    # and stays current: a change is seen by the next reads of both workers
    timed_call(
        "POST",
        f"{ENTS}/reserve",
        {"feature": "projects", "resource_id": "p-after"},
    )
    for _ in range(4):
        body = read()
        assert body["features"]["projects"]["used"] == 4
        assert shop.fresh(body)
    assert check("projects")["allowed"] is False
