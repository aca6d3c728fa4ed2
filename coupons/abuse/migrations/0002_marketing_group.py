"""Data: the "marketing" group may review abuse alerts (view, change status) and read
coupon history (the audit trail next to staff changes)."""

from django.db import migrations

MARKETING = {("abuse", "abusealert"): ("view", "change"),
             ("coupons", "historicalcoupon"): ("view",),
             ("coupons", "historicalpromotionsettings"): ("view",)}


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="marketing")
    for (app, model), actions in MARKETING.items():
        for action in actions:
            group.permissions.add(Permission.objects.get(
                content_type__app_label=app, codename=f"{action}_{model}"))


def backwards(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    group = apps.get_model("auth", "Group").objects.filter(name="marketing").first()
    if group is not None:
        for (app, model), _ in MARKETING.items():
            group.permissions.remove(*Permission.objects.filter(
                content_type__app_label=app, content_type__model=model))


class Migration(migrations.Migration):
    dependencies = [
        ("abuse", "0001_initial"),
        ("coupons", "0010_abuse_budget_history"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
