"""The salesperson's landing page "Meus leads" and where each role lands after logging in."""

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from botcontrol.models import BotState
from scheduling.models import AppointmentStatus
from tests.roles.support import PASSWORD, Team

pytestmark = pytest.mark.django_db


def log_in(client: Client, username: str) -> Any:
    return client.post(
        reverse("admin:login"),
        {"username": username, "password": PASSWORD, "next": reverse("admin:index")},
        follow=True,
    )


def test_a_salesperson_lands_on_my_leads_after_logging_in(client: Client, team: Team) -> None:
    response = log_in(client, "carlos")

    assert response.redirect_chain == [("/admin/", 302), ("/meus-leads/", 302)]
    assert response.status_code == 200
    assert response.templates[0].name == "kommo_hub/my_leads.html"


def test_a_manager_lands_on_the_admin_index_after_logging_in(client: Client, team: Team) -> None:
    response = log_in(client, "paula")

    assert response.redirect_chain == [("/admin/", 302)]
    assert response.status_code == 200
    assert response.context["title"] == "Site administration"


def test_a_manager_opening_my_leads_goes_to_the_admin_index(client: Client, team: Team) -> None:
    client.force_login(team.manager)

    response = client.get(reverse("my-leads"))

    assert (response.status_code, response["Location"]) == (302, "/admin/")


def test_my_leads_needs_a_login_and_a_salesperson(
    client: Client, team: Team, django_user_model: Any
) -> None:
    anonymous = client.get(reverse("my-leads"))
    client.force_login(django_user_model.objects.create_user("estagiario", is_staff=True))
    stranger = client.get(reverse("my-leads"))

    assert (anonymous.status_code, anonymous["Location"]) == (
        302,
        "/admin/login/?next=/meus-leads/",
    )
    assert stranger.status_code == 403


def test_my_leads_lists_own_leads_with_bot_pause_appointment_and_sla(
    client: Client, team: Team
) -> None:
    client.force_login(team.carlos.user)

    response = client.get(reverse("my-leads"))
    html = response.content.decode()

    assert response.status_code == 200
    assert [line.assignment.lead.name for line in response.context["leads"]] == ["Maria Souza"]
    assert [a.lead.name for a in response.context["waiting"]] == ["Maria Souza"]
    assert [a.pk for a in response.context["appointments"]] == [team.appointment.pk]
    assert "Bot paused until 26/11 09:30" in html
    assert "Overdue by 10\xa0minutes (reply was due 25/11 13:20)" in html
    assert "Thu 26/11 15:00–15:30" in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "João Pereira" not in html
    assert "http://" not in html  # no CDN
    assert "https://" not in html


def test_my_leads_shows_the_clock_still_running_and_an_active_bot(
    client: Client, team: Team
) -> None:
    client.force_login(team.ana.user)
    BotState.objects.filter(conversation=team.ana_conversation).delete()

    html = client.get(reverse("my-leads")).content.decode()

    assert "Reply within 20\xa0minutes (by 25/11 13:50)" in html
    assert "Bot active" in html
    assert "Maria Souza" not in html


def test_a_replied_lead_and_past_or_cancelled_appointments_are_not_waiting_or_next(
    client: Client, team: Team
) -> None:
    team.assignment.responded_at = team.assignment.decided_at
    team.assignment.save()
    team.appointment.status = AppointmentStatus.CANCELLED
    team.appointment.save()
    client.force_login(team.carlos.user)

    response = client.get(reverse("my-leads"))

    assert response.context["waiting"] == []
    assert response.context["appointments"] == []
    assert "Nobody is waiting for your reply." in response.content.decode()
    assert "No appointments ahead." in response.content.decode()
