import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import PeriodicTask

pytestmark = pytest.mark.django_db


def test_the_rollup_is_scheduled_every_five_minutes():
    task = PeriodicTask.objects.get(task="analytics.tasks.rollup_recent")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (300, "seconds")


def test_marketing_may_view_analytics_and_start_simulations():
    codenames = set(
        Group.objects.get(name="marketing")
        .permissions.filter(content_type__app_label="analytics")
        .values_list("codename", flat=True)
    )
    assert codenames == {
        "view_couponevent",
        "view_dailycouponfact",
        "view_dailysitefact",
        "view_simulationrun",
        "add_simulationrun",
    }


def test_0004_fills_the_site_orders_of_the_days_already_rolled_up(settings):
    settings.TIME_ZONE = "Asia/Tokyo"  # days are local days in the SQL too (00:10 is UTC-yesterday)
    import importlib
    from types import SimpleNamespace

    from django.db import connection

    from coupons.analytics import rollup
    from coupons.analytics.models import DailyCouponFact, DailySiteFact
    from coupons.analytics.tests.factories import at, days_ago, event, stacked_orders, write
    from coupons.tests.factories import CouponFactory

    migration = importlib.import_module("coupons.analytics.migrations.0004_site_orders")
    # given: the facts as 0003 left them. Two days with stacked orders (no site row; one
    # with a row for its carts), and an old day whose events were deleted since.
    typed, promo, solo = (CouponFactory(code=c) for c in ("TYPED10", "PROMO5", "SOLO"))
    stacked_orders(typed, promo, solo, closed=days_ago(2), today=days_ago(1))
    write(event("cart", at(days_ago(1)), currency="USD", order_value_minor=2_500))
    rollup.rollup_days([days_ago(2), days_ago(1)])
    expected = {
        (f.day, f.currency): (f.orders, f.order_value_minor, f.new_customers)
        for f in DailySiteFact.objects.all()
    }
    assert expected == {(days_ago(2), "USD"): (3, 20_000, 2), (days_ago(1), "USD"): (2, 23_000, 1)}
    DailyCouponFact.objects.create(
        day=days_ago(60),
        coupon_id=typed.pk,
        currency="USD",
        confirms=2,
        order_value_minor=5_000,
        new_customers=1,
    )
    DailySiteFact.objects.filter(day=days_ago(2)).delete()
    DailySiteFact.objects.update(orders=0, order_value_minor=0, new_customers=0)

    # when
    migration.backfill(None, SimpleNamespace(connection=connection))
    # then
    assert {
        (f.day, f.currency): (f.orders, f.order_value_minor, f.new_customers)
        for f in DailySiteFact.objects.all()
    } == {**expected, (days_ago(60), "USD"): (2, 5_000, 1)}  # no events: the coupon sums
    carts = DailySiteFact.objects.get(day=days_ago(1))
    assert (carts.carts_without_discount, carts.order_value_without_discount_minor) == (1, 2_500)
