"""The tiered cache of entitlements (entitlements/cache.py): after each kind of change a
read that was served from a cache before it sees the change on the next read after the
commit, in this process and in another one (its own LRU, the same Redis); a cache never
answers a stale denial; Redis gone means PostgreSQL answers (never this process's LRU
unconfirmed); version keys lost in Redis are repaired; readers racing changes leave no
stale entry behind. Real commits (on_commit publishes), real Redis.

"Served from a cache" is measured: the read ran no SQL at all. The processes are
simulated by giving each its own LRU (cache.local) over the one Redis;
tests/faults/test_entitlements_cache.py does the same with real gunicorn processes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_redis import get_redis_connection

from billing import services as billing_services
from billing.tests import support as billing
from core import redis_guard
from entitlements import cache, selectors, services
from entitlements.models import PLANS_ACCOUNT, Grant
from entitlements.tests import support as t
from tests.faults.conftest import free_port, wait_until
from tests.race import race_calls, unexpected

pytestmark = pytest.mark.django_db(transaction=True)

CUSTOMER = "u-1"


@pytest.fixture(autouse=True)
def _redis_never_paused(monkeypatch):
    """A busy box can make one Redis call slower than redis_guard's 0.2 s, which pauses
    Redis for a second and sends reads to PostgreSQL: right in production, but here it
    would turn a read that must come from a cache into a computed one."""
    redis_guard.reset()
    monkeypatch.setattr(redis_guard, "SLOW_SECONDS", 30.0)
    yield
    redis_guard.reset()


class Process:
    """A process of the monolith as the cache sees it: its own bounded LRU over the
    shared Redis and PostgreSQL."""

    def __init__(self, name: str):
        self.name = name
        self.local = cache._Local()

    def get(self, customer_id: str = CUSTOMER) -> selectors.Entitlements:
        with mock.patch.object(cache, "local", self.local):
            return cache.entitlements_get(customer_id)

    def check(self, feature: str, quantity: int = 1, customer_id: str = CUSTOMER):
        with mock.patch.object(cache, "local", self.local):
            return services.check(customer_id=customer_id, feature_key=feature, quantity=quantity)

    def cached_get(self, customer_id: str = CUSTOMER) -> selectors.Entitlements:
        """A read that must be served from a cache (no SQL)."""
        with CaptureQueriesContext(connection) as queries:
            ents = self.get(customer_id)
        assert not queries.captured_queries, (
            f"{self.name}: a warm read ran SQL: {[q['sql'] for q in queries.captured_queries]}"
        )
        return ents


def view(ents: selectors.Entitlements) -> dict:
    """What an answer says (API.md's fields), for comparing."""
    return {
        "plan": ents.plan,
        "subscription_status": ents.subscription_status,
        "features": {
            key: (s.enabled, s.limit, s.used, s.source, s.expires_at)
            for key, s in sorted(ents.features.items())
        },
    }


def truth(customer_id: str = CUSTOMER) -> dict:
    return view(selectors.entitlements_compute(customer_id))


# --- the changes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """`setup()` puts the customer in the state before; `change()` commits the change;
    `before`/`after` check an answer (the cached one before, the next one after);
    `check`: a (feature, quantity) whose check flips with the change."""

    setup: Callable[[], object]
    change: Callable[[object], object]
    before: Callable[[dict], bool]
    after: Callable[[dict], bool]
    check: tuple[str, int] | None = None


def _f(answer: dict, key: str):
    enabled, limit, used, source, _expires_at = answer["features"][key]
    return {"enabled": enabled, "limit": limit, "used": used, "source": source}


def _subscribed(plan="pro"):
    billing.customer(CUSTOMER)
    return billing_services.subscription_create(customer_id=CUSTOMER, plan_code=plan, trial=False)


def _grant_sso():
    return services.grant_create(
        customer_id=CUSTOMER, feature_key="sso", value=True, expires_at=None
    )


CHANGES = {
    # billing's plan edit: plan.updated -> entitlements.consumers.on_plan
    "plan-edit-gives": Change(
        setup=lambda: None,
        change=lambda _: billing_services.plan_update(
            code="free", fields={"features": {"projects": 5, "sso": False}}
        ),
        before=lambda a: _f(a, "projects")["limit"] == 3,
        after=lambda a: _f(a, "projects")["limit"] == 5,
        check=("projects", 5),
    ),
    "plan-edit-takes-away": Change(
        setup=_subscribed,
        change=lambda _: billing_services.plan_update(
            code="pro", fields={"features": {"projects": 10, "sso": False}}
        ),
        before=lambda a: _f(a, "sso")["enabled"],
        after=lambda a: not _f(a, "sso")["enabled"],
        check=("sso", 1),
    ),
    # billing's subscription changes: subscription.* -> entitlements.consumers
    "subscribe": Change(
        setup=lambda: billing.customer(CUSTOMER),
        change=lambda _: billing_services.subscription_create(
            customer_id=CUSTOMER, plan_code="pro", trial=False
        ),
        before=lambda a: a["plan"] == "free" and _f(a, "projects")["source"] == "default",
        after=lambda a: (
            (a["plan"], a["subscription_status"]) == ("pro", "active")
            and _f(a, "projects") == {"enabled": True, "limit": 10, "used": 0, "source": "plan"}
        ),
        check=("sso", 1),
    ),
    "upgrade": Change(
        setup=_subscribed,
        change=lambda sub: billing_services.subscription_change(sub_id=sub.pk, plan_code="team"),
        before=lambda a: a["plan"] == "pro",
        after=lambda a: a["plan"] == "team" and _f(a, "projects")["limit"] is None,
        check=("projects", 11),
    ),
    "cancel-now": Change(
        setup=_subscribed,
        change=lambda sub: billing_services.subscription_cancel(sub_id=sub.pk, at_period_end=False),
        before=lambda a: a["plan"] == "pro" and _f(a, "sso")["enabled"],
        after=lambda a: (
            (a["plan"], a["subscription_status"]) == ("free", None) and not _f(a, "sso")["enabled"]
        ),
        check=("sso", 1),
    ),
    # entitlements' own changes
    "grant": Change(
        setup=lambda: None,
        change=lambda _: _grant_sso(),
        before=lambda a: not _f(a, "sso")["enabled"],
        after=lambda a: _f(a, "sso")["enabled"] and _f(a, "sso")["source"] == "grant",
        check=("sso", 1),
    ),
    "revoke": Change(
        setup=_grant_sso,
        change=lambda grant: services.grant_revoke(customer_id=CUSTOMER, grant_id=grant.pk),
        before=lambda a: _f(a, "sso")["enabled"],
        after=lambda a: not _f(a, "sso")["enabled"],
        check=("sso", 1),
    ),
    "usage-event": Change(
        setup=lambda: None,
        change=lambda _: services.usage_record(
            events=[
                services.UsageIn("ev-1", CUSTOMER, "api_calls", 7, timezone.now()),
            ]
        ),
        before=lambda a: _f(a, "api_calls")["used"] == 0,
        after=lambda a: _f(a, "api_calls")["used"] == 7,
    ),
    "reserve": Change(
        setup=lambda: [
            services.reserve(customer_id=CUSTOMER, feature_key="projects", resource_id=f"p-{n}")
            for n in range(2)
        ],
        change=lambda _: services.reserve(
            customer_id=CUSTOMER, feature_key="projects", resource_id="p-2"
        ),
        before=lambda a: _f(a, "projects")["used"] == 2,
        after=lambda a: _f(a, "projects")["used"] == 3,
        check=("projects", 1),
    ),
    "release": Change(
        setup=lambda: [
            services.reserve(customer_id=CUSTOMER, feature_key="projects", resource_id=f"p-{n}")
            for n in range(3)
        ],
        change=lambda _: services.release(
            customer_id=CUSTOMER, feature_key="projects", resource_id="p-0"
        ),
        before=lambda a: _f(a, "projects")["used"] == 3,
        after=lambda a: _f(a, "projects")["used"] == 2,
        check=("projects", 1),
    ),
    "feature-created": Change(
        setup=lambda: None,
        change=lambda _: t.feature("exports", "boolean"),
        before=lambda a: "exports" not in a["features"],
        after=lambda a: _f(a, "exports")["enabled"] is False,
    ),
}


@pytest.mark.parametrize("kind", list(CHANGES))
def test_after_each_kind_of_change_the_next_read_in_every_process_sees_it(kind):
    # given two processes whose caches both hold the customer's answer
    t.setup_catalog()
    spec = CHANGES[kind]
    state = spec.setup()
    a, b = Process("a"), Process("b")
    a.get()
    b.get()
    for process in (a, b):
        cached = view(process.cached_get())
        assert spec.before(cached), (kind, process.name, cached)
        assert cached == truth()
    checked = None
    if spec.check:
        checked = a.check(*spec.check).allowed
    # when the change commits (in this process: a)
    spec.change(state)
    # then the next read in each process, and in a third that never read, sees it
    for process in (a, b, Process("c")):
        answer = view(process.get())
        assert spec.after(answer), (kind, process.name, answer)
        assert answer == truth(), (kind, process.name)
    if spec.check:
        for process in (a, b):
            now = process.check(*spec.check).allowed
            assert now is not checked, (kind, process.name, spec.check, checked, now)
    # and the new answer is cached again: the following read needs no SQL
    assert view(b.cached_get()) == truth()


def test_a_grant_s_expiry_is_seen_without_any_change_being_committed(monkeypatch):
    t.setup_catalog()
    expires = timezone.now() + timedelta(hours=2)
    services.grant_create(
        customer_id=CUSTOMER, feature_key="projects", value=20, expires_at=expires
    )
    a = Process("a")
    a.get()
    assert _f(view(a.cached_get()), "projects")["limit"] == 20
    later = expires + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    for process in (a, Process("b")):
        answer = view(process.get())
        assert _f(answer, "projects") == {
            "enabled": True,
            "limit": 3,
            "used": 0,
            "source": "default",
        }
        assert process.check("projects", 4).allowed is False


def test_a_cached_denial_is_confirmed_from_postgresql_even_after_a_lost_publish(monkeypatch):
    # given a cached answer without sso, then a grant of sso whose publish to Redis is
    # lost (Redis missed it): the cached entry still matches Redis's number
    t.setup_catalog()
    a = Process("a")
    a.get()
    assert not _f(view(a.cached_get()), "sso")["enabled"]
    with mock.patch.object(cache, "publish", return_value=None):
        _grant_sso()
    stale = view(a.cached_get())
    assert not _f(stale, "sso")["enabled"]  # the documented window: a stale "no" is read
    # then check never answers the stale denial: it is confirmed from PostgreSQL
    decision = a.check("sso")
    assert decision.allowed is True
    # and once the version key expires (ENTITLEMENTS_VERSION_TTL) the answer is repaired
    redis = get_redis_connection("default")
    redis.delete(cache.version_key(CUSTOMER))
    assert view(a.get()) == truth()
    assert _f(view(a.get()), "sso")["enabled"]


def test_lost_version_keys_are_repaired_from_postgresql_and_never_roll_back():
    t.setup_catalog()
    a = Process("a")
    a.get()
    _grant_sso()
    versions = selectors.versions(CUSTOMER)
    redis = get_redis_connection("default")
    # Redis restarted empty, or the keys expired
    redis.delete(cache.version_key(CUSTOMER), cache.version_key(PLANS_ACCOUNT))
    assert view(a.get()) == truth()
    published = tuple(int(redis.get(cache.version_key(k))) for k in (CUSTOMER, PLANS_ACCOUNT))
    assert published == versions
    # an old publish arriving late never moves a number back
    cache.publish(CUSTOMER, versions[0] - 1)
    assert int(redis.get(cache.version_key(CUSTOMER))) == versions[0]


def test_with_redis_gone_reads_come_from_postgresql_not_from_the_local_copy():
    # given a process whose LRU holds the customer's answer (sso granted)
    t.setup_catalog()
    grant = _grant_sso()
    a = Process("a")
    a.get()
    assert _f(view(a.cached_get()), "sso")["enabled"]
    dead = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "KEY_PREFIX": "ge-test",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.25,
                "SOCKET_TIMEOUT": 0.25,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    # when Redis goes away and the grant is revoked (its publish fails)
    with override_settings(CACHES=dead):
        services.grant_revoke(customer_id=CUSTOMER, grant_id=grant.pk)
        # then reads and checks answer from PostgreSQL: the revoke is seen at once
        for _ in range(3):
            redis_guard.reset()  # each read tries Redis (refused) rather than skipping it
            assert view(a.get()) == truth()
            assert not _f(view(a.get()), "sso")["enabled"]
            assert a.check("sso").allowed is False
        # and while Redis is paused (after a failure) too
        redis_guard.pause()
        assert view(a.get()) == truth()
        # and a grant made meanwhile is allowed at once (never a stale denial)
        _grant_sso()
        assert a.check("sso").allowed is True
    # when Redis is back (restarted: empty, as a killed Redis without persistence comes
    # back) the cache is used again, and current
    get_redis_connection("default").flushdb()
    redis_guard.reset()
    assert view(a.get()) == truth()
    assert view(a.cached_get()) == truth()
    assert _f(view(a.cached_get()), "sso")["enabled"]


def test_a_test_clock_customer_is_never_cached():
    t.setup_catalog()
    billing.customer(CUSTOMER, test_clock=billing.clock(timezone.now().isoformat()))
    a = Process("a")
    a.get()
    with CaptureQueriesContext(connection) as queries:
        a.get()
    assert queries.captured_queries


@override_settings(ENTITLEMENTS_LOCAL_CACHE_SIZE=2)
def test_the_local_copy_is_bounded():
    t.setup_catalog()
    a = Process("a")
    for n in range(5):
        a.get(f"u-{n}")
    assert len(a.local) == 2


@pytest.mark.parametrize("keys", ["published", "missing"])
def test_a_change_committed_while_a_read_computes_is_seen_by_the_next_read(monkeypatch, keys):
    """The compute of a read that missed the cache reads PostgreSQL, then a change
    commits (and publishes), then the read caches what it computed: that answer must not
    be used for the new numbers. `missing`: the version keys were gone (repaired by the
    read first)."""
    t.setup_catalog()
    a, b = Process("a"), Process("b")
    a.get()
    services.grant_create(customer_id=CUSTOMER, feature_key="projects", value=7, expires_at=None)
    if keys == "missing":
        get_redis_connection("default").delete(
            cache.version_key(CUSTOMER), cache.version_key(PLANS_ACCOUNT)
        )
    real = selectors.entitlements_compute
    changes = []

    def compute_then_commit_a_change(customer_id, **kw):
        ents = real(customer_id, **kw)
        if not changes:
            changes.append(_grant_sso())  # commits and publishes before the read caches
        return ents

    monkeypatch.setattr(selectors, "entitlements_compute", compute_then_commit_a_change)
    raced = view(a.get())
    monkeypatch.undo()
    assert changes, "the read did not compute"
    assert not _f(raced, "sso")["enabled"]  # it read before the change: fine for that read
    for process in (a, b, Process("c")):
        answer = view(process.get())
        assert _f(answer, "sso")["enabled"], process.name
        assert answer == truth(), process.name


def test_readers_racing_changes_leave_no_stale_entry_behind():
    """Six threads of this process (one LRU, as a threaded server's) read the customer's
    answer in a loop while another commits 12 grants of a growing projects limit. After
    each grant, once every reader has finished the read it was in (any entry those reads
    cached is stored), a read must show that grant: a read that straddled the commit must
    not have left an older answer under the new numbers."""
    t.setup_catalog()
    done = threading.Event()
    readers = 6
    last_start = [0.0] * readers  # monotonic start of each reader's current read
    seen: list[int] = []
    stale: list[tuple[int, int]] = []

    def writer():
        try:
            for limit in range(4, 16):
                services.grant_create(
                    customer_id=CUSTOMER, feature_key="projects", value=limit, expires_at=None
                )
                committed = time.monotonic()
                wait_until(
                    lambda c=committed: min(last_start) > c,
                    timeout=30,
                    what="every reader to start a read after the commit",
                )
                got = _f(view(cache.entitlements_get(CUSTOMER)), "projects")["limit"]
                if got != limit:
                    stale.append((limit, got))
        finally:
            done.set()

    def reader(n):
        def read():
            while not done.is_set():
                last_start[n] = time.monotonic()
                seen.append(_f(view(cache.entitlements_get(CUSTOMER)), "projects")["limit"])

        return read

    outcomes = race_calls([writer, *(reader(n) for n in range(readers))], workers=readers + 1)
    assert not unexpected(outcomes), unexpected(outcomes)
    assert len(set(seen)) > 1, "the reads did not overlap the changes"
    assert not stale, f"(committed limit, read limit) after a commit: {stale}"
    assert Grant.objects.count() == 12
    # then the next read here and in another process, and the cached ones after them,
    # are the final state
    final = truth()
    assert _f(final, "projects")["limit"] == 15
    assert view(cache.entitlements_get(CUSTOMER)) == final
    with CaptureQueriesContext(connection) as queries:
        assert view(cache.entitlements_get(CUSTOMER)) == final
    assert not queries.captured_queries
    other = Process("other")
    assert view(other.get()) == final
    assert view(other.cached_get()) == final
