"""Shared setup for entitlements tests: features and plans in a few lines."""

from __future__ import annotations

from billing.tests import support as billing
from entitlements import services
from entitlements.models import Feature


def feature(key="projects", type="limit", name=None) -> Feature:
    return services.feature_create(key=key, name=name or key.title(), type=type)


def plans(free_projects=3, pro_projects=10, team_projects=None):
    """Free (default, 3 projects, no sso), Pro ($29, 10, sso), Team ($99, unlimited, sso)."""
    free = billing.plan(
        "free", 0, is_default=True, features={"projects": free_projects, "sso": False}
    )
    pro = billing.plan("pro", 2900, features={"projects": pro_projects, "sso": True})
    team = billing.plan("team", 9900, features={"projects": team_projects, "sso": True})
    return free, pro, team


def setup_catalog():
    feature("projects", "limit")
    feature("sso", "boolean")
    feature("api_calls", "metered")
    return plans()
