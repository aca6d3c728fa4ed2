"""Data: the beat schedule that rewards referrals whose hold has passed, and the
marketing group's rights on the referral screens (the program, review of held
referrals; codes and rewards read-only)."""

from django.db import migrations

MARKETING = {
    "program": ("add", "change", "view"),
    "referral": ("change", "view"),
    "referralcode": ("view",),
    "reward": ("view",),
}
SCHEDULES = (("referrals: reward referrals whose hold has passed", "referrals.reward_due", 60),)


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
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label="referrals", codename=f"{action}_{model}"
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
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("referrals", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
