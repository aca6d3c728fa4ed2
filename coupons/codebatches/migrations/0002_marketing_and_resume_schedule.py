"""Data: marketing may see and start code batches; the beat job that resumes stalled
batches (visible and editable in the admin under Periodic tasks)."""

from django.db import migrations

PERMISSIONS = ("view_codebatch", "add_codebatch")
SCHEDULE = ("codebatches: resume stalled batches", "codebatches.tasks.batches_resume_stalled",
            60)


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="marketing")
    for codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label="codebatches",
                                                     codename=codename))

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    name, task, seconds = SCHEDULE
    every, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": task, "interval": every, "enabled": True})


def backwards(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name=SCHEDULE[0]).delete()
    Permission = apps.get_model("auth", "Permission")
    group = apps.get_model("auth", "Group").objects.filter(name="marketing").first()
    if group is not None:
        group.permissions.remove(*Permission.objects.filter(
            content_type__app_label="codebatches", codename__in=PERMISSIONS))


class Migration(migrations.Migration):
    dependencies = [
        ("codebatches", "0001_initial"),
        ("coupons", "0002_marketing_group_and_schedules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
