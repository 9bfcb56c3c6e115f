"""Booking services: book, reschedule, cancel, done / no-show; idempotency, re-checks under the
salesperson's lock, Supabase first (when configured) then the hub's mirror, and the Kommo note
and meeting task each change leaves in the outbox."""

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
import time_machine

from kommo_hub.flows.scheduling import (
    appointment_booked_sync,
    appointment_cancelled_sync,
    appointment_changed_sync,
    appointment_status_sync,
)
from kommo_hub.models import OutboundAction
from scheduling.booking import (
    AgendaError,
    AgendaUnavailable,
    AppointmentStateError,
    BookingRejected,
    SlotTaken,
    appointment_book,
    appointment_cancel,
    appointment_mark,
    appointment_reschedule,
)
from scheduling.models import Appointment, AppointmentStatus
from scheduling.slots import SlotRules, slot_is_free
from tests.factories import LeadFactory
from tests.routing.factories import SalespersonFactory
from tests.scheduling.booking_support import (
    APPOINTMENTS_URL,
    SP,
    SUPABASE_UPDATED_AT,
    THURSDAY,
    WEDNESDAY,
    Team,
    assign,
    at,
    postgrest_error,
    stored,
)
from tests.scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db

RULES = SlotRules(
    duration_minutes=30, step_minutes=30, buffer_minutes=0, min_notice_minutes=0, horizon_days=14
)
SUPABASE_ID = uuid.UUID("6f1c1a52-2a51-4f43-9a4e-3d9b7f1c0a11")


def book(team: Team, hour: int = 15, minute: int = 0, **kwargs: Any) -> Any:
    values: dict[str, Any] = {
        "lead_id": team.lead.pk,
        "start": at(THURSDAY, hour, minute),
        "idempotency_key": f"n8n:book:{hour}:{minute}",
    }
    return appointment_book(**(values | kwargs))


def kommo_writes() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (action.action, action.idempotency_key, action.payload)
        for action in OutboundAction.objects.order_by("pk")
    ]


# --- Booking -----------------------------------------------------------------------------------


def test_booking_writes_the_appointment_to_the_lead_s_salesperson(team: Team) -> None:
    result = book(team, title="Demonstração", notes="Quer ver o plano anual")

    assert result.changed is True
    appointment = Appointment.objects.get()
    assert appointment == result.appointment
    assert appointment.salesperson == team.ana
    assert appointment.lead == team.lead
    assert appointment.kommo_lead_id == 18754321
    assert appointment.starts_at == at(THURSDAY, 15)
    assert appointment.ends_at == at(THURSDAY, 15, 30)
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.source == "api"
    assert appointment.title == "Demonstração"
    assert appointment.notes == "Quer ver o plano anual"
    assert appointment.idempotency_key == "n8n:book:15:0"
    assert appointment.supabase_id is None
    assert not slot_is_free(salesperson_id=team.ana.pk, rules=RULES, start=at(THURSDAY, 15))


def test_the_default_title_names_the_lead(team: Team) -> None:
    assert book(team).appointment.title == "Reunião com Maria Oliveira"


def test_the_same_key_books_once_and_answers_the_same_appointment(team: Team) -> None:
    first = book(team)
    again = book(team)

    assert again.changed is False
    assert again.appointment.pk == first.appointment.pk
    assert Appointment.objects.count() == 1


def test_a_key_used_for_another_lead_is_refused(team: Team) -> None:
    book(team)
    other = LeadFactory()

    with pytest.raises(BookingRejected) as caught:
        book(team, lead_id=other.pk)

    assert caught.value.field_name == "idempotency_key"
    assert Appointment.objects.count() == 1


def test_a_taken_slot_is_refused_with_the_three_nearest_free_slots(team: Team) -> None:
    book(team, 15)
    AppointmentFactory(
        salesperson=team.ana, starts_at=at(THURSDAY, 14, 30), ends_at=at(THURSDAY, 15)
    )

    with pytest.raises(SlotTaken) as caught:
        book(team, 15, idempotency_key="n8n:other")

    assert caught.value.message == "This slot is not available."
    assert caught.value.field_name == "start"
    assert [(s.start.astimezone(SP), s.salesperson_id) for s in caught.value.alternatives] == [
        (at(THURSDAY, 14), team.ana.pk),
        (at(THURSDAY, 15, 30), team.ana.pk),
        (at(THURSDAY, 16), team.ana.pk),
    ]
    assert Appointment.objects.count() == 2


@pytest.mark.parametrize(
    ("hour", "minute", "why"),
    [
        (15, 10, "off the grid"),
        (12, 0, "lunch break"),
        (7, 0, "before the shift"),
    ],
)
def test_a_time_that_is_not_a_free_slot_is_refused(
    team: Team, hour: int, minute: int, why: str
) -> None:
    with pytest.raises(SlotTaken):
        book(team, hour, minute)

    assert Appointment.objects.count() == 0, why


def test_minimum_notice_and_horizon_apply_to_booking(team: Team) -> None:
    team.area.min_notice_minutes = 120
    team.area.booking_horizon_days = 3
    team.area.save()
    monday = at(THURSDAY, 9) - timedelta(days=3)

    with pytest.raises(SlotTaken):
        appointment_book(lead_id=team.lead.pk, start=monday, idempotency_key="soon")
    with pytest.raises(SlotTaken):
        appointment_book(
            lead_id=team.lead.pk, start=at(THURSDAY, 9), idempotency_key="too-far"
        )  # Monday 08:00 + 3 days = Thursday 08:00

    booked = appointment_book(
        lead_id=team.lead.pk, start=monday + timedelta(hours=1), idempotency_key="ok"
    )
    assert booked.changed is True


def test_another_salesperson_of_the_area_can_be_booked(team: Team) -> None:
    result = book(team, salesperson_id=team.bruno.pk)

    assert result.appointment.salesperson == team.bruno


def test_the_area_s_meeting_length_is_the_default_duration(team: Team) -> None:
    team.area.slot_minutes = 45
    team.area.save()

    result = book(team, 9, 45)

    assert result.appointment.ends_at == at(THURSDAY, 10, 30)


def test_a_requested_duration_overrides_the_area_s(team: Team) -> None:
    result = book(team, 9, duration_minutes=90)

    assert result.appointment.ends_at == at(THURSDAY, 10, 30)
    with pytest.raises(SlotTaken):
        book(team, 10, idempotency_key="overlap")


def test_a_lead_without_a_salesperson_needs_one_named(team: Team) -> None:
    waiting = LeadFactory()
    assign(waiting, None, team.area)

    with pytest.raises(BookingRejected) as caught:
        appointment_book(lead_id=waiting.pk, start=at(THURSDAY, 15), idempotency_key="k")

    assert caught.value.field_name == "salesperson"
    assert caught.value.message == (
        "The lead has no salesperson yet: say which salesperson to book."
    )


@pytest.mark.parametrize("field", ["lead", "salesperson"])
def test_unknown_lead_or_salesperson_is_refused(team: Team, field: str) -> None:
    kwargs = {"lead_id": 999_999} if field == "lead" else {"salesperson_id": 999_999}

    with pytest.raises(BookingRejected) as caught:
        book(team, **kwargs)

    assert caught.value.field_name == field


def test_an_inactive_salesperson_cannot_be_booked(team: Team) -> None:
    retired = SalespersonFactory(active=False)

    with pytest.raises(SlotTaken) as caught:
        book(team, salesperson_id=retired.pk)

    assert caught.value.alternatives == []


# --- Rescheduling ------------------------------------------------------------------------------


def test_rescheduling_moves_the_appointment_and_frees_the_old_slot(team: Team) -> None:
    appointment = book(team, 15).appointment

    result = appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16))

    assert result.changed is True
    assert result.previous_start == at(THURSDAY, 15)
    appointment.refresh_from_db()
    assert (appointment.starts_at, appointment.ends_at) == (at(THURSDAY, 16), at(THURSDAY, 16, 30))
    assert slot_is_free(salesperson_id=team.ana.pk, rules=RULES, start=at(THURSDAY, 15))


def test_rescheduling_keeps_the_length_and_may_overlap_its_own_old_time(team: Team) -> None:
    appointment = book(team, 15, duration_minutes=60).appointment

    appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 15, 30))

    appointment.refresh_from_db()
    assert (appointment.starts_at, appointment.ends_at) == (
        at(THURSDAY, 15, 30),
        at(THURSDAY, 16, 30),
    )


def test_rescheduling_to_the_same_time_changes_nothing(team: Team) -> None:
    appointment = book(team, 15).appointment

    result = appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 15))

    assert result.changed is False


def test_rescheduling_onto_a_taken_slot_is_refused_with_alternatives(team: Team) -> None:
    appointment = book(team, 15).appointment
    book(team, 16)

    with pytest.raises(SlotTaken) as caught:
        appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16))

    # Its own current slot (15:00) counts as free for it.
    assert [s.start.astimezone(SP) for s in caught.value.alternatives] == [
        at(THURSDAY, 15),
        at(THURSDAY, 15, 30),
        at(THURSDAY, 16, 30),
    ]
    appointment.refresh_from_db()
    assert appointment.starts_at == at(THURSDAY, 15)


def test_a_cancelled_appointment_cannot_be_rescheduled(team: Team) -> None:
    appointment = book(team, 15).appointment
    appointment_cancel(appointment_id=appointment.pk)

    with pytest.raises(AppointmentStateError):
        appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16))


def test_an_unknown_appointment_does_not_exist(team: Team) -> None:
    with pytest.raises(Appointment.DoesNotExist):
        appointment_reschedule(appointment_id=999_999, start=at(THURSDAY, 16))


# --- Cancel, done, no-show ---------------------------------------------------------------------


def test_cancelling_frees_the_slot_and_a_second_cancel_changes_nothing(team: Team) -> None:
    appointment = book(team, 15).appointment

    first = appointment_cancel(appointment_id=appointment.pk, reason="cliente desistiu")
    second = appointment_cancel(appointment_id=appointment.pk)

    assert (first.changed, second.changed) == (True, False)
    assert Appointment.objects.get().status == AppointmentStatus.CANCELLED
    assert slot_is_free(salesperson_id=team.ana.pk, rules=RULES, start=at(THURSDAY, 15))


def test_a_meeting_is_marked_done_or_no_show_only_once_it_has_started(team: Team) -> None:
    appointment = book(team, 15).appointment

    with pytest.raises(AppointmentStateError) as caught:
        appointment_mark(appointment_id=appointment.pk, status=AppointmentStatus.NO_SHOW)
    assert caught.value.message == "The meeting has not started yet."

    with time_machine.travel(at(THURSDAY, 15, 20), tick=False):
        no_show = appointment_mark(appointment_id=appointment.pk, status=AppointmentStatus.NO_SHOW)
        done = appointment_mark(appointment_id=appointment.pk, status=AppointmentStatus.DONE)
        again = appointment_mark(appointment_id=appointment.pk, status=AppointmentStatus.DONE)

    assert (no_show.changed, done.changed, again.changed) == (True, True, False)
    assert Appointment.objects.get().status == AppointmentStatus.DONE


def test_finished_and_cancelled_appointments_refuse_the_other_ending(team: Team) -> None:
    done = AppointmentFactory(salesperson=team.ana, lead=team.lead, status=AppointmentStatus.DONE)
    cancelled = AppointmentFactory(
        salesperson=team.ana, lead=team.lead, status=AppointmentStatus.CANCELLED
    )

    with pytest.raises(AppointmentStateError):
        appointment_cancel(appointment_id=done.pk)
    with time_machine.travel(at(THURSDAY, 20), tick=False), pytest.raises(AppointmentStateError):
        appointment_mark(appointment_id=cancelled.pk, status=AppointmentStatus.DONE)


# --- Supabase ----------------------------------------------------------------------------------


def test_with_supabase_the_row_goes_there_first_and_the_mirror_keeps_its_id(
    team: Team, supabase: respx.MockRouter
) -> None:
    insert = supabase.post(APPOINTMENTS_URL).mock(
        side_effect=lambda request: stored(request, id=SUPABASE_ID)
    )

    appointment = book(team, 15, notes="primeira conversa").appointment

    assert json.loads(insert.calls.last.request.content) == {
        "vendedor_id": team.ana.pk,
        "lead_id": team.lead.pk,
        "kommo_lead_id": 18754321,
        "kommo_contact_id": None,
        "inicio": "2026-11-26T18:00:00Z",
        "fim": "2026-11-26T18:30:00Z",
        "status": "booked",
        "origem": "api",
        "titulo": "Reunião com Maria Oliveira",
        "observacoes": "primeira conversa",
        "idempotency_key": "n8n:book:15:0",
    }
    assert appointment.supabase_id == SUPABASE_ID
    assert appointment.supabase_updated_at is not None
    assert appointment.supabase_updated_at.isoformat() == SUPABASE_UPDATED_AT


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, text="upstream connect error"),
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("timed out"),
    ],
    ids=["503", "connection-refused", "timeout"],
)
def test_supabase_unavailable_books_nothing(
    team: Team, supabase: respx.MockRouter, answer: Any
) -> None:
    route = supabase.post(APPOINTMENTS_URL)
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)

    with pytest.raises(AgendaUnavailable) as caught:
        book(team, 15, then=lambda appointment: appointment_booked_sync(appointment=appointment))

    assert caught.value.message == (
        "The agenda (Supabase) is unavailable; nothing was booked. Try again shortly."
    )
    assert Appointment.objects.count() == 0
    assert OutboundAction.objects.count() == 0


def test_supabase_refusing_the_row_books_nothing(team: Team, supabase: respx.MockRouter) -> None:
    supabase.post(APPOINTMENTS_URL).mock(
        return_value=postgrest_error(400, "PGRST204", "Could not find the 'titulo' column")
    )

    with pytest.raises(AgendaError):
        book(team, 15)

    assert Appointment.objects.count() == 0


def test_supabase_s_overlap_constraint_means_the_slot_is_taken(
    team: Team, supabase: respx.MockRouter
) -> None:
    supabase.post(APPOINTMENTS_URL).mock(
        return_value=postgrest_error(
            400, "23P01", 'conflicting key value violates exclusion constraint "sem_sobreposicao"'
        )
    )
    find = supabase.get(url__startswith=APPOINTMENTS_URL).mock(
        return_value=httpx.Response(200, json=[])
    )

    with pytest.raises(SlotTaken) as caught:
        book(team, 15)

    assert "idempotency_key=eq.n8n%3Abook%3A15%3A0" in str(find.calls.last.request.url)
    # The mirror has 15:00 free, but Supabase said no: it is not offered back.
    assert [s.start.astimezone(SP) for s in caught.value.alternatives] == [
        at(THURSDAY, 14),
        at(THURSDAY, 14, 30),
        at(THURSDAY, 15, 30),
    ]
    assert Appointment.objects.count() == 0


def test_a_retry_adopts_the_row_supabase_kept_from_an_uncommitted_try(
    team: Team, supabase: respx.MockRouter
) -> None:
    supabase.post(APPOINTMENTS_URL).mock(
        return_value=postgrest_error(
            409, "23505", 'duplicate key value violates unique constraint "idempotency_key"'
        )
    )
    supabase.get(url__startswith=APPOINTMENTS_URL).mock(
        return_value=httpx.Response(
            200,
            json=[
                {
                    "id": str(SUPABASE_ID),
                    "vendedor_id": team.ana.pk,
                    "idempotency_key": "n8n:book:15:0",
                    "updated_at": SUPABASE_UPDATED_AT,
                }
            ],
        )
    )

    result = book(team, 15)

    assert result.changed is True
    assert result.appointment.supabase_id == SUPABASE_ID


def test_rescheduling_and_cancelling_update_the_supabase_row(
    team: Team, supabase: respx.MockRouter
) -> None:
    supabase.post(APPOINTMENTS_URL).mock(side_effect=lambda r: stored(r, id=SUPABASE_ID))
    update = supabase.patch(f"{APPOINTMENTS_URL}?id=eq.{SUPABASE_ID}").mock(
        return_value=httpx.Response(200, json=[{"id": str(SUPABASE_ID)}])
    )
    appointment = book(team, 15).appointment

    appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16))
    appointment_cancel(appointment_id=appointment.pk)

    assert [json.loads(call.request.content) for call in update.calls] == [
        {"inicio": "2026-11-26T19:00:00Z", "fim": "2026-11-26T19:30:00Z"},
        {"status": "cancelled"},
    ]


def test_supabase_s_overlap_on_reschedule_keeps_the_old_time(
    team: Team, supabase: respx.MockRouter
) -> None:
    supabase.post(APPOINTMENTS_URL).mock(side_effect=lambda r: stored(r, id=SUPABASE_ID))
    supabase.patch(url__startswith=APPOINTMENTS_URL).mock(
        return_value=postgrest_error(400, "23P01", "conflicting key value")
    )
    appointment = book(team, 15).appointment

    with pytest.raises(SlotTaken):
        appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16))

    appointment.refresh_from_db()
    assert appointment.starts_at == at(THURSDAY, 15)


def test_a_mirror_only_appointment_reaches_supabase_when_rescheduled(
    team: Team, settings: Any
) -> None:
    appointment = book(team, 15).appointment  # Supabase not configured yet
    settings.SUPABASE_URL = "https://agenda.supabase.test"
    settings.SUPABASE_SERVICE_ROLE_KEY = (
        "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
    )
    with respx.mock(assert_all_mocked=True) as router:
        insert = router.post(APPOINTMENTS_URL).mock(side_effect=lambda r: stored(r, id=SUPABASE_ID))
        appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16))

    assert json.loads(insert.calls.last.request.content)["inicio"] == "2026-11-26T19:00:00Z"
    appointment.refresh_from_db()
    assert appointment.supabase_id == SUPABASE_ID


# --- Kommo notes and tasks (kommo_hub/flows/scheduling.py) -------------------------------------


def test_a_booking_leaves_a_pt_br_note_and_a_meeting_task_for_the_salesperson(team: Team) -> None:
    appointment = book(team, 15, then=lambda a: appointment_booked_sync(appointment=a)).appointment

    assert kommo_writes() == [
        (
            "note_add",
            f"kommo:note:appointment:{appointment.pk}:booked",
            {
                "operation": "note_add",
                "lead_id": team.lead.pk,
                "text": "Reunião agendada com Ana Souza para 26/11 às 15:00 (30 min)",
            },
        ),
        (
            "task_add",
            f"kommo:task:appointment:{appointment.pk}:booked",
            {
                "operation": "task_add",
                "lead_id": team.lead.pk,
                "text": "Reunião com Maria Oliveira (30 min)",
                "complete_till": int(at(THURSDAY, 15).timestamp()),
                "responsible_user_id": 9876543,
                "task_type_id": 2,
            },
        ),
    ]


def test_an_idempotent_repeat_writes_nothing_more(team: Team) -> None:
    for _ in range(2):
        book(team, 15, then=lambda a: appointment_booked_sync(appointment=a))

    assert OutboundAction.objects.count() == 2


def test_each_reschedule_leaves_its_own_note_and_task(team: Team) -> None:
    appointment = book(team, 15).appointment

    def moved(a: Appointment, previous: Any) -> None:
        appointment_changed_sync(appointment=a, previous_start=previous)

    appointment_reschedule(appointment_id=appointment.pk, start=at(THURSDAY, 16), then=moved)
    with time_machine.travel(at(WEDNESDAY, 8), tick=False):
        appointment_reschedule(
            appointment_id=appointment.pk, start=at(THURSDAY, 15), duration_minutes=60, then=moved
        )

    writes = kommo_writes()
    assert [(action, payload["text"]) for action, _key, payload in writes] == [
        ("note_add", "Reunião com Ana Souza remarcada de 26/11 às 15:00 para 26/11 às 16:00 "
                     "(30 min)"),
        ("task_add", "Reunião remarcada com Maria Oliveira: 26/11 às 16:00 (30 min)"),
        ("note_add", "Reunião com Ana Souza remarcada de 26/11 às 16:00 para 26/11 às 15:00 "
                     "(60 min)"),
        ("task_add", "Reunião remarcada com Maria Oliveira: 26/11 às 15:00 (60 min)"),
    ]  # fmt: skip
    assert len({key for _action, key, _payload in writes}) == 4
    assert writes[3][2]["complete_till"] == int(at(THURSDAY, 15).timestamp())


def test_cancelling_and_closing_leave_notes(team: Team) -> None:
    first = book(team, 15).appointment
    second = book(team, 16).appointment

    appointment_cancel(
        appointment_id=first.pk,
        reason="cliente viajou",
        then=lambda a: appointment_cancelled_sync(appointment=a, reason="cliente viajou"),
    )
    with time_machine.travel(at(THURSDAY, 17), tick=False):
        appointment_mark(
            appointment_id=second.pk,
            status=AppointmentStatus.NO_SHOW,
            then=lambda a: appointment_status_sync(appointment=a),
        )

    assert [payload["text"] for _action, _key, payload in kommo_writes()] == [
        "Reunião com Ana Souza de 26/11 às 15:00 cancelada. Motivo: cliente viajou",
        "Cliente não compareceu à reunião com Ana Souza de 26/11 às 16:00",
    ]


def test_a_failing_follow_up_rolls_the_booking_back(team: Team) -> None:
    def broken(appointment: Appointment) -> None:
        raise RuntimeError("outbox down")

    with pytest.raises(RuntimeError):
        book(team, 15, then=broken)

    assert Appointment.objects.count() == 0
