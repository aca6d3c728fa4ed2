"""Data: the beat schedule that records grant expiries, and the "entitlements" staff
group (features, grants and the read-only usage screens; no deletes)."""

from django.db import migrations

PERMISSIONS = {
    "feature": ("add", "change", "view"),
    "grant": ("view",),
    "entitlementevent": ("view",),
    "usage": ("view",),
    "reservation": ("view",),
}
SCHEDULES = (
    ("entitlements: record grant expiries", "entitlements.record_grant_expiries", 60),
)


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="entitlements")
    for model, actions in PERMISSIONS.items():
        for action in actions:
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label="entitlements", codename=f"{action}_{model}"
                )
            )

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULES:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": every, "enabled": True}
        )


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="entitlements").delete()
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("entitlements", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
