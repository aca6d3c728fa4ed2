"""Data: the "marketing" group with just the coupon permissions, and the beat schedules
(ops can see and change them in the admin under Periodic tasks)."""

from django.db import migrations

MARKETING_MODELS = {
    "coupons": {"coupon": ("add", "change", "view"), "code": ("add", "change", "view"),
                "redemption": ("view",), "customer": ("add", "change", "view")},
}
SCHEDULES = [
    ("coupons: expire stale reservations", "coupons.tasks.expire_stale_reservations", 60),
    ("core: purge idempotency records", "core.tasks.purge_idempotency_records", 3600),
]


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="marketing")
    for app_label, models in MARKETING_MODELS.items():
        for model, actions in models.items():
            for action in actions:
                perm = Permission.objects.get(content_type__app_label=app_label,
                                              codename=f"{action}_{model}")
                group.permissions.add(perm)

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, seconds in SCHEDULES:
        every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": every, "enabled": True})


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="marketing").delete()
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("coupons", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
