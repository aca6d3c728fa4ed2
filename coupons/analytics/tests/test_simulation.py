"""What-if simulation over constructed cart events."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from coupons.analytics import simulation
from coupons.analytics.models import SimulationRun
from coupons.analytics.services import simulation_start
from coupons.analytics.tests.factories import at, cart_payload, days_ago, event, write
from coupons.models import Redemption
from coupons.tests.factories import CouponFactory

pytestmark = pytest.mark.django_db

ELECTRONICS = ("SKU-1", "electronics", "100.00", 1)


def cart_event(when, customer, items, **kw):
    payload = cart_payload(customer, items, **kw)
    return event(
        "cart",
        when,
        customer_id=customer or "",
        currency=payload["cart"]["currency"],
        payload=payload,
    )


@pytest.fixture
def draft():
    """A draft (inactive, not started) 20% coupon: once per customer, from $50."""
    return CouponFactory(
        code="SIM20",
        percent_bp=2000,
        min_cart_minor=5000,
        max_uses_per_user=1,
        budget_minor=10_000,
        active=False,
        valid_from=timezone.now() + timedelta(days=10),
        valid_to=timezone.now() + timedelta(days=20),
    )


@pytest.fixture
def carts():
    now = timezone.now()
    write(
        cart_event(at(days_ago(2), 10), "u-1", [ELECTRONICS]),
        cart_event(at(days_ago(2), 11), "u-1", [ELECTRONICS]),  # the same cart again
        cart_event(at(days_ago(1), 9), "u-1", [("SKU-2", "toys", "30.00", 2)]),
        cart_event(at(days_ago(1), 10), "u-2", [("SKU-3", "toys", "40.00", 1)]),
        cart_event(
            now - timedelta(minutes=3), "u-3", [("SKU-4", "home", "80.00", 1)], shipping="7.99"
        ),
        cart_event(now - timedelta(minutes=2), None, [("SKU-5", "home", "200.00", 1)]),
        cart_event(now - timedelta(minutes=1), "u-4", [ELECTRONICS], currency="EUR"),
        event(
            "cart",
            now - timedelta(minutes=1),
            customer_id="u-6",
            currency="USD",
            payload={"customer": {"id": "u-6"}, "cart": {"currency": "USD", "items": []}},
        ),
        cart_event(now - timedelta(days=10), "u-5", [ELECTRONICS]),  # older than the run
    )


def _run(coupon, days=7) -> SimulationRun:
    run = SimulationRun.objects.create(coupon=coupon, days=days)
    simulation.simulation_run(run.pk)
    run.refresh_from_db()
    return run


def test_expected_redemptions_discount_and_burn(draft, carts):
    run = _run(draft)
    assert run.status == "done"
    assert run.error == ""
    assert (run.carts_total, run.carts_done) == (7, 7)
    assert run.started_at <= run.finished_at
    result = run.result
    daily = result.pop("daily")
    result.pop("since")
    assert result == {
        "currency": "USD",
        "days": 7,
        "carts": 7,
        "carts_eligible": 3,  # u-1's two carts, u-3
        "expected_redemptions": 2,  # u-1 only once
        "limited_by_total": 0,
        "limited_by_customer": 1,
        "discount": "36.00",
        "order_value": "180.00",
        "average_discount": "18.00",
        "budget": "100.00",
        "budget_burn": 0.36,
        "budget_exhausted_on": None,
        "rejections": {
            "customer_limit_reached": 1,
            "min_cart_value_not_met": 1,
            "customer_required": 1,
            "currency_mismatch": 1,
            "invalid_cart": 1,
        },
    }
    assert len(daily) == 8
    assert daily[-1]["day"] == days_ago(0).isoformat()
    by_day = {d["day"]: d for d in daily}
    assert by_day[days_ago(2).isoformat()] == {
        "day": days_ago(2).isoformat(),
        "carts": 1,
        "eligible": 1,
        "redemptions": 1,
        "discount": "20.00",
    }
    assert by_day[days_ago(1).isoformat()]["carts"] == 2
    assert by_day[days_ago(1).isoformat()]["redemptions"] == 0
    assert sum(d["redemptions"] for d in daily) == 2
    # read-only: nothing was reserved
    draft.refresh_from_db()
    assert (Redemption.objects.count(), draft.uses, draft.budget_used_minor) == (0, 0, 0)


def test_total_limit_and_budget_exhaustion(carts):
    coupon = CouponFactory(code="ONCE", percent_bp=2000, max_uses_total=1, budget_minor=2000)
    result = _run(coupon).result
    assert (
        result["expected_redemptions"],
        result["limited_by_total"],
        result["carts_eligible"],
    ) == (1, 4, 5)
    assert (result["discount"], result["budget_burn"], result["budget_exhausted_on"]) == (
        "20.00",
        1.0,
        days_ago(2).isoformat(),
    )


def test_a_longer_window_sees_older_carts(draft, carts):
    assert _run(draft, days=30).result["expected_redemptions"] == 3


def test_progress_is_saved_while_it_runs(draft, carts, monkeypatch):
    seen = []
    real_update = simulation._update

    def spy(run, **fields):
        if set(fields) == {"carts_done"}:
            seen.append(SimulationRun.objects.get(pk=run.pk).status)
            seen.append(fields["carts_done"])
        real_update(run, **fields)

    monkeypatch.setattr(simulation, "PROGRESS_EVERY", 2)
    monkeypatch.setattr(simulation, "_update", spy)
    _run(draft)
    assert seen == ["running", 2, "running", 4, "running", 6]


def test_a_failure_is_kept_on_the_run(draft, carts, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("engine exploded")

    monkeypatch.setattr(simulation, "price", boom)
    run = _run(draft)
    assert run.status == "failed"
    assert run.error == "RuntimeError: engine exploded"
    assert run.finished_at is not None
    assert run.result is None


def test_a_done_run_is_not_run_again_and_a_missing_one_is_ignored(draft, carts, monkeypatch):
    run = _run(draft)
    monkeypatch.setattr(simulation, "_simulate", lambda run: pytest.fail("ran twice"))
    simulation.simulation_run(run.pk)
    simulation.simulation_run(10**9)


@pytest.mark.parametrize("days", [0, 91, True, "7"])
def test_start_validates_days(draft, days):
    with pytest.raises(ValidationError):
        simulation_start(coupon=draft, days=days)
    assert SimulationRun.objects.count() == 0


def test_start_queues_the_task_on_commit(
    draft, carts, django_capture_on_commit_callbacks, django_user_model
):
    user = django_user_model.objects.create_user("marketer")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = simulation_start(coupon=draft, days=7, requested_by=user)
    assert run.status == "queued"
    assert run.requested_by == user
    assert len(callbacks) == 1
    callbacks[0]()  # the commit: eager Celery runs the task
    run.refresh_from_db()
    assert (run.status, run.result["expected_redemptions"]) == ("done", 2)
