"""A salesperson sees only their own rows in every admin page that shows leads, and another
salesperson's row does not exist for them (404); a manager sees everyone's."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from botcontrol.models import BotChange, BotMode, BotState
from kommo_hub import roles
from tests.roles.support import Team, assign

pytestmark = pytest.mark.django_db

# (admin URL name prefix, how to name a row, the team's row of Carlos, of Ana)
PAGES = {
    "kommo_hub_lead": (str, "lead", "ana_lead"),
    "kommo_hub_conversation": (str, "conversation", "ana_conversation"),
    "routing_assignment": (lambda a: str(a.lead), "assignment", "ana_assignment"),
    "botcontrol_botconversation": (str, "conversation", "ana_conversation"),
    "scheduling_appointment": (lambda a: str(a.lead), "appointment", "ana_appointment"),
}


def as_user(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def rows(response: Any, name: Any) -> list[str]:
    return sorted(name(row) for row in response.context["cl"].result_list)


@pytest.mark.parametrize("page", PAGES)
def test_a_salesperson_sees_only_their_own_rows_in_each_changelist(
    client: Client, team: Team, page: str
) -> None:
    name, own, _other = PAGES[page]

    response = as_user(client, team.carlos.user).get(reverse(f"admin:{page}_changelist"))

    assert response.status_code == 200
    assert rows(response, name) == [name(getattr(team, own))]


@pytest.mark.parametrize("page", PAGES)
def test_a_manager_sees_everyones_rows_in_each_changelist(
    client: Client, team: Team, page: str
) -> None:
    name, own, other = PAGES[page]

    response = as_user(client, team.manager).get(reverse(f"admin:{page}_changelist"))

    assert rows(response, name) == sorted([name(getattr(team, own)), name(getattr(team, other))])


@pytest.mark.parametrize("page", PAGES)
def test_another_salespersons_row_is_a_404_and_their_own_opens(
    client: Client, team: Team, page: str
) -> None:
    _name, own, other = PAGES[page]
    client = as_user(client, team.carlos.user)

    theirs = client.get(reverse(f"admin:{page}_change", args=[getattr(team, other).pk]))
    history = client.get(reverse(f"admin:{page}_history", args=[getattr(team, other).pk]))
    mine = client.get(reverse(f"admin:{page}_change", args=[getattr(team, own).pk]))

    assert (theirs.status_code, history.status_code, mine.status_code) == (404, 404, 200)


def test_a_salesperson_sees_only_the_bot_changes_of_their_own_conversations(
    client: Client, team: Team
) -> None:
    client = as_user(client, team.carlos.user)
    ana_change = BotChange.objects.get(conversation=team.ana_conversation)

    listed = client.get(reverse("admin:botcontrol_botchange_changelist"))
    theirs = client.get(reverse("admin:botcontrol_botchange_change", args=[ana_change.pk]))

    assert [c.conversation_id for c in listed.context["cl"].result_list] == [team.conversation.pk]
    assert theirs.status_code == 404


def test_a_salesperson_has_no_contacts_page(client: Client, team: Team) -> None:
    response = as_user(client, team.carlos.user).get(reverse("admin:kommo_hub_contact_changelist"))

    assert response.status_code == 403


def test_a_salesperson_cannot_pause_or_resume_another_salespersons_conversation(
    client: Client, team: Team
) -> None:
    client = as_user(client, team.carlos.user)
    url = reverse("admin:botcontrol_botconversation_resume", args=[team.ana_conversation.pk])

    direct = client.post(url, {"reason": "teste"})
    from_list = client.post(
        reverse("admin:botcontrol_botconversation_changelist"),
        {"action": "resume_bot", "_selected_action": [str(team.ana_conversation.pk)]},
    )

    assert direct.status_code == 404
    assert from_list.status_code == 302
    assert BotState.objects.get(conversation=team.ana_conversation).mode == BotMode.PAUSED
    assert BotChange.objects.filter(conversation=team.ana_conversation).count() == 1


def test_a_salesperson_may_resume_the_bot_in_their_own_conversation(
    client: Client, team: Team
) -> None:
    client = as_user(client, team.carlos.user)
    url = reverse("admin:botcontrol_botconversation_resume", args=[team.conversation.pk])

    response = client.post(url, {"reason": "assumi"})

    assert response.status_code == 302
    assert BotState.objects.get(conversation=team.conversation).mode == BotMode.ACTIVE


def test_the_visible_helpers_give_a_salesperson_their_rows_a_manager_all_and_others_none(
    team: Team, django_user_model: Any
) -> None:
    stranger = django_user_model.objects.create_user("estagiario", is_staff=True)
    helpers = [
        roles.leads_visible_to,
        roles.assignments_visible_to,
        roles.conversations_visible_to,
        roles.appointments_visible_to,
    ]

    carlos = [sorted(h(team.carlos.user).values_list("pk", flat=True)) for h in helpers]
    manager = [h(team.manager).count() for h in helpers]
    nobody = [h(stranger).count() for h in helpers]

    assert carlos == [
        [team.lead.pk],
        [team.assignment.pk],
        [team.conversation.pk],
        [team.appointment.pk],
    ]
    assert manager == [2, 2, 2, 2]
    assert nobody == [0, 0, 0, 0]


def test_a_lead_reassigned_away_disappears_from_the_former_salesperson(
    client: Client, team: Team
) -> None:
    team.ana_assignment.is_current = False
    team.ana_assignment.save()
    assign(team.ana_lead, team.carlos, team.area)

    ana_sees = roles.leads_visible_to(team.ana.user).count()
    carlos_sees = sorted(roles.leads_visible_to(team.carlos.user).values_list("name", flat=True))

    assert ana_sees == 0
    assert carlos_sees == ["João Pereira", "Maria Souza"]
