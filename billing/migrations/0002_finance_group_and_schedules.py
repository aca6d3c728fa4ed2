"""Data: the "finance" group (plans, customers, subscriptions, invoices, credit notes:
view and change what the admin lets finance change; test clocks; no deletes) and the
beat schedules of billing's jobs (visible and editable under Periodic tasks)."""

from django.db import migrations

FINANCE = {
    "plan": ("add", "change", "view"),
    "billingcustomer": ("change", "view"),
    "creditentry": ("view",),
    "subscription": ("change", "view"),
    "subscriptiontransition": ("view",),
    "invoice": ("change", "view"),
    "invoiceline": ("view",),
    "paymentattempt": ("view",),
    "creditnote": ("view",),
    "testclock": ("add", "change", "view"),
    "outboxevent": ("view",),
}
SCHEDULES = (
    # Renewals, trial ends, scheduled downgrades, period-end cancels, dunning retries.
    ("billing: run due renewals and retries", "billing.run_due", 60),
    ("billing: settle unanswered payment attempts", "billing.reconcile_attempts", 120),
    ("billing: deliver missed outbox events", "billing.sweep_outbox", 60),
)


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="finance")
    for model, actions in FINANCE.items():
        for action in actions:
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label="billing", codename=f"{action}_{model}"
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
    apps.get_model("auth", "Group").objects.filter(name="finance").delete()
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name__in=[name for name, _, _ in SCHEDULES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
