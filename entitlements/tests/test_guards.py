"""The Python API for the product's own code: the DRF permission, `require`, and the
`reserving` context manager whose reserve commits or rolls back with the work."""

import pytest
from django.db import transaction
from django.test import RequestFactory
from rest_framework.response import Response
from rest_framework.views import APIView

from core.auth import HasStorefrontScope
from entitlements import guards, services
from entitlements.models import Reservation, Usage
from entitlements.tests import support as t

pytestmark = pytest.mark.django_db(transaction=True)


class SsoSettingsApi(APIView):
    permission_classes = [HasStorefrontScope, guards.requires_feature("sso")]

    def get(self, request, customer_id):
        return Response({"ok": True})


def test_the_permission_refuses_a_feature_the_plan_lacks_and_allows_a_grant():
    t.setup_catalog()
    from core.models import ApiKey

    _, key = ApiKey.objects.create_key(name="g", scopes=["storefront"])
    view = SsoSettingsApi.as_view()
    request = RequestFactory().get("/x", HTTP_AUTHORIZATION=f"Api-Key {key}")
    denied = view(request, customer_id="u-1")
    assert denied.status_code == 403
    assert denied.data["error"]["code"] == "feature_not_enabled"
    assert "Pro" in denied.data["error"]["message"]  # the upgrade
    services.grant_create(customer_id="u-1", feature_key="sso", value=True, expires_at=None)
    request = RequestFactory().get("/x", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert view(request, customer_id="u-1").status_code == 200


def test_require_raises_with_the_reason():
    t.setup_catalog()
    with pytest.raises(guards.FeatureDenied) as denied:
        guards.require("u-1", "projects", quantity=4)
    assert denied.value.code == "limit_reached"
    assert guards.require("u-1", "projects", quantity=3).allowed


def _used(customer="u-1") -> int:
    row = Usage.objects.filter(customer_id=customer, feature__key="projects").first()
    return 0 if row is None else row.used


def test_a_reserve_inside_the_work_s_transaction_rolls_back_with_it():
    t.setup_catalog()
    with (
        pytest.raises(RuntimeError),
        transaction.atomic(),
        services.reserving(customer_id="u-1", feature_key="projects", resource_id="p-1"),
    ):
        raise RuntimeError("the insert failed")
    assert _used() == 0
    assert not Reservation.objects.exists()


def test_a_reserve_outside_a_transaction_rolls_back_with_the_failed_work():
    t.setup_catalog()
    seen = []

    def work():
        with services.reserving(customer_id="u-1", feature_key="projects", resource_id="p-1"):
            seen.append(_used())  # taken (in the block's transaction) while the work runs
            raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError):
        work()
    assert seen == [1]
    assert _used() == 0
    assert not Reservation.objects.exists()


def test_reserving_past_the_limit_raises_denied_and_keeps_the_count():
    t.setup_catalog()
    for n in range(3):
        with services.reserving(customer_id="u-1", feature_key="projects", resource_id=f"p-{n}"):
            pass
    with (
        pytest.raises(services.Denied) as denied,
        services.reserving(customer_id="u-1", feature_key="projects", resource_id="p-3"),
    ):
        pytest.fail("the block must not run")
    assert denied.value.decision.upgrade["plan"] == "pro"
    assert _used() == 3


def test_a_database_error_in_the_block_leaves_the_callers_transaction_usable():
    from django.db import DatabaseError, connection

    t.setup_catalog()
    with transaction.atomic():
        with (
            pytest.raises(DatabaseError),
            services.reserving(customer_id="u-1", feature_key="projects", resource_id="p-1"),
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT 1 / 0")  # the insert failing in the database
        # the caller goes on in its transaction
        assert _used() == 0
        services.reserve(customer_id="u-1", feature_key="projects", resource_id="p-2")
    assert _used() == 1
