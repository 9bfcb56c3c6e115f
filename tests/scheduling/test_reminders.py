"""Reminders before appointments: planned per offset and start, sent once as n8n `reminder`
actions, never for cancelled or finished meetings, fresh for moved ones, and each one's fate
(sent, failed and why, cancelled and why) recorded on it."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import respx
import time_machine

from kommo_hub.flows.reminders import reminder_key, reminders_send_due
from kommo_hub.models import ActionStatus, Conversation, OutboundAction
from kommo_hub.ops.jobs import JOBS, release_held_actions
from routing.models import Area, Salesperson
from scheduling.models import Appointment, AppointmentStatus, Reminder, ReminderStatus
from scheduling.reminders import PlanResult, reminder_offsets, reminders_plan
from tests.factories import LeadFactory
from tests.outbox.support import N8N_SECRET, N8N_URL, committed
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.scheduling.factories import AppointmentFactory

pytestmark = pytest.mark.django_db

SP = ZoneInfo("America/Sao_Paulo")
# Booked on Tuesday 24/11 at noon for Thursday 26/11 at 15:00 (São Paulo).
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=SP)
START = datetime(2026, 11, 26, 15, 0, tzinfo=SP)
DAY_BEFORE = datetime(2026, 11, 25, 15, 0, tzinfo=SP)
HOUR_BEFORE = datetime(2026, 11, 26, 14, 0, tzinfo=SP)

SCHEDULED, SENT, FAILED, CANCELLED = (
    ReminderStatus.SCHEDULED,
    ReminderStatus.SENT,
    ReminderStatus.FAILED,
    ReminderStatus.CANCELLED,
)


class Clock:
    def __init__(self, machine: time_machine.TimeMachineFixture) -> None:
        self.machine = machine

    def set(self, moment: datetime) -> None:
        self.machine.move_to(moment, tick=False)


@pytest.fixture
def clock(time_machine: time_machine.TimeMachineFixture) -> Clock:
    clock = Clock(time_machine)
    clock.set(NOW)
    return clock


@pytest.fixture
def n8n(settings: Any) -> Iterator[respx.Route]:
    """n8n configured and answering 200; any other HTTP call fails the test."""
    settings.N8N_WEBHOOK_URL = N8N_URL
    settings.N8N_WEBHOOK_SECRET = N8N_SECRET
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router.post(N8N_URL).respond(200, json={"ok": True})


@pytest.fixture
def area() -> Area:
    return AreaFactory(
        name="Consórcios", slug="consorcios", ai_instructions="Tom cordial", first_message_hint="Oi"
    )


@pytest.fixture
def ana(area: Area) -> Salesperson:
    person = SalespersonFactory(name="Ana Souza", kommo_user_id=9876543, phone="+5511911112222")
    AreaMembershipFactory(area=area, salesperson=person)
    return person


def booked(ana: Salesperson, *, starts_at: datetime = START, **fields: Any) -> Appointment:
    """An appointment as booking creates it: its reminders planned at once."""
    lead = fields.pop("lead", None) or LeadFactory(name="Maria Oliveira", phone="+5511987654321")
    appointment: Appointment = AppointmentFactory(
        salesperson=ana, lead=lead, starts_at=starts_at, title="Apresentação", **fields
    )
    reminders_plan(appointment=appointment)
    return appointment


def states(appointment: Appointment) -> list[tuple[int, datetime, datetime, str, str]]:
    """(offset, start, due, status, detail), in São Paulo time, newest start first."""
    rows = Reminder.objects.filter(appointment=appointment).order_by(
        "-appointment_starts_at", "-offset_minutes"
    )
    return [
        (r.offset_minutes, local(r.appointment_starts_at), local(r.due_at), r.status, r.detail)
        for r in rows
    ]


def local(moment: datetime) -> datetime:
    return moment.astimezone(SP)


def run_job() -> int:
    """The periodic job, committed: the actions it records are delivered (tasks run inline)."""
    with committed():
        return reminders_send_due()


def sent(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]


def move(appointment: Appointment, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(appointment, name, value)
    appointment.save()
    reminders_plan(appointment=appointment)


# --- planning ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("clock")
def test_a_booked_appointment_gets_a_reminder_a_day_and_an_hour_before_its_start(
    ana: Salesperson,
) -> None:
    appointment = booked(ana)

    assert states(appointment) == [
        (1440, START, DAY_BEFORE, SCHEDULED, ""),
        (60, START, HOUR_BEFORE, SCHEDULED, ""),
    ]


@pytest.mark.usefixtures("clock")
def test_planning_again_changes_nothing(ana: Salesperson) -> None:
    appointment = booked(ana)
    before = list(Reminder.objects.order_by("pk").values())

    assert reminders_plan(appointment=appointment) == PlanResult(scheduled=0, cancelled=0)
    assert list(Reminder.objects.order_by("pk").values()) == before


@pytest.mark.usefixtures("clock")
def test_the_offsets_come_from_the_settings(settings: Any, ana: Salesperson) -> None:
    settings.REMINDER_OFFSETS_MINUTES = [30, 120, 30, 0]

    appointment = booked(ana)

    assert reminder_offsets() == [120, 30]
    assert [(offset, due) for offset, _s, due, _st, _d in states(appointment)] == [
        (120, START - timedelta(hours=2)),
        (30, START - timedelta(minutes=30)),
    ]


def test_a_reminder_whose_time_had_passed_when_booked_is_not_sent(
    clock: Clock, ana: Salesperson
) -> None:
    clock.set(START - timedelta(hours=2))
    two_hours_ahead = booked(ana)
    clock.set(START - timedelta(minutes=30))
    half_an_hour_ahead = booked(ana)

    assert states(two_hours_ahead) == [
        (1440, START, DAY_BEFORE, CANCELLED, "booked too late for this reminder"),
        (60, START, HOUR_BEFORE, SCHEDULED, ""),
    ]
    assert states(half_an_hour_ahead) == [
        (1440, START, DAY_BEFORE, CANCELLED, "booked too late for this reminder"),
        (60, START, HOUR_BEFORE, CANCELLED, "booked too late for this reminder"),
    ]


def test_an_appointment_booked_in_supabase_before_the_hub_saw_it_keeps_its_overdue_reminder(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    # Booked on Monday in Supabase; the hub (down until Wednesday evening) sees it only now.
    clock.set(datetime(2026, 11, 25, 18, 0, tzinfo=SP))
    appointment = booked(ana, supabase_updated_at=datetime(2026, 11, 23, 10, 0, tzinfo=SP))

    assert states(appointment)[0] == (1440, START, DAY_BEFORE, SCHEDULED, "")
    assert run_job() == 1
    assert [body["reminder"] for body in sent(n8n)] == [{"offset_minutes": 1440}]


@pytest.mark.usefixtures("clock")
def test_a_moved_appointment_gets_fresh_reminders_and_the_old_starts_are_cancelled(
    ana: Salesperson,
) -> None:
    appointment = booked(ana)
    new_start = START + timedelta(days=1, hours=1)

    move(appointment, starts_at=new_start, ends_at=new_start + timedelta(minutes=30))

    assert states(appointment) == [
        (1440, new_start, new_start - timedelta(days=1), SCHEDULED, ""),
        (60, new_start, new_start - timedelta(hours=1), SCHEDULED, ""),
        (1440, START, DAY_BEFORE, CANCELLED, "the appointment was moved"),
        (60, START, HOUR_BEFORE, CANCELLED, "the appointment was moved"),
    ]


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize(
    ("status", "why"),
    [
        (AppointmentStatus.CANCELLED, "the appointment was cancelled"),
        (AppointmentStatus.DONE, "the appointment is done"),
        (AppointmentStatus.NO_SHOW, "the appointment was marked no-show"),
    ],
)
def test_cancelled_or_finished_appointments_cancel_their_waiting_reminders(
    ana: Salesperson, status: str, why: str
) -> None:
    appointment = booked(ana)

    move(appointment, status=status)

    assert states(appointment) == [
        (1440, START, DAY_BEFORE, CANCELLED, why),
        (60, START, HOUR_BEFORE, CANCELLED, why),
    ]


@pytest.mark.usefixtures("clock")
def test_an_appointment_moved_back_or_booked_again_gets_its_reminders_back(
    ana: Salesperson,
) -> None:
    appointment = booked(ana)
    move(appointment, status=AppointmentStatus.CANCELLED)

    move(appointment, status=AppointmentStatus.CONFIRMED)

    assert states(appointment) == [
        (1440, START, DAY_BEFORE, SCHEDULED, ""),
        (60, START, HOUR_BEFORE, SCHEDULED, ""),
    ]


def test_the_job_plans_an_appointment_whose_booking_did_not_plan_its_reminders(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment: Appointment = AppointmentFactory(salesperson=ana, starts_at=START)
    past: Appointment = AppointmentFactory(salesperson=ana, starts_at=NOW - timedelta(hours=1))
    cancelled: Appointment = AppointmentFactory(
        salesperson=ana, starts_at=START, status=AppointmentStatus.CANCELLED
    )

    assert run_job() == 1

    assert states(appointment) == [
        (1440, START, DAY_BEFORE, SCHEDULED, ""),
        (60, START, HOUR_BEFORE, SCHEDULED, ""),
    ]
    assert states(past) == states(cancelled) == []
    assert run_job() == 0
    clock.set(DAY_BEFORE)
    assert run_job() == 1
    assert [body["appointment"]["id"] for body in sent(n8n)] == [appointment.pk]


# --- sending -----------------------------------------------------------------------------------


def test_nothing_is_sent_before_a_reminder_is_due(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    booked(ana)
    clock.set(DAY_BEFORE - timedelta(seconds=1))

    assert run_job() == 0
    assert OutboundAction.objects.count() == 0
    assert n8n.call_count == 0


def test_a_due_reminder_becomes_one_n8n_reminder_action_with_the_appointment_and_offset(
    clock: Clock, area: Area, ana: Salesperson, n8n: respx.Route
) -> None:
    lead = LeadFactory(name="Maria Oliveira", phone="+5511987654321", kommo_lead_id=18754321)
    appointment = booked(ana, lead=lead, supabase_id="0b6f7c1e-3d59-4f7e-9a55-1c2d3e4f5a6b")
    clock.set(DAY_BEFORE)

    assert run_job() == 1

    action = OutboundAction.objects.get()
    key = f"n8n:reminder:{appointment.pk}:1440:2026-11-26T18:00:00Z"
    assert (action.target, action.action, action.idempotency_key, action.lead_id) == (
        "n8n",
        "reminder",
        key,
        lead.pk,
    )
    assert key == reminder_key(appointment_id=appointment.pk, offset_minutes=1440, starts_at=START)
    assert action.payload == {
        "action": "reminder",
        "idempotency_key": key,
        "lead": {
            "id": lead.pk,
            "kommo_lead_id": 18754321,
            "kommo_contact_id": None,
            "name": "Maria Oliveira",
            "phone": "+5511987654321",
            "email": lead.email,
            "source": "website",
            "utm": {},
            "fields": {},
        },
        "area": {
            "slug": "consorcios",
            "name": "Consórcios",
            "ai_instructions": "Tom cordial",
            "first_message_hint": "Oi",
        },
        "salesperson": {
            "id": ana.pk,
            "name": "Ana Souza",
            "kommo_user_id": 9876543,
            "phone": "+5511911112222",
        },
        "appointment": {
            "id": appointment.pk,
            "supabase_id": "0b6f7c1e-3d59-4f7e-9a55-1c2d3e4f5a6b",
            "start": "2026-11-26T18:00:00Z",
            "end": "2026-11-26T18:30:00Z",
            "status": "booked",
            "title": "Apresentação",
        },
        "reminder": {"offset_minutes": 1440},
    }
    assert Reminder.objects.get(offset_minutes=1440).action == action


def test_n8n_gets_the_reminder_with_the_chat_and_the_next_run_records_it_sent(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    Conversation.objects.create(
        chat_id="chat-maria", lead=appointment.lead, last_incoming_at=NOW - timedelta(hours=1)
    )
    clock.set(HOUR_BEFORE + timedelta(seconds=20))  # the 24-hour one went out the day before
    Reminder.objects.filter(offset_minutes=1440).update(status=SENT, detail="delivered to n8n")

    assert run_job() == 1

    [body] = sent(n8n)
    assert n8n.calls[0].request.headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert (body["action"], body["reminder"], body["appointment"]["start"]) == (
        "reminder",
        {"offset_minutes": 60},
        "2026-11-26T18:00:00Z",
    )
    assert (body["conversation"]["chat_id"], body["conversation"]["bot_state"]) == (
        "chat-maria",
        "active",
    )
    assert body["sent_at"] == "2026-11-26T17:00:20Z"
    assert states(appointment)[1] == (60, START, HOUR_BEFORE, SCHEDULED, "queued for n8n")

    assert run_job() == 1

    assert states(appointment)[1] == (60, START, HOUR_BEFORE, SENT, "delivered to n8n")
    assert run_job() == 0
    assert n8n.call_count == 1


def test_each_reminder_is_sent_once_however_often_the_job_runs(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    first, second = booked(ana), booked(ana)
    clock.set(DAY_BEFORE + timedelta(minutes=5))

    results = [run_job() for _ in range(3)]

    assert results == [2, 2, 0]
    assert OutboundAction.objects.filter(action="reminder").count() == 2
    assert sorted(body["appointment"]["id"] for body in sent(n8n)) == [first.pk, second.pk]
    assert Reminder.objects.filter(status=SENT).count() == 2


def test_a_second_scheduler_that_queued_the_same_reminder_does_not_duplicate_it(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    clock.set(DAY_BEFORE)
    reminder = Reminder.objects.get(offset_minutes=1440)
    # Another scheduler got as far as recording the action, then lost its transaction's row
    # update (the reminder still looks unsent): the idempotency key keeps it to one action.
    with committed():
        from kommo_hub.flows.reminders import reminder_enqueue

        action_id = reminder_enqueue(reminder)

    assert run_job() == 2  # handed over, then found delivered

    assert OutboundAction.objects.filter(action="reminder").count() == 1
    assert Reminder.objects.get(pk=reminder.pk).action_id == action_id
    assert n8n.call_count == 1
    assert states(appointment)[0][3:] == (SENT, "delivered to n8n")


def test_a_reminder_due_while_the_hub_was_down_goes_out_while_the_meeting_is_ahead(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    clock.set(START - timedelta(hours=3))  # the 24-hour reminder was due yesterday

    run_job()
    run_job()

    assert [body["reminder"] for body in sent(n8n)] == [{"offset_minutes": 1440}]
    assert states(appointment)[0] == (1440, START, DAY_BEFORE, SENT, "delivered to n8n")


def test_when_both_reminders_are_overdue_only_the_later_one_goes_out(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    clock.set(START - timedelta(minutes=20))

    run_job()
    run_job()

    assert [body["reminder"] for body in sent(n8n)] == [{"offset_minutes": 60}]
    assert states(appointment) == [
        (1440, START, DAY_BEFORE, FAILED, "missed: the 60-minute reminder went out instead"),
        (60, START, HOUR_BEFORE, SENT, "delivered to n8n"),
    ]


def test_a_reminder_whose_meeting_already_started_fails_as_missed(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    clock.set(START + timedelta(minutes=1))

    assert run_job() == 0

    assert n8n.call_count == 0
    assert states(appointment) == [
        (1440, START, DAY_BEFORE, FAILED, "missed: the appointment already started"),
        (60, START, HOUR_BEFORE, FAILED, "missed: the appointment already started"),
    ]


def test_a_reminder_of_an_appointment_without_a_lead_fails_with_why(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    Appointment.objects.filter(pk=appointment.pk).update(lead=None)
    clock.set(DAY_BEFORE)

    run_job()

    assert n8n.call_count == 0
    assert states(appointment)[0][3:] == (
        FAILED,
        "no lead to remind: the appointment has no lead in the hub",
    )


def test_a_dead_action_fails_its_reminder_with_the_error(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    n8n.respond(400, text="workflow has no reminder branch")
    appointment = booked(ana)
    clock.set(DAY_BEFORE)

    run_job()
    run_job()

    action = OutboundAction.objects.get()
    assert action.status == ActionStatus.DEAD
    assert states(appointment)[0][3:] == (
        FAILED,
        f"n8n action #{action.pk} is dead: HTTP 400: workflow has no reminder branch",
    )


def test_n8n_reporting_a_failure_fails_the_reminder(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    appointment = booked(ana)
    clock.set(DAY_BEFORE)
    run_job()
    run_job()
    assert states(appointment)[0][3] == SENT

    OutboundAction.objects.update(
        callback_status="failed", result={"error": "WhatsApp: número sem conta"}
    )
    assert run_job() == 1

    assert states(appointment)[0][3:] == (
        FAILED,
        "n8n reported a failure: WhatsApp: número sem conta",
    )


def test_a_queued_reminder_of_a_cancelled_appointment_is_never_sent(
    clock: Clock, settings: Any, ana: Salesperson, n8n: respx.Route
) -> None:
    settings.N8N_WEBHOOK_URL = ""  # n8n not configured: the action waits, held
    appointment = booked(ana)
    clock.set(DAY_BEFORE)
    run_job()
    action = OutboundAction.objects.get()
    assert (action.status, action.held_reason) == (ActionStatus.HELD, "n8n not configured")

    move(appointment, status=AppointmentStatus.CANCELLED)
    run_job()
    settings.N8N_WEBHOOK_URL = N8N_URL
    with committed():
        release_held_actions()

    action.refresh_from_db()
    assert (action.status, action.held_reason) == (
        ActionStatus.SKIPPED,
        "reminder not needed: the appointment was cancelled",
    )
    assert n8n.call_count == 0
    assert states(appointment) == [
        (1440, START, DAY_BEFORE, CANCELLED, "the appointment was cancelled"),
        (60, START, HOUR_BEFORE, CANCELLED, "the appointment was cancelled"),
    ]


def test_a_queued_reminder_of_a_moved_appointment_is_stopped_and_the_new_start_reminded(
    clock: Clock, settings: Any, ana: Salesperson, n8n: respx.Route
) -> None:
    settings.N8N_WEBHOOK_URL = ""
    appointment = booked(ana)
    clock.set(DAY_BEFORE)
    run_job()
    later = START + timedelta(days=2)

    move(appointment, starts_at=later, ends_at=later + timedelta(minutes=30))
    run_job()

    assert OutboundAction.objects.get().status == ActionStatus.SKIPPED
    assert states(appointment) == [
        (1440, later, later - timedelta(days=1), SCHEDULED, ""),
        (60, later, later - timedelta(hours=1), SCHEDULED, ""),
        (1440, START, DAY_BEFORE, CANCELLED, "the appointment was moved"),
        (60, START, HOUR_BEFORE, CANCELLED, "the appointment was moved"),
    ]


def test_a_held_reminder_whose_meeting_started_fails_as_missed(
    clock: Clock, settings: Any, ana: Salesperson
) -> None:
    settings.N8N_WEBHOOK_URL = ""
    appointment = booked(ana)
    clock.set(HOUR_BEFORE)
    run_job()
    assert OutboundAction.objects.get().status == ActionStatus.HELD

    clock.set(START)
    run_job()

    assert OutboundAction.objects.get().status == ActionStatus.SKIPPED
    assert states(appointment) == [
        (1440, START, DAY_BEFORE, FAILED, "missed: the 60-minute reminder went out instead"),
        (60, START, HOUR_BEFORE, FAILED, "missed: the appointment already started"),
    ]


def test_the_scheduler_runs_the_reminder_job_every_minute(
    clock: Clock, ana: Salesperson, n8n: respx.Route
) -> None:
    from kommo_hub.ops.scheduler import scheduler_tick

    booked(ana)
    clock.set(DAY_BEFORE)
    every, _job = JOBS["reminders"]

    with committed():
        ran = scheduler_tick(now=DAY_BEFORE.timestamp(), runner="test")

    assert every == 60
    assert ran["reminders"] == 1
    assert n8n.call_count == 1
    assert (
        DAY_BEFORE.astimezone(UTC)
        == Reminder.objects.get(status=SCHEDULED, action__isnull=False).due_at
    )
