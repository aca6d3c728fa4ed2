"""Services not covered through the API: the beat job that records grant expiries, the
metered check against the period's total, and the downgrade rule."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import services as billing_services
from entitlements import selectors, services
from entitlements.models import EntitlementEvent, Grant
from entitlements.tests import support as t

pytestmark = pytest.mark.django_db


def test_the_expiry_job_records_each_expired_grant_once():
    t.setup_catalog()
    soon = timezone.now() + timedelta(hours=1)
    expiring = services.grant_create(
        customer_id="u-1", feature_key="sso", value=True, expires_at=soon
    )
    services.grant_create(customer_id="u-1", feature_key="projects", value=9, expires_at=None)
    revoked = services.grant_create(
        customer_id="u-2", feature_key="sso", value=True, expires_at=soon
    )
    services.grant_revoke(customer_id="u-2", grant_id=revoked.pk)
    # before its time nothing is recorded; after it, once
    assert services.grants_expiry_record() == 0
    later = soon + timedelta(seconds=1)
    assert services.grants_expiry_record(now=later) == 1
    assert services.grants_expiry_record(now=later) == 0
    expired = EntitlementEvent.objects.get(kind="expired")
    assert (expired.grant_id, expired.occurred_at) == (expiring.pk, soon)
    assert Grant.objects.get(pk=expiring.pk).expiry_recorded_at == later


def test_a_metered_check_compares_the_periods_total_with_the_limit():
    t.setup_catalog()
    billing_services.plan_update(code="free", fields={"features": {"api_calls": 5}})
    now = timezone.now()
    events = [services.UsageIn(f"e-{n}", "u-1", "api_calls", 2, now) for n in range(2)]
    assert services.usage_record(events=events) == (2, 0)
    assert services.check(customer_id="u-1", feature_key="api_calls", quantity=1).allowed
    over = services.check(customer_id="u-1", feature_key="api_calls", quantity=2)
    assert (over.allowed, over.reason, over.used, over.limit) == (False, "limit_reached", 4, 5)
    # an event of last month counts in last month, not in this period
    old = now - timedelta(days=40)
    services.usage_record(events=[services.UsageIn("e-old", "u-1", "api_calls", 100, old)])
    assert services.check(customer_id="u-1", feature_key="api_calls", quantity=1).allowed


def test_after_a_downgrade_below_usage_nothing_is_taken_and_new_reserves_wait():
    t.setup_catalog()
    billing_services.plan_update(code="free", fields={"features": {"projects": 5}})
    for n in range(5):
        services.reserve(customer_id="u-1", feature_key="projects", resource_id=f"p-{n}")
    billing_services.plan_update(code="free", fields={"features": {"projects": 3}})
    state = selectors.entitlements_compute("u-1").features["projects"]
    assert (state.used, state.limit, state.remaining) == (5, 3, 0)
    refused = services.reserve(customer_id="u-1", feature_key="projects", resource_id="p-9")
    assert (refused.allowed, refused.reason) == (False, "limit_reached")
    for n in range(3):
        services.release(customer_id="u-1", feature_key="projects", resource_id=f"p-{n}")
    assert services.reserve(customer_id="u-1", feature_key="projects", resource_id="p-9").allowed


def test_reserve_of_a_boolean_or_metered_feature_is_a_field_error():
    from core.errors import Invalid

    t.setup_catalog()
    for key in ("sso", "api_calls"):
        with pytest.raises(Invalid) as refused:
            services.reserve(customer_id="u-1", feature_key=key, resource_id="r")
        assert set(refused.value.fields) == {"feature"}
