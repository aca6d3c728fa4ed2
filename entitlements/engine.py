"""The pure rules of entitlements: which source gives a feature its value, how generous
a value is, and whether a request fits. No ORM: plain values in, dataclasses out.

Values: a boolean feature is true/false; a limit or metered feature is an integer limit,
or None for unlimited; a feature a plan does not mention is not enabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

BOOLEAN, LIMIT, METERED = "boolean", "limit", "metered"
ABSENT = object()  # a source that says nothing about the feature


@dataclass(frozen=True)
class Candidate:
    """One source's value for a feature: `plan` | `trial` | `default` | `grant`."""

    source: str
    value: object
    expires_at: datetime | None = None


@dataclass(frozen=True)
class FeatureState:
    key: str
    type: str
    enabled: bool
    limit: int | None
    used: int
    source: str
    expires_at: datetime | None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    def allows(self, quantity: int = 1) -> bool:
        if not self.enabled:
            return False
        if self.type == BOOLEAN or self.limit is None:
            return True
        return self.used + quantity <= self.limit


def normalise(kind: str, value: object) -> object:
    """A stored value as the engine reads it: ABSENT, a bool, an int, or None (unlimited)."""
    if value is ABSENT:
        return ABSENT
    if kind == BOOLEAN:
        return value is True
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return ABSENT  # a malformed plan value gives nothing (the admin validates)
    return max(value, 0)


def generosity(kind: str, value: object) -> tuple[int, int]:
    """Sort key: larger is more generous. ABSENT < false/0 < n < unlimited."""
    if value is ABSENT:
        return (0, 0)
    if kind == BOOLEAN:
        return (1 + int(bool(value)), 0)
    if value is None:
        return (3, 0)
    return (2, cast(int, value))


def resolve(key: str, kind: str, candidates: list[Candidate], used: int) -> FeatureState:
    """The most generous source wins; on a tie the first listed (the plan before grants)."""
    best: Candidate | None = None
    best_rank = (-1, 0)
    for candidate in candidates:
        value = normalise(kind, candidate.value)
        rank = generosity(kind, value)
        if rank > best_rank:
            best, best_rank = Candidate(candidate.source, value, candidate.expires_at), rank
    if best is None or best.value is ABSENT:
        source = candidates[0].source if candidates else "default"
        return FeatureState(key, kind, False, 0 if kind != BOOLEAN else None, used, source, None)
    if kind == BOOLEAN:
        return FeatureState(key, kind, bool(best.value), None, used, best.source, best.expires_at)
    limit = cast(int | None, best.value)
    enabled = limit is None or limit > 0
    return FeatureState(key, kind, enabled, limit, used, best.source, best.expires_at)


def plan_allows(kind: str, value: object, used: int, quantity: int) -> bool:
    """Would a plan with this value allow `quantity` more (for the upgrade offer)?"""
    value = normalise(kind, value)
    if value is ABSENT:
        return False
    if kind == BOOLEAN:
        return value is True
    if value is None:
        return True
    return used + quantity <= cast(int, value)
