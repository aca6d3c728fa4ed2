"""seed_demo's billing part: plans, the promo, six customers with a year of history on a
test clock, each telling one story; a second run adds nothing."""

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Invoice, Plan, Subscription, SubscriptionTransition, TestClock

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_a_year_of_billing_once(migration_groups):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    assert "finance / " in text
    assert "demo test clock" in text
    assert set(Plan.objects.values_list("code", flat=True)) >= {"free", "pro", "team"}
    assert Plan.objects.get(is_default=True).code == "free"
    # the year on the test clock (referrals' demo adds a wall-clock customer of its own)
    on_clock = Subscription.objects.filter(customer__test_clock__isnull=False)
    status = {s.customer.customer_id: (s.status, s.plan.code) for s in on_clock}
    assert status == {
        "demo-ada": ("active", "pro"),
        "demo-ben": ("active", "team"),
        "demo-cy": ("expired", "pro"),
        "demo-dee": ("active", "team"),
        "demo-eve": ("active", "pro-yearly"),
        "demo-fin": ("cancelled", "pro"),
    }
    # Ada's promo: her first three invoices at 80%, then full price
    ada = list(
        Invoice.objects.filter(customer__customer_id="demo-ada")
        .order_by("created_at")
        .values_list("total_minor", flat=True)
    )
    assert ada[:4] == [2320, 2320, 2320, 2900]
    # Ada recovered from dunning; Fin did not
    ada_moves = SubscriptionTransition.objects.filter(
        subscription__customer__customer_id="demo-ada"
    )
    assert ada_moves.filter(to_status="past_due").exists()
    assert ada_moves.filter(from_status="past_due", to_status="active").exists()
    assert Invoice.objects.filter(customer__customer_id="demo-fin", status="uncollectible").exists()
    numbers = sorted(int(n.split("-")[1]) for n in Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, len(numbers) + 1))
    invoices = Invoice.objects.count()
    assert invoices > 40
    call_command("seed_demo", stdout=StringIO())
    assert Invoice.objects.count() == invoices
    assert TestClock.objects.count() == 1
