"""The groups made by the migration, is_manager / salesperson_for, and the demo logins."""

from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command

from kommo_hub import roles
from tests.roles.support import Team

pytestmark = pytest.mark.django_db


def codenames(group: str) -> set[str]:
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=group).permissions.select_related("content_type")
    }


def test_the_managers_group_has_every_permission_of_the_hubs_apps() -> None:
    every = {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(content_type__app_label__in=roles.HUB_APPS)
    }

    assert codenames(roles.MANAGERS) == every
    assert {
        "botcontrol.manage_all_conversations",
        "scheduling.view_all_appointments",
        "kommo_hub.add_apikey",
    } <= every


def test_the_salespeople_group_has_only_view_permissions_on_their_work() -> None:
    assert codenames(roles.SALESPEOPLE) == {
        f"{app}.{codename}" for app, codename in roles.SALESPERSON_PERMISSIONS
    }


def test_is_manager_and_salesperson_for(team: Team, django_user_model: Any) -> None:
    superuser = django_user_model.objects.create_superuser("root")
    stranger = django_user_model.objects.create_user("estagiario", is_staff=True)
    inactive = team.ana.user
    inactive.is_active = False
    inactive.save()

    assert [roles.is_manager(u) for u in (team.manager, superuser, team.carlos.user, stranger)] == [
        True,
        True,
        False,
        False,
    ]
    assert roles.salesperson_for(team.carlos.user) == team.carlos
    assert roles.salesperson_for(team.manager) is None
    assert roles.salesperson_for(inactive) is None
    assert roles.is_scoped_salesperson(team.carlos.user) is True


@pytest.mark.django_db(transaction=True)
def test_seed_demo_puts_gerente_in_gerentes_and_vendedor_in_vendedores(
    django_user_model: Any,
) -> None:
    call_command("seed_demo")

    groups = {
        u.username: sorted(u.groups.values_list("name", flat=True))
        for u in django_user_model.objects.all()
    }
    assert groups == {"gerente": ["Gerentes"], "vendedor": ["Vendedores"]}
    vendedor = django_user_model.objects.get(username="vendedor")
    assert str(roles.salesperson_for(vendedor)) == "Carlos Souza"
