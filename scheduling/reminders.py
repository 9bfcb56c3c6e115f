"""Reminders before each appointment: which ones exist, when they are due, and what became of them.

Domain only (Reminder rows): the coordinator, kommo_hub/flows/reminders.py, turns a due reminder
into an n8n `reminder` action and reports back what became of that action.

One Reminder per (appointment, offset, start): REMINDER_OFFSETS_MINUTES (default 1440 and 60)
before the appointment's start. A moved appointment gets new rows for its new start (the old
start's unsent ones are cancelled), so each (appointment, offset, start) is reminded at most once.

States (the admin shows each on its appointment, with its n8n action and what n8n reported):

    scheduled, no action   waiting for its due time
    scheduled, action      queued: its n8n action is on its way (pending / held / retrying)
    sent                   its n8n action was delivered (n8n answered 2xx)
    failed                 with why: the action is dead or was not sent, n8n reported a failure,
                           "missed: the appointment already started" (its time passed while the
                           hub was down, or the action could not go out before the start), a
                           later reminder went out instead, or there is no lead to remind
    cancelled              with why: the appointment was cancelled / done / no-show / moved
                           before it was due, or "booked too late for this reminder"

Reasons are stored in English (like every operational record) and shown translated when they are
one of the fixed texts below.

`reminders_plan(appointment=…)` is called whenever an appointment is created or changed (booking,
Supabase sync, admin marks); the job also plans any active future appointment that has no
reminder for its current start (`reminders_plan_missing`), so a path that forgets to call it
delays nothing. `reminders_claim_due(now=…, send=…)` is the periodic job's half: it
claims due reminders (SELECT … FOR UPDATE SKIP LOCKED where the database has it, so several
schedulers never take the same row; the action's idempotency key is the second guard) and either
hands each to `send` or settles it.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext_noop

from scheduling.models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    Reminder,
    ReminderStatus,
)

logger = logging.getLogger("scheduling.reminders")

CLAIM_BATCH = 100

BOOKED_TOO_LATE = gettext_noop("booked too late for this reminder")
MOVED = gettext_noop("the appointment was moved")
OFFSET_DROPPED = gettext_noop("this offset is no longer configured")
MISSED = gettext_noop("missed: the appointment already started")
NO_LEAD = gettext_noop("no lead to remind: the appointment has no lead in the hub")
QUEUED = gettext_noop("queued for n8n")
DELIVERED = gettext_noop("delivered to n8n")
BECAUSE: dict[str, str] = {
    AppointmentStatus.CANCELLED: gettext_noop("the appointment was cancelled"),
    AppointmentStatus.DONE: gettext_noop("the appointment is done"),
    AppointmentStatus.NO_SHOW: gettext_noop("the appointment was marked no-show"),
}
FIXED_REASONS = frozenset(
    {BOOKED_TOO_LATE, MOVED, OFFSET_DROPPED, MISSED, NO_LEAD, QUEUED, DELIVERED, *BECAUSE.values()}
)


def superseded(offset_minutes: int) -> str:
    return f"missed: the {offset_minutes}-minute reminder went out instead"


@dataclass(frozen=True)
class PlanResult:
    scheduled: int  # rows made (or made again) scheduled
    cancelled: int  # rows cancelled


def reminder_offsets() -> list[int]:
    """The configured offsets in minutes, largest (earliest reminder) first, no repeats."""
    return sorted({int(m) for m in settings.REMINDER_OFFSETS_MINUTES if int(m) > 0}, reverse=True)


def stop_reason(appointment: Appointment) -> str:
    """Why this appointment's unsent reminders must not go out ("" when they may)."""
    if appointment.status not in ACTIVE_STATUSES:
        return BECAUSE.get(appointment.status, BECAUSE[AppointmentStatus.CANCELLED])
    return ""


def reminders_plan(*, appointment: Appointment, now: datetime | None = None) -> PlanResult:
    """Make this appointment's reminders match its start and status. Idempotent.

    - Cancelled, done or no-show: the reminders still waiting are cancelled.
    - Active: one reminder per configured offset for the current start; the ones waiting for an
      older start are cancelled ("moved"). A reminder whose time had already passed when the
      appointment got this start (Supabase's `updated_at`, else now) is cancelled "booked too
      late"; one that became due while the hub was not looking stays scheduled and goes out at
      the next run if the meeting has not started.
    - A reminder already handed to n8n is left alone here: the periodic job stops its action if it
      has not gone out yet (kommo_hub/flows/reminders.py).
    """
    now = now or timezone.now()
    waiting = Reminder.objects.filter(
        appointment=appointment, status=ReminderStatus.SCHEDULED, action__isnull=True
    )
    reason = stop_reason(appointment)
    with transaction.atomic():
        if reason:
            cancelled = waiting.update(status=ReminderStatus.CANCELLED, detail=reason)
            return PlanResult(scheduled=0, cancelled=cancelled)
        start = appointment.starts_at
        offsets = reminder_offsets()
        cancelled = waiting.exclude(appointment_starts_at=start).update(
            status=ReminderStatus.CANCELLED, detail=MOVED
        )
        cancelled += (
            waiting.filter(appointment_starts_at=start)
            .exclude(offset_minutes__in=offsets)
            .update(status=ReminderStatus.CANCELLED, detail=OFFSET_DROPPED)
        )
        booked_at = min(appointment.supabase_updated_at or now, now)
        scheduled = 0
        for offset in offsets:
            due = start - timedelta(minutes=offset)
            in_time = due > booked_at
            reminder, created = Reminder.objects.get_or_create(
                appointment=appointment,
                offset_minutes=offset,
                appointment_starts_at=start,
                defaults={
                    "due_at": due,
                    "status": ReminderStatus.SCHEDULED if in_time else ReminderStatus.CANCELLED,
                    "detail": "" if in_time else BOOKED_TOO_LATE,
                },
            )
            if created:
                scheduled += in_time
                cancelled += not in_time
            elif in_time and reminder.status == ReminderStatus.CANCELLED:
                # Back to this start, or no longer cancelled: it may go out after all.
                scheduled += Reminder.objects.filter(
                    pk=reminder.pk, status=ReminderStatus.CANCELLED, action__isnull=True
                ).update(status=ReminderStatus.SCHEDULED, detail="", due_at=due)
    return PlanResult(scheduled=scheduled, cancelled=cancelled)


def reminders_plan_missing(*, now: datetime | None = None, limit: int = 500) -> int:
    """Plan the reminders of active future appointments that have none for their current start
    (booked or moved by a path that did not call `reminders_plan`): a safety net, so that no
    appointment goes unreminded. Returns how many appointments were planned."""
    now = now or timezone.now()
    if not reminder_offsets():
        return 0
    planned = Reminder.objects.filter(
        appointment_id=OuterRef("pk"), appointment_starts_at=OuterRef("starts_at")
    )
    missing = (
        Appointment.objects.filter(status__in=ACTIVE_STATUSES, starts_at__gt=now)
        .exclude(Exists(planned))
        .order_by("starts_at", "pk")[:limit]
    )
    count = 0
    for appointment in missing:
        reminders_plan(appointment=appointment, now=now)
        count += 1
    return count


# --- the periodic job's half -------------------------------------------------------------------


def reminder_settle(reminder: Reminder, *, status: str, detail: str) -> None:
    """Record what became of a reminder."""
    reminder.status = status
    reminder.detail = detail[:255]
    reminder.save(update_fields=["status", "detail", "updated_at"])


def _superseded_by(reminder: Reminder, now: datetime) -> int | None:
    """A shorter offset of the same start that is due too (the hub was away): only it goes out."""
    later = (
        Reminder.objects.filter(
            appointment_id=reminder.appointment_id,
            appointment_starts_at=reminder.appointment_starts_at,
            offset_minutes__lt=reminder.offset_minutes,
            due_at__lte=now,
            status__in=[ReminderStatus.SCHEDULED, ReminderStatus.SENT],
        )
        .order_by("offset_minutes")
        .values_list("offset_minutes", flat=True)
        .first()
    )
    return later


def reminders_claim_due(
    *, now: datetime, send: Callable[[Reminder], int], limit: int = CLAIM_BATCH
) -> int:
    """Take every reminder that is due and not yet handed over, and settle it or `send` it.

    `send(reminder)` records the n8n action (in this transaction) and returns its id. Returns
    how many reminders were handed to `send`. A reminder whose `send` raised stays scheduled
    and is tried again at the next run.
    """
    handed = 0
    failed_ids: list[int] = []
    while True:
        with transaction.atomic():
            due = (
                Reminder.objects.filter(
                    status=ReminderStatus.SCHEDULED, action__isnull=True, due_at__lte=now
                )
                .exclude(pk__in=failed_ids)
                .order_by("due_at", "pk")
            )
            features = connection.features
            if features.has_select_for_update_skip_locked and features.has_select_for_update_of:
                due = due.select_for_update(skip_locked=True, of=("self",))
            batch = list(due.select_related("appointment")[:limit])
            for reminder in batch:
                try:
                    with transaction.atomic():
                        handed += _claimed(reminder, now=now, send=send)
                except Exception:  # one bad reminder must not hold back the others
                    logger.exception(
                        "queuing a reminder failed", extra={"reminder_id": reminder.pk}
                    )
                    failed_ids.append(reminder.pk)
        if len(batch) < limit:
            return handed


def _claimed(reminder: Reminder, *, now: datetime, send: Callable[[Reminder], int]) -> int:
    appointment = reminder.appointment
    reason = stop_reason(appointment)
    if reason:
        reminder_settle(reminder, status=ReminderStatus.CANCELLED, detail=reason)
        return 0
    if appointment.starts_at != reminder.appointment_starts_at:
        reminder_settle(reminder, status=ReminderStatus.CANCELLED, detail=MOVED)
        return 0
    if appointment.starts_at <= now:
        reminder_settle(reminder, status=ReminderStatus.FAILED, detail=MISSED)
        return 0
    later = _superseded_by(reminder, now)
    if later is not None:
        reminder_settle(reminder, status=ReminderStatus.FAILED, detail=superseded(later))
        return 0
    if appointment.lead_id is None:
        reminder_settle(reminder, status=ReminderStatus.FAILED, detail=NO_LEAD)
        return 0
    action_id = send(reminder)
    reminder.action_id = action_id
    reminder.detail = QUEUED
    reminder.save(update_fields=["action", "detail", "updated_at"])
    return 1
