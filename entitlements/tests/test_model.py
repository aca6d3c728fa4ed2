"""Entitlements as a hypothesis state machine (issue 14, "Tests"): random interleavings of
plan edits (billing.services.plan_update), subscribe / upgrade / scheduled downgrade /
cancel (billing.services), grants with and without expiry, revokes, time passing (to a
grant's expiry exactly, or by hours), and reserves and releases of a small pool of
resources with quantities 1-3, run against real PostgreSQL and Redis through the
services, not HTTP.

A plain-Python model written here from API.md and the issue predicts every feature's
enabled / limit / used / source / expires_at, the plan and status, each reserve's and
release's answer (the upgrade offered included), the usage row and the reservations.
After every step the database is compared with the model:

- selectors.entitlements_compute (PostgreSQL) and cache.entitlements_get in two
  simulated processes (each its own LRU over the one Redis) give the model's answer;
- the usage row and the reservation rows are the model's, and used is the sum of the
  reservations' quantities;
- check(projects, 1) and check(sso) say what the model allows.

The rules the model encodes: the most generous of the plan (or the default plan without a
subscription) and the live grants wins, a tie keeps the plan (then the older grant); a
grant counts while not revoked and before expires_at; a reserve of a held resource is
allowed and counts once; a new reserve fits when used + quantity <= limit; after a
downgrade below usage nothing is taken away and new reserves are refused until usage is
under the limit; a release gives back exactly what its reserve took.

Time is a fake clock (django.utils.timezone.now patched) moved by the machine; it never
goes back. A second test drives the same machine by hand through one fixed run of the
rules the random runs reach only now and then (an expiry passing exactly, a downgrade
below usage, releases after it).

Budget: ENTITLEMENTS_STATEFUL_EXAMPLES (default 12) examples of up to
ENTITLEMENTS_STATEFUL_STEPS (default 20) steps, derandomized (80 x 30 passed once).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, currently_in_test_context, settings
from hypothesis import event as _event
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from billing import services as billing_services
from billing.tests import support as billing
from core import redis_guard
from core.errors import DomainError
from entitlements import cache, selectors, services
from entitlements.models import Reservation, Usage
from entitlements.tests import support as t

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("ENTITLEMENTS_STATEFUL_EXAMPLES", "12"))
STEPS = int(os.environ.get("ENTITLEMENTS_STATEFUL_STEPS", "20"))

ABSENT = "absent"  # the model's "the plan does not mention this feature"
FREE = "sm-free"
PLANS = {FREE: 0, "sm-basic": 900, "sm-pro": 2900, "sm-team": 9900}  # amount, monthly USD
PAID = [code for code in PLANS if code != FREE]
RESOURCES = [f"r-{n}" for n in range(6)]

# Hypothesis leans towards the first values listed: the common ones come first.
project_values = st.sampled_from([3, 5, 1, 8, None, 2, 0, ABSENT])
quantities = st.sampled_from([1, 1, 1, 2, 3])
sso_values = st.sampled_from([False, True, ABSENT])

_examples = itertools.count()


def event(name: str) -> None:
    """hypothesis.event, also callable when a test drives the rules by hand."""
    if currently_in_test_context():
        _event(name)


REAL_NOW = timezone.now


class Clock:
    """The fake wall clock: every example continues from where the last one left it."""

    now = REAL_NOW()


def _fake_now() -> datetime:
    return Clock.now


# --- the model ---------------------------------------------------------------------------


@dataclass
class GrantM:
    pk: object
    feature: str
    value: object
    expires_at: datetime | None
    revoked: bool = False

    def live(self, now: datetime) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > now)


@dataclass
class Model:
    plans: dict[str, dict] = field(default_factory=dict)
    plan: str | None = None  # the subscription's plan; None: the default plan
    grants: list[GrantM] = field(default_factory=list)  # in creation order
    held: dict[str, int] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return sum(self.held.values())

    def source(self) -> tuple[str, dict]:
        if self.plan is None:
            return "default", self.plans[FREE]
        return "plan", self.plans[self.plan]

    def feature(self, key: str, now: datetime) -> tuple:
        """(enabled, limit, used, source, expires_at), as API.md describes a feature."""
        source, values = self.source()
        candidates = [(source, values.get(key, ABSENT), None)]
        candidates += [
            ("grant", g.value, g.expires_at)
            for g in self.grants
            if g.feature == key and g.live(now)
        ]
        used = self.used if key == "projects" else 0

        def generosity(value):
            if value is ABSENT:
                return -1
            if key == "sso":
                return 1 if value is True else 0
            return float("inf") if value is None else value

        best = candidates[0]
        for candidate in candidates[1:]:
            if generosity(candidate[1]) > generosity(best[1]):  # a tie keeps the first
                best = candidate
        name, value, expires_at = best
        if value is ABSENT:
            return (False, None if key == "sso" else 0, used, source, None)
        if key == "sso":
            return (value is True, None, used, name, expires_at)
        return (value is None or value > 0, value, used, name, expires_at)

    def allows(self, key: str, quantity: int, now: datetime) -> bool:
        enabled, limit, used, _, _ = self.feature(key, now)
        return enabled and (limit is None or used + quantity <= limit)

    def upgrade(self, key: str, quantity: int) -> str | None:
        """The cheapest other active plan whose own value would allow the request."""
        current = self.plan or FREE
        for code in sorted(self.plans, key=lambda c: (PLANS[c], c)):
            if code == current:
                continue
            value = self.plans[code].get(key, ABSENT)
            if value is ABSENT:
                continue
            if key == "sso" and value is True:
                return code
            if key != "sso" and (value is None or self.used + quantity <= value):
                return code
        return None


def view(ents: selectors.Entitlements) -> dict:
    return {
        "plan": ents.plan,
        "status": ents.subscription_status,
        "features": {
            key: (s.enabled, s.limit, s.used, s.source, s.expires_at)
            for key, s in sorted(ents.features.items())
        },
    }


class Process:
    """A process of the monolith as the cache sees it: its own LRU over the one Redis."""

    def __init__(self) -> None:
        self.local = cache._Local()

    def get(self, customer_id: str) -> selectors.Entitlements:
        with mock.patch.object(cache, "local", self.local):
            return cache.entitlements_get(customer_id)

    def check(self, customer_id: str, key: str, quantity: int = 1) -> services.Decision:
        with mock.patch.object(cache, "local", self.local):
            return services.check(customer_id=customer_id, feature_key=key, quantity=quantity)


# --- the machine -------------------------------------------------------------------------


class Entitlements(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ready = False

    @initialize(
        free=st.tuples(project_values, sso_values),
        basic=st.tuples(project_values, sso_values),
        pro=st.tuples(project_values, sso_values),
        team=st.tuples(project_values, sso_values),
    )
    def start(self, free, basic, pro, team):
        self.n = next(_examples)
        self.customer = f"sm-{self.n}"
        Clock.now = max(Clock.now, REAL_NOW()) + timedelta(seconds=1)
        self.model = Model()
        self.sub = None
        self.processes = (Process(), Process())
        billing.customer(self.customer)
        for code, values in zip(PLANS, (free, basic, pro, team), strict=True):
            self.edit(code, *values)
        self.ready = True

    def tick(self) -> None:
        """Every step happens a second after the previous one (grants are ordered by
        their creation time)."""
        Clock.now += timedelta(seconds=1)

    # --- plans and subscriptions ---

    def edit(self, code, projects, sso) -> None:
        features = {k: v for k, v in (("projects", projects), ("sso", sso)) if v is not ABSENT}
        billing_services.plan_update(code=code, fields={"features": features})
        self.model.plans[code] = features

    @precondition(lambda self: self.ready)
    @rule(code=st.sampled_from(list(PLANS)), projects=project_values, sso=sso_values)
    def edit_plan(self, code, projects, sso):
        self.tick()
        self.edit(code, projects, sso)
        event("edit a plan")

    @precondition(lambda self: self.ready and self.model.used > 0)
    @rule(by=st.integers(1, 3))
    def edit_plan_below_usage(self, by):
        """The customer's plan (or the default plan) edited to a projects limit under what
        they hold: nothing is taken away, new reserves are refused until usage is under
        it (a more generous grant still wins)."""
        self.tick()
        code = self.model.plan or FREE
        values = self.model.plans[code]
        self.edit(code, max(self.model.used - by, 0), values.get("sso", ABSENT))
        event("edit a plan below usage")

    @precondition(lambda self: self.ready)
    @rule(code=st.sampled_from(PAID), cancel=st.booleans())
    def subscription(self, code, cancel):
        """Without a subscription: subscribe. With one: cancel now, or change plan (an
        upgrade takes effect now; a downgrade waits for the period end, which this machine
        never reaches; the same plan is refused)."""
        self.tick()
        current = self.model.plan
        if current is None:
            self.sub = billing_services.subscription_create(
                customer_id=self.customer, plan_code=code, trial=False
            )
            assert self.sub.status == "active"
            self.model.plan = code
            event("subscribe")
        elif cancel:
            billing_services.subscription_cancel(sub_id=self.sub.pk, at_period_end=False)
            self.model.plan = self.sub = None
            event("cancel now")
        else:
            try:
                billing_services.subscription_change(sub_id=self.sub.pk, plan_code=code)
                refused = None
            except DomainError as exc:
                refused = exc.code
            if code == current:
                assert refused == "same_plan"
            else:
                assert refused is None, refused
                if PLANS[code] > PLANS[current]:
                    self.model.plan = code
            event("upgrade" if PLANS[code] > PLANS[current] else "downgrade, at the period end")

    # --- grants and time ---

    @precondition(lambda self: self.ready)
    @rule(
        key=st.sampled_from(["projects", "sso"]),
        amount=st.sampled_from([6, 4, 8, 2, 1, 0]),
        hours=st.one_of(st.integers(1, 72), st.none()),
    )
    def grant(self, key, amount, hours):
        # Grant values are whole numbers or true here: a null (unlimited) grant cannot be
        # stored yet (reported with these tests).
        self.tick()
        value = True if key == "sso" else amount
        expires_at = None if hours is None else Clock.now + timedelta(hours=hours)
        made = services.grant_create(
            customer_id=self.customer, feature_key=key, value=value, expires_at=expires_at
        )
        self.model.grants.append(GrantM(made.pk, key, value, expires_at))
        event(f"grant {key}")

    @precondition(lambda self: self.ready and self.model.grants)
    @rule(data=st.data())
    def revoke(self, data):
        """Any grant: live, expired or revoked already (a no-op)."""
        self.tick()
        grant = data.draw(st.sampled_from(self.model.grants))
        services.grant_revoke(customer_id=self.customer, grant_id=grant.pk)
        grant.revoked = True
        event("revoke")

    @precondition(lambda self: self.ready)
    @rule(hours=st.integers(1, 30), to_expiry=st.booleans(), data=st.data())
    def time_passes(self, hours, to_expiry, data):
        """By some hours, or exactly to a live grant's expiry (it no longer counts)."""
        expiring = [g for g in self.model.grants if g.live(Clock.now) and g.expires_at]
        if to_expiry and expiring:
            grant = data.draw(st.sampled_from(expiring))
            Clock.now = grant.expires_at
            assert not grant.live(Clock.now)
            event("time: to a grant's expiry")
        else:
            Clock.now += timedelta(hours=hours)
            event("time: hours")

    # --- reserve and release ---

    @precondition(lambda self: self.ready)
    @rule(resource=st.sampled_from(RESOURCES), quantity=quantities)
    def reserve(self, resource, quantity):
        """A resource of the pool: a new one, or a retry of one held."""
        self.reserve_one(resource, quantity)

    @precondition(lambda self: self.ready and len(self.model.held) < len(RESOURCES))
    @rule(data=st.data(), quantity=quantities)
    def reserve_new(self, data, quantity):
        new = [r for r in RESOURCES if r not in self.model.held]
        self.reserve_one(data.draw(st.sampled_from(new)), quantity)

    def reserve_one(self, resource, quantity):
        self.tick()
        model = self.model
        now = Clock.now
        enabled, limit, used, _, _ = model.feature("projects", now)
        retry = resource in model.held
        fits = retry or model.allows("projects", quantity, now)
        upgrade = None if fits else model.upgrade("projects", quantity)
        got = services.reserve(
            customer_id=self.customer,
            feature_key="projects",
            resource_id=resource,
            quantity=quantity,
        )
        if fits and not retry:
            model.held[resource] = quantity
        reason = "" if fits else ("feature_not_enabled" if not enabled else "limit_reached")
        assert (got.allowed, got.limit, got.used, got.reason) == (
            fits,
            limit,
            model.used,
            reason,
        ), (resource, quantity, model)
        assert (got.upgrade or {}).get("plan") == upgrade, (got.upgrade, upgrade)
        if fits and not retry:  # a reserve that counted never passes the limit in force
            assert limit is None or got.used <= limit
        if limit is not None and used > limit:
            event("reserve while usage is above the limit (after a downgrade)")
        event(f"reserve: {'retry' if retry else 'allowed' if fits else reason}")

    @precondition(lambda self: self.ready and self.model.held)
    @rule(data=st.data(), not_held=st.integers(0, 3))
    def release(self, data, not_held):
        """A held resource; one time in four any resource (one not held: a no-op)."""
        self.tick()
        model = self.model
        pool = RESOURCES if not_held == 3 else sorted(model.held)
        resource = data.draw(st.sampled_from(pool))
        taken = model.held.pop(resource, 0)
        got = services.release(
            customer_id=self.customer, feature_key="projects", resource_id=resource
        )
        _, limit, _, _, _ = model.feature("projects", Clock.now)
        assert (got.allowed, got.limit, got.used) == (True, limit, model.used), (taken, model)
        event("release: held" if taken else "release: not held")

    # --- after every step ---

    @invariant()
    def the_database_and_the_caches_match_the_model(self):
        if not self.ready:
            return
        model, now = self.model, Clock.now
        want = {
            "plan": model.plan or FREE,
            "status": "active" if model.plan else None,
            "features": {key: model.feature(key, now) for key in ("projects", "sso")},
        }
        assert view(selectors.entitlements_compute(self.customer)) == want, "PostgreSQL"
        for n, process in enumerate(self.processes):
            assert view(process.get(self.customer)) == want, f"process {n}"
        a, b = self.processes
        assert a.check(self.customer, "projects").allowed is model.allows("projects", 1, now)
        assert b.check(self.customer, "sso").allowed is model.allows("sso", 1, now)
        usage = list(Usage.objects.filter(customer_id=self.customer).values_list("used", flat=True))
        assert usage == [model.used] or (usage == [] and model.used == 0), usage
        rows = dict(
            Reservation.objects.filter(customer_id=self.customer).values_list(
                "resource_id", "quantity"
            )
        )
        assert rows == model.held
        assert sum(rows.values()) == model.used

    def teardown(self):
        if self.ready:
            _, limit, used, source, _ = self.model.feature("projects", Clock.now)
            event(f"final projects source: {source}")
            if limit is not None and used > limit:
                event("final: usage above the limit (a downgrade kept it)")
        self.ready = False


@pytest.fixture
def world(settings):
    """The catalog every example shares, the fake clock, and Redis never paused."""
    settings.BILLING_TEST_GATEWAY_FAILURE = "none"
    settings.BILLING_TEST_GATEWAY_LATENCY_MS = 0
    settings.ENTITLEMENTS_LOCAL_CACHE_SIZE = 1000
    t.feature("projects", "limit")
    t.feature("sso", "boolean")
    for code, amount in PLANS.items():
        billing.plan(code, amount, is_default=code == FREE)
    redis_guard.reset()
    # a busy box's slow Redis call would pause Redis (reads from PostgreSQL: still right,
    # but the caches would go untested)
    with (
        mock.patch.object(timezone, "now", _fake_now),
        mock.patch.object(redis_guard, "SLOW_SECONDS", 30.0),
    ):
        yield


def test_entitlements_state_machine(world):
    run_state_machine_as_test(
        Entitlements,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


class Pick:
    """Stands in for st.data() when a test drives the machine's rules by hand."""

    def __init__(self, *values):
        self.values = list(values)

    def draw(self, strategy):
        return self.values.pop(0)


def test_the_documented_rules_step_by_step(world):
    """One fixed run of the machine through the rules the random runs may reach rarely:
    a grant above the plan, used up, then its expiry passing exactly (usage kept above
    the limit, new reserves refused until under it), releases giving back exactly what
    was taken, a retry counting once, a plan edit below usage. The model is checked
    after every step, as in the random runs."""
    machine = Entitlements()
    check = machine.the_database_and_the_caches_match_the_model
    machine.start(free=(3, False), basic=(5, True), pro=(8, True), team=(None, True))
    steps = [
        lambda: machine.grant("projects", 6, 5),  # 6 projects for 5 hours
        lambda: machine.reserve_one("r-0", 3),
        lambda: machine.reserve_one("r-0", 1),  # a retry: counted once
        lambda: machine.reserve_one("r-1", 3),  # 6 of 6
        lambda: machine.reserve_one("r-2", 1),  # refused: the upgrade offered is pro (8)
        lambda: machine.time_passes(1, True, Pick(machine.model.grants[0])),  # at expiry
        lambda: machine.reserve_one("r-2", 1),  # 6 held, limit 3: refused
        lambda: machine.release(Pick("r-0"), 0),  # gives back 3: 3 of 3
        lambda: machine.reserve_one("r-2", 1),  # still refused: not under the limit
        lambda: machine.release(Pick("r-5"), 3),  # not held: a no-op
        lambda: machine.release(Pick("r-1"), 0),  # 0 of 3
        lambda: machine.reserve_one("r-2", 2),  # 2 of 3
        lambda: machine.subscription("sm-pro", False),  # 8 projects
        lambda: machine.reserve_one("r-3", 3),  # 5 of 8
        lambda: machine.edit_plan_below_usage(2),  # pro edited to 3 projects, 5 held
        lambda: machine.reserve_one("r-4", 1),  # refused
        lambda: machine.subscription("sm-team", False),  # an upgrade: unlimited
        lambda: machine.reserve_one("r-4", 3),
        lambda: machine.subscription("sm-basic", True),  # cancelled now: the default, 3
        lambda: machine.reserve_one("r-5", 1),  # 8 held, limit 3: refused
    ]
    check()
    for step in steps:
        step()
        check()
    assert machine.model.used == 8
    assert machine.model.feature("projects", Clock.now)[1:4] == (3, 8, "default")
