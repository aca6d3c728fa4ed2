"""The entitlements API (API.md "Entitlements"): reads with their sources, check,
reserve / release with the upgrade offer, grants and their history, metered usage."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.tests import support as billing
from entitlements.models import Grant
from entitlements.tests import support as t

# Real commits: a change reaches the caches in its on_commit hook, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

BASE = "/api/v1/entitlements"


def _reserve(client, resource, customer="u-1", feature="projects", quantity=1):
    return client.post(
        f"{BASE}/{customer}/reserve",
        {"feature": feature, "resource_id": resource, "quantity": quantity},
        format="json",
    )


def test_a_customer_without_a_subscription_gets_the_default_plan(storefront):
    t.setup_catalog()
    body = storefront.get(f"{BASE}/u-1").json()
    assert body["plan"] == "free"
    assert body["subscription_status"] is None
    assert body["features"]["projects"] == {
        "type": "limit",
        "enabled": True,
        "limit": 3,
        "used": 0,
        "remaining": 3,
        "source": "default",
        "expires_at": None,
    }
    assert body["features"]["sso"]["enabled"] is False
    assert isinstance(body["version"], int)


def test_reserve_counts_each_resource_once_up_to_the_limit_then_offers_the_upgrade(storefront):
    t.setup_catalog()
    for n in range(3):
        got = _reserve(storefront, f"p-{n}")
        assert got.status_code == 200, got.content
        assert got.json() == {
            "allowed": True,
            "feature": "projects",
            "limit": 3,
            "used": n + 1,
            "remaining": 2 - n,
        }
    again = _reserve(storefront, "p-0")  # a retry of a counted reserve
    assert (again.status_code, again.json()["used"]) == (200, 3)
    denied = _reserve(storefront, "p-3")
    assert denied.status_code == 422
    assert denied.json() == {
        "allowed": False,
        "reason": "limit_reached",
        "message": denied.json()["message"],
        "feature": "projects",
        "limit": 3,
        "used": 3,
        "remaining": 0,
        "upgrade": {"plan": "pro", "name": "Pro", "limit": 10},
    }
    # release gives back exactly one, then the reserve fits
    released = storefront.post(
        f"{BASE}/u-1/release", {"feature": "projects", "resource_id": "p-1"}, format="json"
    )
    assert (released.status_code, released.json()["used"]) == (200, 2)
    noop = storefront.post(
        f"{BASE}/u-1/release", {"feature": "projects", "resource_id": "p-1"}, format="json"
    )
    assert (noop.status_code, noop.json()["used"]) == (200, 2)
    assert _reserve(storefront, "p-3").status_code == 200


def test_check_is_read_only_and_says_why(storefront):
    t.setup_catalog()
    ok = storefront.post(f"{BASE}/u-1/check", {"feature": "projects", "quantity": 3}, format="json")
    assert ok.json()["allowed"] is True
    over = storefront.post(
        f"{BASE}/u-1/check", {"feature": "projects", "quantity": 4}, format="json"
    ).json()
    assert (over["allowed"], over["reason"], over["upgrade"]["plan"]) == (
        False,
        "limit_reached",
        "pro",
    )
    sso = storefront.post(f"{BASE}/u-1/check", {"feature": "sso"}, format="json").json()
    assert (sso["allowed"], sso["reason"], sso["upgrade"]) == (
        False,
        "feature_not_enabled",
        {"plan": "pro", "name": "Pro", "limit": None},
    )
    assert storefront.get(f"{BASE}/u-1").json()["features"]["projects"]["used"] == 0


@pytest.mark.parametrize("path", ["check", "reserve", "release"])
def test_an_unknown_feature_is_404_feature_not_found(storefront, path):
    t.setup_catalog()
    got = storefront.post(
        f"{BASE}/u-1/{path}", {"feature": "nope", "resource_id": "r"}, format="json"
    )
    assert got.status_code == 404
    assert got.json()["error"]["code"] == "feature_not_found"


def test_bad_input_is_400_with_field_errors(storefront, admin_api):
    t.setup_catalog()
    got = storefront.post(
        f"{BASE}/u-1/reserve", {"feature": "projects", "quantity": 0}, format="json"
    )
    assert got.status_code == 400
    assert set(got.json()["error"]["fields"]) == {"resource_id", "quantity"}
    bad = admin_api.post("/api/v1/admin/features", {"key": "Bad Key", "type": "x"}, format="json")
    assert bad.status_code == 400
    assert set(bad.json()["error"]["fields"]) == {"key", "name", "type"}
    dup = admin_api.post(
        "/api/v1/admin/features", {"key": "sso", "name": "SSO", "type": "boolean"}, format="json"
    )
    assert (dup.status_code, dup.json()["error"]["code"]) == (409, "feature_exists")


def test_a_subscription_change_is_visible_to_the_next_read(
    storefront, django_capture_on_commit_callbacks
):
    t.setup_catalog()
    billing.customer("u-1")
    assert storefront.get(f"{BASE}/u-1").json()["plan"] == "free"  # cached now
    with django_capture_on_commit_callbacks(execute=True):
        billing.subscribe(storefront, customer_id="u-1", plan="pro")
    body = storefront.get(f"{BASE}/u-1").json()
    assert (body["plan"], body["subscription_status"]) == ("pro", "active")
    assert body["features"]["projects"]["source"] == "plan"
    assert body["features"]["projects"]["limit"] == 10


def test_a_trial_gives_its_plan_with_source_trial(storefront):
    t.setup_catalog()
    billing.plan("pro_trial", 2900, trial_days=14, features={"projects": 10, "sso": True})
    billing.customer("u-1")
    billing.subscribe(storefront, customer_id="u-1", plan="pro_trial")
    sso = storefront.get(f"{BASE}/u-1").json()["features"]["sso"]
    assert (sso["enabled"], sso["source"]) == (True, "trial")
    assert sso["expires_at"] is not None


def test_a_grant_wins_when_more_generous_and_stops_counting_at_its_expiry(
    storefront, admin_api, monkeypatch
):
    t.setup_catalog()
    expires = timezone.now() + timedelta(days=14)
    made = admin_api.post(
        "/api/v1/admin/entitlements/u-1/grants",
        {"feature": "projects", "value": 20, "expires_at": expires.isoformat(), "reason": "promo"},
        format="json",
    )
    assert made.status_code == 201, made.content
    projects = storefront.get(f"{BASE}/u-1").json()["features"]["projects"]
    assert (projects["limit"], projects["source"]) == (20, "grant")
    assert projects["expires_at"] is not None
    # a less generous grant does not win over the plan
    admin_api.post(
        "/api/v1/admin/entitlements/u-1/grants", {"feature": "sso", "value": True}, format="json"
    )
    # when the grant's time passes (no job, no change: the cached answer is not used
    # after its valid_until, the grant's expiry)
    later = expires + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    projects = storefront.get(f"{BASE}/u-1").json()["features"]["projects"]
    assert (projects["limit"], projects["source"]) == (3, "default")
    assert Grant.objects.get(pk=made.json()["id"]).expiry_recorded_at is None


def test_revoke_and_the_event_history(storefront, admin_api):
    t.setup_catalog()
    made = admin_api.post(
        "/api/v1/admin/entitlements/u-1/grants", {"feature": "sso", "value": True}, format="json"
    ).json()
    assert storefront.get(f"{BASE}/u-1").json()["features"]["sso"]["source"] == "grant"
    revoked = admin_api.post(f"/api/v1/admin/entitlements/u-1/grants/{made['id']}/revoke")
    assert (revoked.status_code, revoked.json()["status"]) == (200, "revoked")
    twice = admin_api.post(f"/api/v1/admin/entitlements/u-1/grants/{made['id']}/revoke")
    assert twice.status_code == 200
    assert storefront.get(f"{BASE}/u-1").json()["features"]["sso"]["enabled"] is False
    missing = admin_api.post("/api/v1/admin/entitlements/u-1/grants/nope/revoke")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "grant_not_found")
    events = admin_api.get("/api/v1/admin/entitlements/u-1/events").json()["results"]
    assert [e["kind"] for e in events] == ["granted", "revoked"]


def test_usage_events_count_once_ever_and_the_check_reads_the_period_total(storefront):
    t.setup_catalog()
    billing.plan("metered", 1000, features={"api_calls": 5})
    now = timezone.now().isoformat()
    events = [
        {
            "id": f"e-{n}",
            "customer_id": "u-1",
            "feature": "api_calls",
            "quantity": 2,
            "timestamp": now,
        }
        for n in range(2)
    ]
    first = storefront.post("/api/v1/usage", {"events": events}, format="json")
    assert (first.status_code, first.json()) == (202, {"accepted": 2, "duplicates": 0})
    again = storefront.post("/api/v1/usage", {"events": events}, format="json")
    assert again.json() == {"accepted": 0, "duplicates": 2}
    api = storefront.get(f"{BASE}/u-1").json()["features"]["api_calls"]
    assert api["used"] == 4


def test_an_unlimited_grant_is_stored_and_wins(storefront, admin_api):
    t.setup_catalog()
    made = admin_api.post(
        "/api/v1/admin/entitlements/u-1/grants",
        {"feature": "projects", "value": None, "reason": "partner"},
        format="json",
    )
    assert (made.status_code, made.json()["value"]) == (201, None)
    projects = storefront.get(f"{BASE}/u-1").json()["features"]["projects"]
    assert (projects["limit"], projects["remaining"], projects["source"]) == (None, None, "grant")


def test_billing_changes_are_visible_to_the_next_read_before_their_delivery(
    storefront, monkeypatch
):
    from billing import events as billing_events
    from billing import services as billing_services

    t.setup_catalog()
    billing.customer("u-1")
    assert storefront.get(f"{BASE}/u-1").json()["features"]["projects"]["limit"] == 3  # cached
    # no delivery task at all (a slow or stopped worker): the at-commit hint alone
    monkeypatch.setattr(billing_events, "_queue", lambda event_id: None)
    billing_services.plan_update(code="free", fields={"features": {"projects": 7}})
    assert storefront.get(f"{BASE}/u-1").json()["features"]["projects"]["limit"] == 7
    billing.subscribe(storefront, customer_id="u-1", plan="pro")
    assert storefront.get(f"{BASE}/u-1").json()["plan"] == "pro"
