"""seed_demo's entitlements part: the features, and a free customer with two projects
and a 14-day SSO grant; loading twice changes nothing."""

from io import StringIO

import pytest
from django.core.management import call_command

from entitlements import selectors
from entitlements.models import Feature, Grant, Reservation

pytestmark = pytest.mark.django_db


def test_seed_demo_gives_gus_two_projects_and_sso_for_14_days(migration_groups):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert set(Feature.objects.values_list("key", flat=True)) == {"projects", "sso", "api_calls"}
    ents = selectors.entitlements_compute("demo-gus")
    assert ents.plan == "free"
    projects, sso = ents.features["projects"], ents.features["sso"]
    assert (projects.used, projects.limit, projects.source) == (2, 3, "default")
    assert (sso.enabled, sso.source) == (True, "grant")
    assert "demo-gus" in out.getvalue()
    call_command("seed_demo", stdout=StringIO())
    assert Reservation.objects.filter(customer_id="demo-gus").count() == 2
    assert Grant.objects.filter(customer_id="demo-gus").count() == 1
