"""`manage.py seed_demo` (make run): coupons, logins, keys, and two weeks of analytics
history, and a second run adds nothing twice."""

from io import StringIO

import pytest
from django.core.management import call_command

from coupons.analytics.models import CouponEvent, DailyCouponFact
from coupons.models import Coupon

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_everything_once(migration_groups):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "admin / " in text
    assert "marketing / " in text
    assert "Storefront key:" in text
    assert Coupon.objects.filter(code="SUMMER25").exists()
    events = CouponEvent.objects.count()
    assert events > 500
    assert "demo checkout events" in text
    assert DailyCouponFact.objects.filter(confirms__gt=0).count() >= 10
    call_command("seed_demo", stdout=StringIO())
    assert CouponEvent.objects.count() == events
