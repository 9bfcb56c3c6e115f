"""The agenda admin: salespeople see only their own appointments, managers all; each appointment
shows its reminders' states; meetings are marked done / no-show; the mirrors are read-only."""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kommo_hub.models import ActionStatus, Lead, OutboundAction
from routing.models import Area, Assignment, AssignmentKind, AssignmentStatus, Salesperson
from scheduling.models import (
    AgendaBlock,
    Appointment,
    AppointmentStatus,
    Interaction,
    Reminder,
    ReminderStatus,
    SyncCursor,
)
from scheduling.reminders import reminders_plan
from tests.factories import LeadFactory, OutboundActionFactory
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.scheduling.factories import AgendaBlockFactory, AppointmentFactory, InteractionFactory

pytestmark = pytest.mark.django_db

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=SP)  # Tuesday noon
LIST = "admin:scheduling_appointment_changelist"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@dataclass
class Agenda:
    sales: Area
    insurance: Area
    ana: Salesperson
    bruno: Salesperson
    maria: Lead
    joao: Lead
    ana_meeting: Appointment  # Thursday 26/11 15:00, Maria (Ana's lead in Consórcios)
    bruno_meeting: Appointment  # Friday 27/11 10:00, João (Bruno's lead in Seguros)


def assign(lead: Lead, person: Salesperson, area: Area) -> None:
    Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED,
        decided_at=timezone.now(),
    )


@pytest.fixture
def agenda() -> Agenda:
    sales = AreaFactory(name="Consórcios", slug="consorcios")
    insurance = AreaFactory(name="Seguros", slug="seguros")
    ana = SalespersonFactory(name="Ana", user=User.objects.create_user("ana", is_staff=True))
    bruno = SalespersonFactory(name="Bruno", user=User.objects.create_user("bruno", is_staff=True))
    AreaMembershipFactory(area=sales, salesperson=ana)
    AreaMembershipFactory(area=insurance, salesperson=bruno)
    maria = LeadFactory(name="Maria Oliveira", phone="+5511987654321")
    joao = LeadFactory(name="João Pereira", phone="+5521988887777")
    assign(maria, ana, sales)
    assign(joao, bruno, insurance)
    ana_meeting = AppointmentFactory(
        salesperson=ana, lead=maria, starts_at=datetime(2026, 11, 26, 15, 0, tzinfo=SP)
    )
    bruno_meeting = AppointmentFactory(
        salesperson=bruno, lead=joao, starts_at=datetime(2026, 11, 27, 10, 0, tzinfo=SP)
    )
    for meeting in (ana_meeting, bruno_meeting):
        reminders_plan(appointment=meeting)
    return Agenda(sales, insurance, ana, bruno, maria, joao, ana_meeting, bruno_meeting)


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def ana(client: Client, agenda: Agenda) -> Client:
    return login(client, agenda.ana.user)


@pytest.fixture
def manager(client: Client, agenda: Agenda) -> Client:
    user = User.objects.create_user("gerente", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_all_appointments"))
    return login(client, user)


def listed(response: Any) -> list[int]:
    assert response.status_code == 200
    return sorted(a.pk for a in response.context["cl"].result_list)


def url(name: str, *args: object) -> str:
    return reverse(f"admin:scheduling_{name}", args=args)


# --- who sees what -------------------------------------------------------------------------------


def test_a_salesperson_lists_only_their_own_appointments(ana: Client, agenda: Agenda) -> None:
    response = ana.get(reverse(LIST))

    assert listed(response) == [agenda.ana_meeting.pk]
    html = response.content.decode()
    assert "Maria Oliveira" in html
    assert "João Pereira" not in html
    assert "Mark as done" in html
    assert "Mark as no-show" in html


def test_another_salespersons_appointment_does_not_exist_for_a_salesperson(
    ana: Client, agenda: Agenda
) -> None:
    other = agenda.bruno_meeting.pk

    assert ana.get(url("appointment_change", other)).status_code == 404
    assert ana.get(url("appointment_history", other)).status_code == 404
    assert ana.get(url("appointment_change", 999_999)).status_code == 404
    assert ana.get(url("appointment_change", agenda.ana_meeting.pk)).status_code == 200


def test_a_manager_with_the_permission_and_a_superuser_see_every_appointment(
    manager: Client, admin_client: Client, agenda: Agenda
) -> None:
    everyone = sorted([agenda.ana_meeting.pk, agenda.bruno_meeting.pk])

    assert listed(manager.get(reverse(LIST))) == everyone
    assert listed(admin_client.get(reverse(LIST))) == everyone
    assert manager.get(url("appointment_change", agenda.bruno_meeting.pk)).status_code == 200


def test_a_staff_user_who_is_neither_salesperson_nor_manager_has_no_agenda_pages(
    client: Client, agenda: Agenda
) -> None:
    login(client, User.objects.create_user("estagiario", is_staff=True))

    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(url("appointment_change", agenda.ana_meeting.pk)).status_code == 403
    assert client.get(url("agendablock_changelist")).status_code == 403
    assert client.get(url("interaction_changelist")).status_code == 403
    assert client.get(url("synccursor_changelist")).status_code == 403
    assert "Appointments" not in client.get(reverse("admin:index")).content.decode()


def test_appointments_are_read_only_mirrors(admin_client: Client, agenda: Agenda) -> None:
    page = admin_client.get(url("appointment_change", agenda.ana_meeting.pk))

    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert admin_client.get(url("appointment_add")).status_code == 403
    assert admin_client.get(url("appointment_delete", agenda.ana_meeting.pk)).status_code == 403


# --- reminders on the appointment ----------------------------------------------------------------


def test_each_reminder_shows_its_state_why_and_n8n_action_on_the_appointment(
    ana: Client, agenda: Agenda
) -> None:
    meeting = agenda.ana_meeting
    day, hour = (Reminder.objects.get(appointment=meeting, offset_minutes=m) for m in (1440, 60))
    dead = OutboundActionFactory(
        action="reminder", status=ActionStatus.DEAD, last_status_code=400, lead=agenda.maria
    )
    Reminder.objects.filter(pk=day.pk).update(
        status=ReminderStatus.FAILED,
        action=dead,
        detail=f"n8n action #{dead.pk} is dead: HTTP 400: no reminder branch",
    )
    held = OutboundActionFactory(
        action="reminder", status=ActionStatus.HELD, held_reason="n8n not configured"
    )
    Reminder.objects.filter(pk=hour.pk).update(action=held, detail="queued for n8n")
    # An older start's reminder, cancelled when the meeting moved.
    Reminder.objects.create(
        appointment=meeting,
        offset_minutes=60,
        appointment_starts_at=meeting.starts_at - timedelta(days=1),
        due_at=meeting.starts_at - timedelta(days=1, hours=1),
        status=ReminderStatus.CANCELLED,
        detail="the appointment was moved",
    )

    html = ana.get(url("appointment_change", meeting.pk)).content.decode()
    listing = ana.get(reverse(LIST)).content.decode()

    for text in (
        "24 h",
        f"n8n action #{dead.pk} is dead: HTTP 400: no reminder branch",
        reverse("admin:kommo_hub_outboundaction_change", args=[dead.pk]),
        "dead letter",
        "queued",
        "held: n8n not configured",
        "the appointment was moved",
        "Cancelled",
    ):
        assert text.lower() in html.lower(), text
    assert "24 h: failed · 1 h: queued" in listing


def test_the_list_filters_appointments_whose_reminders_failed(
    manager: Client, agenda: Agenda
) -> None:
    Reminder.objects.filter(appointment=agenda.bruno_meeting, offset_minutes=60).update(
        status=ReminderStatus.FAILED, detail="missed: the appointment already started"
    )

    assert listed(manager.get(reverse(LIST), {"reminders": "failed"})) == [agenda.bruno_meeting.pk]
    assert listed(manager.get(reverse(LIST), {"reminders": "scheduled"})) == sorted(
        [agenda.ana_meeting.pk, agenda.bruno_meeting.pk]
    )
    assert listed(manager.get(reverse(LIST), {"reminders": "sent"})) == []


# --- filters, search, days -----------------------------------------------------------------------


def test_appointments_filter_by_status_salesperson_and_area(
    manager: Client, agenda: Agenda
) -> None:
    # A lead of Seguros booked with Ana: in Seguros through the lead, in Consórcios through Ana.
    carla = LeadFactory(name="Carla Dias")
    assign(carla, agenda.bruno, agenda.insurance)
    crossed = AppointmentFactory(
        salesperson=agenda.ana,
        lead=carla,
        status=AppointmentStatus.CANCELLED,
        starts_at=datetime(2026, 11, 30, 9, 0, tzinfo=SP),
    )

    def filtered(**params: object) -> list[int]:
        return listed(manager.get(reverse(LIST), params))

    assert filtered(status="cancelled") == [crossed.pk]
    assert filtered(salesperson__id__exact=agenda.bruno.pk) == [agenda.bruno_meeting.pk]
    assert filtered(area=agenda.sales.pk) == sorted([agenda.ana_meeting.pk, crossed.pk])
    assert filtered(area=agenda.insurance.pk) == sorted([agenda.bruno_meeting.pk, crossed.pk])


def test_appointments_are_found_by_the_leads_name_or_phone(manager: Client, agenda: Agenda) -> None:
    assert listed(manager.get(reverse(LIST), {"q": "oliveira"})) == [agenda.ana_meeting.pk]
    assert listed(manager.get(reverse(LIST), {"q": "+5521988887777"})) == [agenda.bruno_meeting.pk]


def test_appointments_are_browsed_by_day(manager: Client, agenda: Agenda) -> None:
    thursday = {"starts_at__year": 2026, "starts_at__month": 11, "starts_at__day": 26}

    assert listed(manager.get(reverse(LIST), thursday)) == [agenda.ana_meeting.pk]


# --- done / no-show ------------------------------------------------------------------------------


def mark(client: Client, action: str, *appointments: Appointment) -> Any:
    return client.post(
        reverse(LIST),
        {"action": action, "_selected_action": [a.pk for a in appointments]},
        follow=True,
    )


def test_a_salesperson_marks_their_started_meeting_done_and_kommo_gets_a_note(
    ana: Client, agenda: Agenda, time_machine: time_machine.TimeMachineFixture
) -> None:
    meeting = agenda.ana_meeting
    time_machine.move_to(meeting.starts_at + timedelta(minutes=40), tick=False)

    response = mark(ana, "mark_done", meeting)

    meeting.refresh_from_db()
    assert meeting.status == AppointmentStatus.DONE
    assert "1 appointment marked done." in response.content.decode()
    note = OutboundAction.objects.get(action="note_add")
    assert note.idempotency_key.startswith(f"kommo:note:appointment:{meeting.pk}:done:")
    assert note.lead == agenda.maria


def test_marking_no_show_settles_the_reminders_still_waiting(
    manager: Client, agenda: Agenda, time_machine: time_machine.TimeMachineFixture
) -> None:
    meeting = agenda.bruno_meeting
    # The hub was away: neither reminder went out, and the meeting has started.
    time_machine.move_to(meeting.starts_at + timedelta(minutes=15), tick=False)

    mark(manager, "mark_no_show", meeting)

    meeting.refresh_from_db()
    assert meeting.status == AppointmentStatus.NO_SHOW
    assert sorted(
        Reminder.objects.filter(appointment=meeting).values_list(
            "offset_minutes", "status", "detail"
        )
    ) == [
        (60, "cancelled", "the appointment was marked no-show"),
        (1440, "cancelled", "the appointment was marked no-show"),
    ]


def test_a_meeting_that_has_not_started_is_not_marked(ana: Client, agenda: Agenda) -> None:
    response = mark(ana, "mark_no_show", agenda.ana_meeting)

    agenda.ana_meeting.refresh_from_db()
    assert agenda.ana_meeting.status == AppointmentStatus.BOOKED
    assert "The meeting has not started yet." in response.content.decode()
    assert not OutboundAction.objects.exists()


def test_a_salesperson_cannot_mark_another_salespersons_meeting(
    ana: Client, agenda: Agenda, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 11, 28, 9, 0, tzinfo=SP), tick=False)

    mark(ana, "mark_done", agenda.bruno_meeting)

    agenda.bruno_meeting.refresh_from_db()
    assert agenda.bruno_meeting.status == AppointmentStatus.BOOKED


# --- the other agenda pages ----------------------------------------------------------------------


def test_agenda_blocks_are_listed_read_only_per_salesperson(
    ana: Client, admin_client: Client, agenda: Agenda
) -> None:
    own = AgendaBlockFactory(salesperson=agenda.ana, reason="Médico")
    other = AgendaBlockFactory(salesperson=agenda.bruno, reason="Férias")

    assert sorted(
        b.pk for b in ana.get(url("agendablock_changelist")).context["cl"].result_list
    ) == [own.pk]
    assert ana.get(url("agendablock_change", other.pk)).status_code == 404
    assert ana.get(url("agendablock_add")).status_code == 403
    page = admin_client.get(url("agendablock_change", other.pk))
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert AgendaBlock.objects.count() == 2


def test_interaction_history_is_read_only_and_a_salesperson_sees_their_leads_and_meetings(
    ana: Client, agenda: Agenda
) -> None:
    on_meeting = InteractionFactory(appointment=agenda.ana_meeting, text="Confirmou presença")
    on_lead = InteractionFactory(lead=agenda.maria, text="Pediu o contrato")
    elsewhere = InteractionFactory(lead=agenda.joao, text="Outro cliente")

    response = ana.get(url("interaction_changelist"))

    assert sorted(i.pk for i in response.context["cl"].result_list) == sorted(
        [on_meeting.pk, on_lead.pk]
    )
    assert ana.get(url("interaction_change", elsewhere.pk)).status_code == 404
    meeting_page = ana.get(url("appointment_change", agenda.ana_meeting.pk)).content.decode()
    assert "Confirmou presença" in meeting_page
    assert Interaction.objects.count() == 3


def test_sync_cursors_are_read_only_for_those_allowed_to_see_them(
    ana: Client, admin_client: Client
) -> None:
    cursor = SyncCursor.objects.create(
        table="agendamentos", last_id=str(uuid.uuid4()), rows_synced=12, last_error="timeout"
    )

    page = admin_client.get(url("synccursor_changelist"))

    assert page.status_code == 200
    assert "agendamentos" in page.content.decode()
    assert admin_client.get(url("synccursor_add")).status_code == 403
    assert not admin_client.get(url("synccursor_change", cursor.pk)).context[
        "has_change_permission"
    ]
    assert ana.get(url("synccursor_changelist")).status_code == 403
