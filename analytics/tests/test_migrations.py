import pytest
from django.contrib.auth.models import Group
from django_celery_beat.models import PeriodicTask

pytestmark = pytest.mark.django_db


def test_the_rollup_is_scheduled_every_five_minutes():
    task = PeriodicTask.objects.get(task="analytics.tasks.rollup_recent")
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (300, "seconds")


def test_marketing_may_view_analytics_and_start_simulations():
    codenames = set(Group.objects.get(name="marketing").permissions
                    .filter(content_type__app_label="analytics")
                    .values_list("codename", flat=True))
    assert codenames == {"view_couponevent", "view_dailycouponfact", "view_dailysitefact",
                         "view_simulationrun", "add_simulationrun"}
