"""Booking, rescheduling, cancelling and closing appointments (services).

Every change of one salesperson's agenda runs under a lock on that Salesperson row
(SELECT … FOR UPDATE; SQLite's IMMEDIATE transactions serialize writers anyway), re-checks the
slot with the same computation the slots endpoint uses (scheduling.slots), writes Supabase when
it is configured, then the hub's mirror. So of N parallel bookings of one slot exactly one wins,
with or without Supabase; with it, Supabase's own exclusion constraint is a second guard
(SupabaseConflict → the slot is taken).

- Supabase configured and unreachable (or refusing) → AgendaUnavailable / AgendaError, and the
  transaction rolls back: nothing is written.
- Supabase not configured → the mirror alone is the agenda.
- Booking is idempotent on `idempotency_key`: the same key returns the same appointment
  (created=False). A retry after Supabase took the row but the hub did not commit adopts
  Supabase's row (found by its idempotency_key).

Domain only: no outbox. The coordinator (kommo_hub/flows/scheduling.py) passes `then`, called
inside the transaction with the result, to turn the change into Kommo notes and tasks.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from kommo_hub.models import Lead
from routing.models import Salesperson
from scheduling import supabase as agenda
from scheduling.models import ACTIVE_STATUSES, Appointment, AppointmentStatus
from scheduling.slots import (
    Slot,
    SlotRules,
    booking_area,
    lead_current_assignment,
    slot_alternatives,
    slot_is_free,
)

logger = logging.getLogger("scheduling")

UTC = datetime.UTC
ALTERNATIVES = 3
FINISHED_STATUSES = (AppointmentStatus.DONE, AppointmentStatus.NO_SHOW)
DEFAULT_SOURCE = "api"


class BookingError(Exception):
    """A booking request the agenda cannot carry out; `code` names the reason."""

    code = "booking_error"

    def __init__(self, message: str, *, field_name: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_name = field_name


class BookingRejected(BookingError):
    """The request names something that cannot be booked (unknown lead, no salesperson…)."""

    code = "invalid"


class SlotTaken(BookingError):
    """The slot is not free (taken meanwhile, blocked, off the grid, too soon or too late)."""

    code = "slot_taken"

    def __init__(self, message: str, *, alternatives: list[Slot]) -> None:
        super().__init__(message, field_name="start")
        self.alternatives = alternatives


class AppointmentStateError(BookingError):
    """The appointment's status does not allow this change (e.g. cancelling a done meeting)."""

    code = "invalid_state"


class AgendaUnavailable(BookingError):
    """Supabase is configured but did not answer: nothing was written."""

    code = "agenda_unavailable"


class AgendaError(BookingError):
    """Supabase answered with an error other than a conflict: nothing was written."""

    code = "agenda_error"


@dataclass(frozen=True)
class BookingResult:
    appointment: Appointment
    changed: bool  # False: an idempotent repeat, nothing new happened
    previous_start: datetime.datetime | None = None


class _Taken(Exception):
    """Raised inside the locked transaction to roll it back; turned into SlotTaken outside."""


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _supabase_updated_at(row: dict[str, Any]) -> datetime.datetime | None:
    value = row.get("updated_at")
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def _supabase_uuid(row: dict[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(row["id"])) if row.get("id") else None
    except ValueError:
        return None


def _agenda_call(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One Supabase write; unavailability and errors become BookingErrors (conflicts pass)."""
    try:
        return call()
    except agenda.SupabaseConflict:
        raise
    except agenda.SupabaseUnavailable as exc:
        logger.warning("supabase unavailable: %s", type(exc).__name__)
        raise AgendaUnavailable(
            _("The agenda (Supabase) is unavailable; nothing was booked. Try again shortly.")
        ) from exc
    except agenda.SupabaseError as exc:
        logger.warning("supabase error: %s", exc)
        raise AgendaError(
            _("The agenda (Supabase) refused the change; nothing was written.")
        ) from exc


def _supabase_row(
    *,
    lead: Lead,
    salesperson_id: int,
    start: datetime.datetime,
    end: datetime.datetime,
    status: str,
    source: str,
    title: str,
    notes: str,
    idempotency_key: str | None,
) -> dict[str, Any]:
    contact = lead.contact
    return {
        "vendedor_id": salesperson_id,
        "lead_id": lead.pk,
        "kommo_lead_id": lead.kommo_lead_id,
        "kommo_contact_id": contact.kommo_contact_id if contact is not None else None,
        "inicio": _iso(start),
        "fim": _iso(end),
        "status": status,
        "origem": source,
        "titulo": title,
        "observacoes": notes,
        "idempotency_key": idempotency_key,
    }


def _adopt_own_row(*, key: str) -> dict[str, Any] | None:
    """After a conflict: the row Supabase already has under our key (an earlier try of ours
    that the hub did not commit), else None (the conflict is another appointment)."""
    try:
        return agenda.appointment_find(idempotency_key=key)
    except agenda.SupabaseUnavailable as exc:
        raise AgendaUnavailable(
            _("The agenda (Supabase) is unavailable; nothing was booked. Try again shortly.")
        ) from exc
    except agenda.SupabaseError:
        return None


def _lock_salesperson(salesperson_id: int) -> None:
    """Serialize every change of this person's agenda (held until the transaction ends)."""
    Salesperson.objects.select_for_update().filter(pk=salesperson_id).first()


def _taken_error(
    *,
    salesperson_id: int,
    rules: SlotRules,
    start: datetime.datetime,
    now: datetime.datetime | None,
    exclude_appointment_id: int | None = None,
) -> SlotTaken:
    alternatives = slot_alternatives(
        salesperson_id=salesperson_id,
        rules=rules,
        around=start,
        count=ALTERNATIVES,
        # Never the asked slot itself (Supabase may know it is taken while the mirror does not).
        skip_start=start,
        now=now,
        exclude_appointment_id=exclude_appointment_id,
    )
    return SlotTaken(_("This slot is not available."), alternatives=alternatives)


def _by_key(key: str) -> Appointment | None:
    return Appointment.objects.filter(idempotency_key=key).first()


def appointment_book(
    *,
    lead_id: int,
    start: datetime.datetime,
    idempotency_key: str,
    salesperson_id: int | None = None,
    duration_minutes: int | None = None,
    title: str = "",
    notes: str = "",
    source: str = DEFAULT_SOURCE,
    now: datetime.datetime | None = None,
    then: Callable[[Appointment], None] | None = None,
) -> BookingResult:
    """Book `start` for the lead with `salesperson_id` (default: the lead's current salesperson).

    Raises BookingRejected, SlotTaken (with the nearest alternatives), AgendaUnavailable or
    AgendaError; on any of them nothing was written.
    """
    if timezone.is_naive(start):
        raise ValueError("start must be aware")
    start = start.astimezone(UTC)
    existing = _by_key(idempotency_key)
    if existing is not None:
        return _repeat(existing, lead_id=lead_id)
    lead = Lead.objects.select_related("contact").filter(pk=lead_id).first()
    if lead is None:
        raise BookingRejected(_("Unknown lead."), field_name="lead")
    if salesperson_id is None:
        assignment = lead_current_assignment(lead_id=lead.pk)
        if assignment is None or assignment.salesperson_id is None:
            raise BookingRejected(
                _("The lead has no salesperson yet: say which salesperson to book."),
                field_name="salesperson",
            )
        salesperson_id = assignment.salesperson_id
    person = Salesperson.objects.filter(pk=salesperson_id).first()
    if person is None:
        raise BookingRejected(_("Unknown salesperson."), field_name="salesperson")
    rules = SlotRules.for_area(
        booking_area(lead_id=lead.pk, salesperson_id=person.pk), duration_minutes=duration_minutes
    )
    end = start + rules.duration
    title = title or f"Reunião com {lead.name or lead.pk}"
    row = _supabase_row(
        lead=lead,
        salesperson_id=person.pk,
        start=start,
        end=end,
        status=AppointmentStatus.BOOKED,
        source=source,
        title=title,
        notes=notes,
        idempotency_key=idempotency_key,
    )
    try:
        with transaction.atomic():
            _lock_salesperson(person.pk)
            existing = _by_key(idempotency_key)
            if existing is not None:  # a parallel request with the same key won the lock
                return _repeat(existing, lead_id=lead_id)
            if not slot_is_free(salesperson_id=person.pk, rules=rules, start=start, now=now):
                raise _Taken
            answer: dict[str, Any] = {}
            if agenda.supabase_configured():
                try:
                    answer = _agenda_call(lambda: agenda.appointment_insert(row=row))
                except agenda.SupabaseConflict:
                    adopted = _adopt_own_row(key=idempotency_key)
                    if adopted is None or str(adopted.get("vendedor_id")) != str(person.pk):
                        raise _Taken from None
                    answer = adopted
            appointment = Appointment.objects.create(
                supabase_id=_supabase_uuid(answer),
                salesperson=person,
                lead=lead,
                kommo_lead_id=lead.kommo_lead_id,
                kommo_contact_id=row["kommo_contact_id"],
                starts_at=start,
                ends_at=end,
                status=AppointmentStatus.BOOKED,
                source=source[:32],
                title=title[:255],
                notes=notes,
                idempotency_key=idempotency_key,
                supabase_updated_at=_supabase_updated_at(answer),
            )
            if then is not None:
                then(appointment)
    except _Taken:
        raise _taken_error(salesperson_id=person.pk, rules=rules, start=start, now=now) from None
    except IntegrityError:
        # The same key booked for another salesperson at the same moment (the lock is per
        # person), or the Supabase sync mirrored our row first: the key's row is the answer.
        existing = _by_key(idempotency_key)
        if existing is None:
            raise
        return _repeat(existing, lead_id=lead_id)
    logger.info(
        "appointment booked",
        extra={"appointment_id": appointment.pk, "salesperson_id": person.pk},
    )
    return BookingResult(appointment=appointment, changed=True)


def _repeat(existing: Appointment, *, lead_id: int) -> BookingResult:
    if existing.lead_id is not None and existing.lead_id != lead_id:
        raise BookingRejected(
            _("This booking key was already used for another lead."),
            field_name="idempotency_key",
        )
    return BookingResult(appointment=existing, changed=False)


def _locked_appointment(appointment_id: int) -> Appointment:
    """The appointment, its salesperson's agenda locked first (same order as booking)."""
    current = Appointment.objects.filter(pk=appointment_id).values_list("salesperson_id").first()
    if current is None:
        raise Appointment.DoesNotExist(appointment_id)
    if current[0] is not None:
        _lock_salesperson(current[0])
    return (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("lead__contact", "salesperson")
        .get(pk=appointment_id)
    )


def appointment_reschedule(
    *,
    appointment_id: int,
    start: datetime.datetime,
    duration_minutes: int | None = None,
    now: datetime.datetime | None = None,
    then: Callable[[Appointment, datetime.datetime], None] | None = None,
) -> BookingResult:
    """Move an active appointment to `start` (its length unless `duration_minutes` is given).

    `then(appointment, previous_start)` runs inside the transaction. Raises
    Appointment.DoesNotExist, AppointmentStateError, SlotTaken, AgendaUnavailable, AgendaError.
    """
    if timezone.is_naive(start):
        raise ValueError("start must be aware")
    start = start.astimezone(UTC)
    taken_rules: SlotRules | None = None
    person_id: int | None = None
    try:
        with transaction.atomic():
            appointment = _locked_appointment(appointment_id)
            if appointment.status not in ACTIVE_STATUSES:
                raise AppointmentStateError(
                    _("Only a booked or confirmed appointment can be rescheduled.")
                )
            person_id = appointment.salesperson_id
            if person_id is None:
                raise AppointmentStateError(_("The appointment has no salesperson."))
            length = duration_minutes or max(
                int((appointment.ends_at - appointment.starts_at).total_seconds()) // 60, 1
            )
            if appointment.starts_at == start and appointment.ends_at == start + timedelta(
                minutes=length
            ):
                return BookingResult(appointment=appointment, changed=False)
            rules = SlotRules.for_area(
                booking_area(lead_id=appointment.lead_id, salesperson_id=person_id),
                duration_minutes=length,
            )
            end = start + rules.duration
            taken_rules = rules
            if not slot_is_free(
                salesperson_id=person_id,
                rules=rules,
                start=start,
                now=now,
                exclude_appointment_id=appointment.pk,
            ):
                raise _Taken
            answer: dict[str, Any] = {}
            if agenda.supabase_configured():
                answer = _reschedule_in_supabase(appointment, start=start, end=end)
            previous_start = appointment.starts_at
            appointment.starts_at = start
            appointment.ends_at = end
            if appointment.supabase_id is None:
                appointment.supabase_id = _supabase_uuid(answer)
            appointment.supabase_updated_at = (
                _supabase_updated_at(answer) or appointment.supabase_updated_at
            )
            appointment.save()
            if then is not None:
                then(appointment, previous_start)
    except _Taken:
        assert taken_rules is not None
        assert person_id is not None
        raise _taken_error(
            salesperson_id=person_id,
            rules=taken_rules,
            start=start,
            now=now,
            exclude_appointment_id=appointment_id,
        ) from None
    return BookingResult(appointment=appointment, changed=True, previous_start=previous_start)


def _reschedule_in_supabase(
    appointment: Appointment, *, start: datetime.datetime, end: datetime.datetime
) -> dict[str, Any]:
    try:
        if appointment.supabase_id is not None:
            supabase_id = str(appointment.supabase_id)
            values = {"inicio": _iso(start), "fim": _iso(end)}
            return _agenda_call(lambda: agenda.appointment_update(id=supabase_id, values=values))
        if appointment.lead is None or appointment.salesperson_id is None:
            return {}
        # Booked while Supabase was not configured: Supabase learns of it now.
        row = _supabase_row(
            lead=appointment.lead,
            salesperson_id=appointment.salesperson_id,
            start=start,
            end=end,
            status=appointment.status,
            source=appointment.source,
            title=appointment.title,
            notes=appointment.notes,
            idempotency_key=appointment.idempotency_key,
        )
        return _agenda_call(lambda: agenda.appointment_insert(row=row))
    except agenda.SupabaseConflict:
        raise _Taken from None


def appointment_cancel(
    *,
    appointment_id: int,
    reason: str = "",
    then: Callable[[Appointment], None] | None = None,
) -> BookingResult:
    """Cancel an active appointment; cancelling a cancelled one again changes nothing."""
    return _status_set(
        appointment_id=appointment_id,
        status=AppointmentStatus.CANCELLED,
        allowed_from=ACTIVE_STATUSES,
        refusal=_("A finished appointment (done or no-show) cannot be cancelled."),
        then=then,
    )


def appointment_mark(
    *,
    appointment_id: int,
    status: str,
    now: datetime.datetime | None = None,
    then: Callable[[Appointment], None] | None = None,
) -> BookingResult:
    """Mark a meeting that has started as done or no-show (either may correct the other)."""
    if status not in FINISHED_STATUSES:
        raise ValueError(f"cannot mark an appointment {status!r}")
    return _status_set(
        appointment_id=appointment_id,
        status=status,
        allowed_from=(*ACTIVE_STATUSES, *FINISHED_STATUSES),
        refusal=_("A cancelled appointment cannot be marked done or no-show."),
        not_before_start=now or timezone.now(),
        then=then,
    )


def _status_set(
    *,
    appointment_id: int,
    status: str,
    allowed_from: tuple[str, ...],
    refusal: str,
    then: Callable[[Appointment], None] | None,
    not_before_start: datetime.datetime | None = None,
) -> BookingResult:
    with transaction.atomic():
        appointment = _locked_appointment(appointment_id)
        if appointment.status == status:
            return BookingResult(appointment=appointment, changed=False)
        if appointment.status not in allowed_from:
            raise AppointmentStateError(refusal)
        if not_before_start is not None and appointment.starts_at > not_before_start:
            raise AppointmentStateError(_("The meeting has not started yet."))
        answer: dict[str, Any] = {}
        if agenda.supabase_configured() and appointment.supabase_id is not None:
            supabase_id = str(appointment.supabase_id)
            try:
                answer = _agenda_call(
                    lambda: agenda.appointment_update(id=supabase_id, values={"status": status})
                )
            except agenda.SupabaseConflict as exc:
                raise AgendaError(
                    _("The agenda (Supabase) refused the change; nothing was written.")
                ) from exc
        appointment.status = status
        appointment.supabase_updated_at = (
            _supabase_updated_at(answer) or appointment.supabase_updated_at
        )
        appointment.save()
        if then is not None:
            then(appointment)
    return BookingResult(appointment=appointment, changed=True)
