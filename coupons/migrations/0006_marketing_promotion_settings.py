"""Data: marketing may view and change the stacking policy (PromotionSettings)."""

from django.db import migrations

ACTIONS = ("view", "change")


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after `migrate`; this migration needs them now.
    app_config = apps.get_app_config("coupons")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps,
                       using=schema_editor.connection.alias)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="marketing")
    group.permissions.add(*Permission.objects.filter(
        content_type__app_label="coupons",
        codename__in=[f"{action}_promotionsettings" for action in ACTIONS]))


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name="marketing"):
        group.permissions.remove(*Permission.objects.filter(
            content_type__app_label="coupons",
            codename__in=[f"{action}_promotionsettings" for action in ACTIONS]))


class Migration(migrations.Migration):
    dependencies = [
        ("coupons", "0005_promotions"),
        ("coupons", "0002_marketing_group_and_schedules"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
