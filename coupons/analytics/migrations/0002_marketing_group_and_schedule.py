"""Data: the "marketing" group may view the analytics models and start simulations, and
the beat schedule of the roll-up (every 5 minutes; visible under Periodic tasks)."""

from django.db import migrations

MARKETING = {"couponevent": ("view",), "dailycouponfact": ("view",),
             "dailysitefact": ("view",), "simulationrun": ("add", "view")}
SCHEDULE = ("analytics: roll up today and yesterday", "analytics.tasks.rollup_recent", 300)


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="marketing")
    for model, actions in MARKETING.items():
        for action in actions:
            group.permissions.add(Permission.objects.get(
                content_type__app_label="analytics", codename=f"{action}_{model}"))

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    name, task, seconds = SCHEDULE
    every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": task, "interval": every, "enabled": True})


def backwards(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    group = apps.get_model("auth", "Group").objects.filter(name="marketing").first()
    if group is not None:
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="analytics"))
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name=SCHEDULE[0]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("analytics", "0001_initial"),
        ("coupons", "0002_marketing_group_and_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
