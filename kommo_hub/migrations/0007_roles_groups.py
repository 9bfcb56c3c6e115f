"""The two roles as Django groups: "Gerentes" (every model permission of the hub's apps) and
"Vendedores" (view permissions on their own work; rows are scoped by kommo_hub.roles)."""

from typing import Any

from django.db import migrations

MANAGERS = "Gerentes"
SALESPEOPLE = "Vendedores"
HUB_APPS = ("kommo_hub", "routing", "botcontrol", "scheduling")
# A copy of kommo_hub.roles.SALESPERSON_PERMISSIONS as it was when this migration was written.
SALESPERSON_PERMISSIONS = (
    ("kommo_hub", "view_lead"),
    ("kommo_hub", "view_conversation"),
    ("routing", "view_assignment"),
    ("botcontrol", "view_botconversation"),
    ("botcontrol", "view_botchange"),
    ("scheduling", "view_appointment"),
    ("scheduling", "view_reminder"),
    ("scheduling", "view_agendablock"),
    ("scheduling", "view_interaction"),
)


def groups_create(apps: Any, schema_editor: Any) -> None:
    from django.contrib.auth.management import create_permissions

    # On a new database the permissions only appear after every migration: create them now.
    for label in HUB_APPS:
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, verbosity=0, apps=apps, using=schema_editor.connection.alias)
        config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    managers, _ = Group.objects.get_or_create(name=MANAGERS)
    managers.permissions.add(*Permission.objects.filter(content_type__app_label__in=HUB_APPS))
    salespeople, _ = Group.objects.get_or_create(name=SALESPEOPLE)
    for app_label, codename in SALESPERSON_PERMISSIONS:
        salespeople.permissions.add(
            *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        )


def groups_delete(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=[MANAGERS, SALESPEOPLE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("kommo_hub", "0006_apikey_scope"),
        ("routing", "0004_area_booking_horizon_days_area_buffer_minutes_and_more"),
        ("botcontrol", "0002_bot_conversation"),
        ("scheduling", "0002_appointment_view_all_permission"),
    ]

    operations = [migrations.RunPython(groups_create, groups_delete)]
