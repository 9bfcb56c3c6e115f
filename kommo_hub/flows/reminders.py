"""Flow 3 reminders: due reminders become n8n `reminder` actions; their fate comes back to them.

scheduling/reminders.py decides which reminders exist and which are due; this module is the
periodic job (`reminders_send_due`, every 60 s, one winner per tick):

0. Active future appointments without reminders for their current start get them planned (a
   safety net for a path that did not call scheduling.reminders.reminders_plan).
1. Every due reminder is claimed (FOR UPDATE SKIP LOCKED) and becomes one n8n `reminder` action,
   idempotency key `n8n:reminder:<appointment id>:<offset>:<start ISO>`: even two jobs running at
   once (two schedulers with skewed clocks) record one action per reminder, and n8n gets it once.
2. Each reminder handed over is brought up to date from its action (the Reminder row is the state
   the admin lists and filters; the admin also shows the action's live status next to it):
   delivered → sent; dead or skipped → failed with the action's error; n8n's callback reporting
   a failure → failed with n8n's error. An action that has not gone out yet is stopped (marked
   skipped, never sent) when its appointment was cancelled, closed or moved (reminder cancelled),
   or has started (reminder failed, "missed").

The envelope (ARCHITECTURE §4.2): `lead`, `area`, `salesperson` (the appointment's),
`appointment` {id, supabase_id, start, end, status, title}, `reminder` {offset_minutes}; the
`conversation` block is added at each attempt by the outbox when the lead has a chat. A reminder
does not wait for the lead's Kommo creation: the WhatsApp reminder matters more than the note.
"""

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from kommo_hub.flows.leads import area_block, salesperson_block
from kommo_hub.models import ActionStatus, ActionTarget, Lead, OutboundAction
from kommo_hub.outbox.envelope import envelope_build, iso
from kommo_hub.outbox.services import action_enqueue
from routing.models import Area, AreaMembership, Assignment
from routing.selectors import area_default
from scheduling.models import Appointment, Reminder, ReminderStatus
from scheduling.reminders import (
    DELIVERED,
    MISSED,
    MOVED,
    reminder_settle,
    reminders_claim_due,
    reminders_plan_missing,
    stop_reason,
)

logger = logging.getLogger("kommo_hub.reminders")

REMINDER = "reminder"
# An action that has not been sent (yet): it can still be stopped.
UNSENT = [ActionStatus.PENDING, ActionStatus.HELD, ActionStatus.FAILED]


def reminder_key(*, appointment_id: int, offset_minutes: int, starts_at: datetime) -> str:
    return f"n8n:{REMINDER}:{appointment_id}:{offset_minutes}:{iso(starts_at)}"


def appointment_block(appointment: Appointment) -> dict[str, Any]:
    return {
        "id": appointment.pk,
        "supabase_id": str(appointment.supabase_id) if appointment.supabase_id else None,
        "start": iso(appointment.starts_at),
        "end": iso(appointment.ends_at),
        "status": appointment.status,
        "title": appointment.title,
    }


def appointment_area(appointment: Appointment) -> Area | None:
    """The lead's current area; else the salesperson's first area; else the default area."""
    if appointment.lead_id is not None:
        current = (
            Assignment.objects.select_related("area")
            .filter(lead_id=appointment.lead_id, is_current=True, area__isnull=False)
            .first()
        )
        if current is not None:
            return current.area
    if appointment.salesperson_id is not None:
        membership = (
            AreaMembership.objects.select_related("area")
            .filter(salesperson_id=appointment.salesperson_id, active=True, area__active=True)
            .order_by("priority", "pk")
            .first()
        )
        if membership is not None:
            return membership.area
    return area_default()


def reminder_enqueue(reminder: Reminder) -> int:
    """The n8n `reminder` action for this reminder (once per key); returns its id."""
    appointment = (
        Appointment.objects.select_related("salesperson").filter(pk=reminder.appointment_id).get()
    )
    if appointment.lead_id is None:  # reminders_claim_due settles these before
        raise ValueError(f"appointment #{appointment.pk} has no lead to remind")
    lead = Lead.objects.select_related("contact").get(pk=appointment.lead_id)
    key = reminder_key(
        appointment_id=appointment.pk,
        offset_minutes=reminder.offset_minutes,
        starts_at=reminder.appointment_starts_at,
    )
    action, _created = action_enqueue(
        target=ActionTarget.N8N,
        action=REMINDER,
        idempotency_key=key,
        payload=envelope_build(
            action=REMINDER,
            idempotency_key=key,
            lead=lead,
            area=area_block(appointment_area(appointment)),
            salesperson=salesperson_block(appointment.salesperson),
            appointment=appointment_block(appointment),
            reminder={"offset_minutes": reminder.offset_minutes},
        ),
        lead=lead,
    )
    return action.pk


def reminders_send_due(*, now: datetime | None = None) -> int:
    """The periodic job: queue due reminders, then bring handed-over ones up to date.

    Returns how many appointments were planned plus how many reminders were queued or changed
    state (0 when there was nothing to do).
    """
    now = now or timezone.now()
    planned = reminders_plan_missing(now=now)
    queued = reminders_claim_due(now=now, send=reminder_enqueue)
    return planned + queued + reminders_follow_actions(now=now)


def reminders_follow_actions(*, now: datetime | None = None) -> int:
    """Reminders handed to n8n take their action's outcome; unsent actions of reminders that must
    not go out any more are stopped. Returns how many reminders changed state."""
    now = now or timezone.now()
    changed = 0
    queued = Reminder.objects.filter(
        status=ReminderStatus.SCHEDULED, action__isnull=False
    ).select_related("appointment", "action")
    for reminder in queued.order_by("pk").iterator(chunk_size=200):
        changed += _follow(reminder, now=now)
    reported_failed = Reminder.objects.filter(
        status=ReminderStatus.SENT, action__callback_status="failed"
    ).select_related("action")
    for reminder in reported_failed.order_by("pk"):
        action = reminder.action
        assert action is not None
        error = str(action.result.get("error") or "") or "no details"
        reminder_settle(
            reminder, status=ReminderStatus.FAILED, detail=f"n8n reported a failure: {error}"
        )
        changed += 1
    return changed


def _follow(reminder: Reminder, *, now: datetime) -> int:
    action = reminder.action
    assert action is not None
    if action.status == ActionStatus.DONE:
        if action.callback_status == "failed":
            error = str(action.result.get("error") or "") or "no details"
            detail = f"n8n reported a failure: {error}"
            reminder_settle(reminder, status=ReminderStatus.FAILED, detail=detail)
        else:
            reminder_settle(reminder, status=ReminderStatus.SENT, detail=DELIVERED)
        return 1
    if action.status == ActionStatus.DEAD:
        error = action.last_error or action.last_response or "no details"
        code = f"HTTP {action.last_status_code}: " if action.last_status_code else ""
        detail = f"n8n action #{action.pk} is dead: {code}{error}"
        reminder_settle(reminder, status=ReminderStatus.FAILED, detail=detail)
        return 1
    if action.status == ActionStatus.SKIPPED:
        detail = f"n8n action #{action.pk} was not sent: {action.held_reason or 'skipped'}"
        reminder_settle(reminder, status=ReminderStatus.FAILED, detail=detail)
        return 1
    if action.status not in UNSENT:
        return 0  # being delivered right now: the next run sees how it went
    appointment = reminder.appointment
    reason = stop_reason(appointment)
    if not reason and appointment.starts_at != reminder.appointment_starts_at:
        reason = MOVED
    if reason:
        status = ReminderStatus.CANCELLED
    elif appointment.starts_at <= now:
        status, reason = ReminderStatus.FAILED, MISSED
    else:
        return 0
    with transaction.atomic():
        stopped = OutboundAction.objects.filter(pk=action.pk, status__in=UNSENT).update(
            status=ActionStatus.SKIPPED, held_reason=f"reminder not needed: {reason}"[:200]
        )
        if not stopped:
            return 0  # it was claimed for delivery in between: the next run sees how it went
        reminder_settle(reminder, status=status, detail=reason)
    logger.info(
        "reminder action stopped", extra={"reminder_id": reminder.pk, "action_id": action.pk}
    )
    return 1
