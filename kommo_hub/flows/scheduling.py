"""Flow 3 coordination: agenda changes become Kommo notes and meeting tasks (outbox rows in the
caller's transaction).

scheduling/ books, moves, cancels and closes appointments; this module tells the CRM:

- booked      → a note on the lead and a meeting task (task_type_id 2) for the salesperson,
                due at the meeting's start;
- rescheduled → a note (from → to) and a new meeting task at the new time;
- cancelled   → a note (with the reason);
- done / no-show → a note.

Idempotency keys are per appointment and version: "booked" and "cancelled" happen once per
appointment; a reschedule or a status change is keyed by the appointment's `updated_at` at that
change, so a retry of the same change writes nothing twice and every new change writes once.
Each write waits for the lead's Kommo creation when that is still on its way.

The notes and tasks are literal pt-BR on purpose (see kommo_hub/flows/bot.py): they are written
once into the CRM, which everyone reads in the account's language.
"""

import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from kommo_hub.models import InboundEvent, Lead
from kommo_hub.outbox.services import kommo_note_add, kommo_task_add, lead_kommo_create_action

if TYPE_CHECKING:
    from scheduling.sync import SyncResult

from scheduling.models import ACTIVE_STATUSES, Appointment, AppointmentStatus

MEETING_TASK_TYPE = 2  # Kommo's built-in "meeting" task type (kommo.md §3.5)


def _local(moment: datetime.datetime) -> datetime.datetime:
    return timezone.localtime(moment)


def when_text(moment: datetime.datetime) -> str:
    """'26/11 às 15:00' in the hub's time zone."""
    local = _local(moment)
    return f"{local:%d/%m} às {local:%H:%M}"


def _minutes(appointment: Appointment) -> int:
    return int((appointment.ends_at - appointment.starts_at).total_seconds()) // 60


def _person(appointment: Appointment) -> str:
    return appointment.salesperson.name if appointment.salesperson is not None else "a equipe"


def _lead_name(lead: Lead) -> str:
    return lead.name or (lead.contact.name if lead.contact else "") or f"lead #{lead.pk}"


def _version(appointment: Appointment) -> str:
    return str(int(appointment.updated_at.timestamp() * 1_000_000))


def _lead(appointment: Appointment) -> Lead | None:
    if appointment.lead_id is None:
        return None
    return Lead.objects.select_related("contact").filter(pk=appointment.lead_id).first()


def booked_note(appointment: Appointment) -> str:
    text = (
        f"Reunião agendada com {_person(appointment)} para "
        f"{when_text(appointment.starts_at)} ({_minutes(appointment)} min)"
    )
    if appointment.notes:
        text += f"\nObservações: {appointment.notes}"
    return text


def rescheduled_note(appointment: Appointment, previous_start: datetime.datetime) -> str:
    return (
        f"Reunião com {_person(appointment)} remarcada de {when_text(previous_start)} para "
        f"{when_text(appointment.starts_at)} ({_minutes(appointment)} min)"
    )


def cancelled_note(appointment: Appointment, reason: str = "") -> str:
    text = f"Reunião com {_person(appointment)} de {when_text(appointment.starts_at)} cancelada"
    return f"{text}. Motivo: {reason}" if reason else text


def status_note(appointment: Appointment) -> str:
    when = when_text(appointment.starts_at)
    if appointment.status == AppointmentStatus.NO_SHOW:
        return f"Cliente não compareceu à reunião com {_person(appointment)} de {when}"
    return f"Reunião com {_person(appointment)} de {when} realizada"


def _meeting_task(
    *,
    appointment: Appointment,
    lead: Lead,
    text: str,
    idempotency_key: str,
    source_event: InboundEvent | None,
) -> None:
    person = appointment.salesperson
    kommo_task_add(
        lead=lead,
        text=text,
        complete_till=int(appointment.starts_at.timestamp()),
        responsible_user_id=person.kommo_user_id if person is not None else None,
        idempotency_key=idempotency_key,
        task_type_id=MEETING_TASK_TYPE,
        depends_on=lead_kommo_create_action(lead=lead),
        source_event=source_event,
    )


def appointment_booked_sync(
    *, appointment: Appointment, source_event: InboundEvent | None = None
) -> None:
    """Note + meeting task for a new appointment. Idempotent."""
    lead = _lead(appointment)
    if lead is None:
        return
    kommo_note_add(
        lead=lead,
        text=booked_note(appointment),
        idempotency_key=f"kommo:note:appointment:{appointment.pk}:booked",
        depends_on=lead_kommo_create_action(lead=lead),
        source_event=source_event,
    )
    _meeting_task(
        appointment=appointment,
        lead=lead,
        text=f"Reunião com {_lead_name(lead)} ({_minutes(appointment)} min)",
        idempotency_key=f"kommo:task:appointment:{appointment.pk}:booked",
        source_event=source_event,
    )


def appointment_changed_sync(
    *,
    appointment: Appointment,
    previous_start: datetime.datetime,
    source_event: InboundEvent | None = None,
) -> None:
    """Note + a meeting task at the new time for a rescheduled appointment. Idempotent."""
    lead = _lead(appointment)
    if lead is None:
        return
    version = _version(appointment)
    kommo_note_add(
        lead=lead,
        text=rescheduled_note(appointment, previous_start),
        idempotency_key=f"kommo:note:appointment:{appointment.pk}:moved:{version}",
        depends_on=lead_kommo_create_action(lead=lead),
        source_event=source_event,
    )
    _meeting_task(
        appointment=appointment,
        lead=lead,
        text=(
            f"Reunião remarcada com {_lead_name(lead)}: {when_text(appointment.starts_at)} "
            f"({_minutes(appointment)} min)"
        ),
        idempotency_key=f"kommo:task:appointment:{appointment.pk}:moved:{version}",
        source_event=source_event,
    )


def appointment_cancelled_sync(
    *, appointment: Appointment, reason: str = "", source_event: InboundEvent | None = None
) -> None:
    """Note for a cancelled appointment. Idempotent (an appointment is cancelled once)."""
    lead = _lead(appointment)
    if lead is None:
        return
    kommo_note_add(
        lead=lead,
        text=cancelled_note(appointment, reason),
        idempotency_key=f"kommo:note:appointment:{appointment.pk}:cancelled",
        depends_on=lead_kommo_create_action(lead=lead),
        source_event=source_event,
    )


def appointment_status_sync(
    *, appointment: Appointment, source_event: InboundEvent | None = None
) -> None:
    """Note for a meeting marked done or no-show. Idempotent per change."""
    lead = _lead(appointment)
    if lead is None:
        return
    kommo_note_add(
        lead=lead,
        text=status_note(appointment),
        idempotency_key=(
            f"kommo:note:appointment:{appointment.pk}:{appointment.status}:{_version(appointment)}"
        ),
        depends_on=lead_kommo_create_action(lead=lead),
        source_event=source_event,
    )


def appointments_synced(result: "SyncResult") -> None:
    """What the Supabase sync (or its webhook) saw: bookings, moves and cancellations made outside
    the hub get the same Kommo notes, tasks and reminders as the API's. Idempotent: a booking the
    API already reported keeps its note keys."""
    from scheduling.reminders import reminders_plan
    from scheduling.sync import previous_start

    for appointment in result.created:
        if appointment.status in ACTIVE_STATUSES:
            appointment_booked_sync(appointment=appointment)
        reminders_plan(appointment=appointment)
    for appointment in result.changed:
        moved_from = previous_start(appointment)
        if moved_from is not None and appointment.status in ACTIVE_STATUSES:
            appointment_changed_sync(appointment=appointment, previous_start=moved_from)
        reminders_plan(appointment=appointment)
    for appointment in result.cancelled:
        appointment_cancelled_sync(appointment=appointment)
        reminders_plan(appointment=appointment)
