"""The pure rules of entitlements/engine.py: how generous a value is, which source wins
(and is named), ties, features a source does not mention, and plan_allows (the upgrade
offer's question). No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entitlements import engine
from entitlements.engine import ABSENT, BOOLEAN, LIMIT, METERED, Candidate, FeatureState

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# Values as they are stored in a plan's map or a grant: well-formed and not.
limit_values = st.one_of(st.none(), st.integers(min_value=-5, max_value=10**6), st.just(ABSENT))
boolean_values = st.one_of(st.booleans(), st.just(ABSENT))
malformed = st.sampled_from(["3", 2.5, [], {}, "true", 1, 0])
sources = st.sampled_from(["plan", "trial", "default", "grant"])
expiries = st.one_of(st.none(), st.integers(0, 1000).map(lambda d: T0 + timedelta(days=d)))


def candidates_for(kind):
    values = boolean_values if kind == BOOLEAN else limit_values
    return st.lists(
        st.builds(
            Candidate, source=sources, value=st.one_of(values, malformed), expires_at=expiries
        ),
        max_size=6,
    )


def rank(kind, value):
    return engine.generosity(kind, engine.normalise(kind, value))


# --- generosity ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [LIMIT, METERED])
def test_limits_order_absent_then_zero_then_larger_then_unlimited(kind):
    ordered = [ABSENT, 0, 1, 2, 10, 10**9, None]
    ranks = [engine.generosity(kind, v) for v in ordered]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)


def test_booleans_order_absent_then_false_then_true():
    ranks = [engine.generosity(BOOLEAN, v) for v in (ABSENT, False, True)]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == 3


@given(a=st.integers(0, 10**9), b=st.integers(0, 10**9))
def test_a_larger_limit_is_more_generous(a, b):
    assert (engine.generosity(LIMIT, a) < engine.generosity(LIMIT, b)) == (a < b)
    assert engine.generosity(LIMIT, a) < engine.generosity(LIMIT, None)
    assert engine.generosity(LIMIT, ABSENT) < engine.generosity(LIMIT, a)


# --- normalise ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "stored", "read"),
    [
        (LIMIT, 5, 5),
        (LIMIT, 0, 0),
        (LIMIT, -3, 0),  # a negative limit gives nothing
        (LIMIT, None, None),  # unlimited
        (LIMIT, True, ABSENT),  # a boolean is not a limit
        (LIMIT, "5", ABSENT),
        (LIMIT, 2.5, ABSENT),
        (METERED, 100, 100),
        (BOOLEAN, True, True),
        (BOOLEAN, False, False),
        (BOOLEAN, 1, False),  # only true enables a boolean feature
        (BOOLEAN, "true", False),
        (BOOLEAN, None, False),
        (BOOLEAN, ABSENT, ABSENT),
    ],
)
def test_normalise_reads_stored_values(kind, stored, read):
    got = engine.normalise(kind, stored)
    assert got == read
    assert type(got) is type(read)  # False is not 0, ABSENT is not None


# --- resolve ------------------------------------------------------------------------------


def test_the_most_generous_source_wins_and_is_named():
    got = engine.resolve(
        "projects",
        LIMIT,
        [
            Candidate("plan", 3),
            Candidate("grant", 20, T0),
            Candidate("grant", 10, T0 + timedelta(days=1)),
        ],
        used=4,
    )
    assert got == FeatureState("projects", LIMIT, True, 20, 4, "grant", T0)
    assert (got.remaining, got.allows(16), got.allows(17)) == (16, True, False)


def test_a_less_generous_grant_does_not_win():
    got = engine.resolve("projects", LIMIT, [Candidate("plan", 10), Candidate("grant", 5)], 0)
    assert (got.limit, got.source, got.expires_at) == (10, "plan", None)


def test_a_tie_keeps_the_plan():
    plan = Candidate("trial", 10, T0)
    got = engine.resolve("projects", LIMIT, [plan, Candidate("grant", 10, T0 + timedelta(1))], 0)
    assert (got.source, got.expires_at) == ("trial", T0)
    sso = engine.resolve("sso", BOOLEAN, [Candidate("plan", True), Candidate("grant", True)], 0)
    assert (sso.enabled, sso.source) == (True, "plan")


def test_unlimited_beats_any_number():
    got = engine.resolve("projects", LIMIT, [Candidate("plan", 10**9), Candidate("grant", None)], 7)
    assert (got.enabled, got.limit, got.source, got.remaining) == (True, None, "grant", None)
    assert got.allows(10**12)


def test_a_feature_nobody_mentions_is_not_enabled():
    got = engine.resolve("projects", LIMIT, [Candidate("default", ABSENT)], 0)
    assert got == FeatureState("projects", LIMIT, False, 0, 0, "default", None)
    assert not got.allows(1)
    sso = engine.resolve("sso", BOOLEAN, [Candidate("plan", ABSENT)], 0)
    assert sso == FeatureState("sso", BOOLEAN, False, None, 0, "plan", None)
    nothing = engine.resolve("sso", BOOLEAN, [], 0)
    assert (nothing.enabled, nothing.source) == (False, "default")


def test_a_limit_of_zero_is_not_enabled_and_false_is_off():
    zero = engine.resolve("projects", LIMIT, [Candidate("plan", 0)], 0)
    assert (zero.enabled, zero.limit, zero.allows(1)) == (False, 0, False)
    off = engine.resolve("sso", BOOLEAN, [Candidate("plan", False)], 0)
    assert (off.enabled, off.allows()) == (False, False)


def test_usage_above_a_lowered_limit_is_kept_and_refuses_more():
    got = engine.resolve("projects", LIMIT, [Candidate("plan", 3)], used=5)
    assert (got.enabled, got.used, got.remaining, got.allows(1)) == (True, 5, 0, False)


@given(kind=st.sampled_from([BOOLEAN, LIMIT, METERED]), data=st.data())
def test_resolve_takes_the_first_of_the_most_generous(kind, data):
    candidates = data.draw(candidates_for(kind))
    used = data.draw(st.integers(0, 10**6))
    got = engine.resolve("f", kind, candidates, used)
    assert got.used == used
    if not candidates:
        assert (got.enabled, got.source) == (False, "default")
        return
    best = max(rank(kind, c.value) for c in candidates)
    if best == engine.generosity(kind, ABSENT):
        # nothing gives the feature: off, named after the first source, no expiry
        assert (got.enabled, got.source, got.expires_at) == (False, candidates[0].source, None)
        assert got.limit == (None if kind == BOOLEAN else 0)
        return
    winner = next(c for c in candidates if rank(kind, c.value) == best)
    value = engine.normalise(kind, winner.value)
    assert (got.source, got.expires_at) == (winner.source, winner.expires_at)
    assert engine.generosity(kind, value) == best
    if kind == BOOLEAN:
        assert (got.enabled, got.limit) == (value, None)
    else:
        assert got.limit == value
        assert got.enabled == (value is None or value > 0)


@given(kind=st.sampled_from([BOOLEAN, LIMIT]), data=st.data())
def test_another_source_never_makes_the_answer_less_generous(kind, data):
    candidates = data.draw(candidates_for(kind))
    extra = data.draw(candidates_for(kind).filter(bool)).pop()
    before = engine.resolve("f", kind, candidates, 0)
    after = engine.resolve("f", kind, [*candidates, extra], 0)
    value_before = before.enabled if kind == BOOLEAN else before.limit
    value_after = after.enabled if kind == BOOLEAN else after.limit
    assert engine.generosity(kind, value_after) >= engine.generosity(kind, value_before)


@given(kind=st.sampled_from([BOOLEAN, LIMIT]), data=st.data())
def test_the_order_of_sources_changes_at_most_which_tied_source_is_named(kind, data):
    candidates = data.draw(candidates_for(kind))
    shuffled = data.draw(st.permutations(candidates))
    a = engine.resolve("f", kind, candidates, 3)
    b = engine.resolve("f", kind, shuffled, 3)
    assert (a.enabled, a.limit) == (b.enabled, b.limit)


@given(
    limit=st.one_of(st.none(), st.integers(0, 100)),
    used=st.integers(0, 120),
    quantity=st.integers(1, 50),
)
def test_allows_is_used_plus_quantity_within_the_limit(limit, used, quantity):
    state = engine.resolve("projects", LIMIT, [Candidate("plan", limit)], used)
    fits = limit is None or (limit > 0 and used + quantity <= limit)
    assert state.allows(quantity) is fits
    assert state.remaining == (None if limit is None else max(limit - used, 0))


# --- plan_allows (the upgrade offer) --------------------------------------------------------


@given(
    kind=st.sampled_from([BOOLEAN, LIMIT, METERED]),
    value=st.one_of(limit_values, boolean_values, malformed),
    used=st.integers(0, 200),
    quantity=st.integers(1, 50),
)
def test_plan_allows_agrees_with_resolving_that_plan_alone(kind, value, used, quantity):
    """A plan offered as the upgrade would really allow the request once subscribed."""
    alone = engine.resolve("f", kind, [Candidate("plan", value)], used)
    assert engine.plan_allows(kind, value, used, quantity) is alone.allows(quantity)


@pytest.mark.parametrize(
    ("kind", "value", "used", "quantity", "allowed"),
    [
        (LIMIT, 10, 9, 1, True),
        (LIMIT, 10, 10, 1, False),
        (LIMIT, 10, 5, 6, False),
        (LIMIT, None, 10**6, 1, True),
        (LIMIT, 0, 0, 1, False),
        (LIMIT, ABSENT, 0, 1, False),
        (BOOLEAN, True, 0, 1, True),
        (BOOLEAN, False, 0, 1, False),
        (BOOLEAN, ABSENT, 0, 1, False),
    ],
)
def test_plan_allows_examples(kind, value, used, quantity, allowed):
    assert engine.plan_allows(kind, value, used, quantity) is allowed
