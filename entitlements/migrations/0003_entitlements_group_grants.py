"""Data: the "entitlements" group may grant and revoke from the admin's customer page
(add_grant: "grant the features of plan X for N days"; change_grant: revoke). Grants are
still never edited or deleted in the admin (entitlements/admin.py)."""

from django.db import migrations

PERMISSIONS = ("add_grant", "change_grant")


def forwards(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="entitlements")
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="entitlements", codename__in=PERMISSIONS)
    )


def backwards(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name="entitlements"):
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="entitlements", codename__in=PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [("entitlements", "0002_beat_and_entitlements_group")]
    operations = [migrations.RunPython(forwards, backwards)]
