"""seed_demo's referrals part: Ada refers Hal, who pays with the welcome coupon."""

from io import StringIO

import pytest
from django.core.management import call_command

from referrals.models import Referral

# Not transactional: seed_demo needs the groups the migrations made, which a transactional
# test's flush removes. The outbox's deliveries run in the captured on_commit hooks.
pytestmark = pytest.mark.django_db


def test_seed_demo_converts_hals_referral_once(
    migration_groups, django_capture_on_commit_callbacks
):
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=out)
    referral = Referral.objects.get(invitee_id="demo-hal")
    assert (referral.referrer_id, referral.status) == ("demo-ada", "converted")
    assert "demo-hal" in out.getvalue()
    call_command("seed_demo", stdout=StringIO())
    assert Referral.objects.count() == 1
