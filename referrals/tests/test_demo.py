"""seed_demo's referrals part: Ada refers Hal, who pays with the welcome coupon."""

from io import StringIO

import pytest
from django.core.management import call_command

from referrals.models import Referral

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_converts_hals_referral_once():
    out = StringIO()
    call_command("seed_demo", stdout=out)
    referral = Referral.objects.get(invitee_id="demo-hal")
    assert (referral.referrer_id, referral.status) == ("demo-ada", "converted")
    assert "demo-hal" in out.getvalue()
    call_command("seed_demo", stdout=StringIO())
    assert Referral.objects.count() == 1
