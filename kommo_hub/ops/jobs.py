"""Periodic jobs. Each is idempotent; the scheduler lets one process run each per tick."""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.tasks import task_backends
from django.utils import timezone

from kommo_hub.leasing import due_filter
from kommo_hub.models import (
    ActionStatus,
    ActionTarget,
    EventStatus,
    InboundEvent,
    OutboundAction,
    SchedulerRun,
    WorkerHeartbeat,
)
from kommo_hub.outbox.delivery import hold_reason
from kommo_hub.outbox.kommo_ops import LEAD_NOT_IN_KOMMO
from kommo_hub.outbox.services import actions_requeue
from scheduling.sync import supabase_sync_all

logger = logging.getLogger("kommo_hub.jobs")

SWEEP_BATCH = 500
# A new event's own task is normally queued with it; sweep it only when it is clearly stranded
# (e.g. the queue lost it), so a backlog does not fill the queue with duplicate tasks.
STRANDED_AFTER = timedelta(minutes=5)


def _sweep(
    model: type[InboundEvent] | type[OutboundAction],
    *,
    new: str,
    failed: str,
    working: str,
    task: Any,
    new_when_due: bool = False,
) -> int:
    """Re-enqueue rows that are due: retries, expired leases, and stranded new rows.

    `new_when_due`: also new rows whose `next_attempt_at` has come (a reply waiting out its
    burst), for a task queue that cannot run a task later by itself.
    """
    now = timezone.now()
    due = due_filter(waiting=[failed], working=working, now=now) | Q(
        status=new, created_at__lt=now - STRANDED_AFTER
    )
    if new_when_due:
        due |= Q(status=new, next_attempt_at__lte=now)
    ids = list(model.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH])
    for pk in ids:
        task.enqueue(pk)
    return len(ids)


def sweep_events() -> int:
    from kommo_hub.tasks import process_inbound_event

    return _sweep(
        InboundEvent,
        new=EventStatus.RECEIVED,
        failed=EventStatus.FAILED,
        working=EventStatus.PROCESSING,
        task=process_inbound_event,
    )


def sweep_actions() -> int:
    from kommo_hub.tasks import deliver_outbound_action

    return _sweep(
        OutboundAction,
        new=ActionStatus.PENDING,
        failed=ActionStatus.FAILED,
        working=ActionStatus.DELIVERING,
        task=deliver_outbound_action,
        # The database queue runs a deferred reply at its time (run_after); others need the sweep.
        new_when_due=not task_backends["default"].supports_defer,
    )


def release_held_actions() -> int:
    """Held actions go out as soon as their target is configured (and Kommo is not stopped).

    Not those that would only be held again: waiting for an action that is not done, or for
    their lead to get its Kommo id (its lead_create releases them).
    """
    released = 0
    for target in ActionTarget.values:
        if hold_reason(target):
            continue
        held = (
            OutboundAction.objects.filter(target=target, status=ActionStatus.HELD)
            .filter(Q(depends_on__isnull=True) | Q(depends_on__status=ActionStatus.DONE))
            .exclude(held_reason=LEAD_NOT_IN_KOMMO, lead__kommo_lead_id__isnull=True)
        )
        released += actions_requeue(actions=held, reset_attempts=False)
    return released


def prune_bookkeeping() -> int:
    """Old scheduler ticks, finished task results and vanished workers."""
    from django_tasks_db.models import DBTaskResult

    now = timezone.now()
    removed = SchedulerRun.objects.filter(ran_at__lt=now - timedelta(days=1)).delete()[0]
    removed += DBTaskResult.objects.filter(
        status__in=["SUCCESSFUL", "FAILED"], finished_at__lt=now - timedelta(days=7)
    ).delete()[0]
    removed += WorkerHeartbeat.objects.filter(last_seen__lt=now - timedelta(days=1)).delete()[0]
    return removed


def routing() -> int:
    """Waiting leads go to whoever became available; missed reply SLAs are reassigned."""
    from kommo_hub.flows.leads import routing_tick

    return routing_tick()


def bot_pauses() -> int:
    """Pauses that are over (their end time, or the area's hours of human silence) end, and
    Kommo is told."""
    from kommo_hub.flows.bot import bot_tick

    return bot_tick()


def reminders() -> int:
    """Due appointment reminders become n8n `reminder` actions; each reminder takes its action's
    outcome (sent / failed), and reminders no longer needed stop their unsent action."""
    from kommo_hub.flows.reminders import reminders_send_due

    return reminders_send_due()


def lgpd_retention() -> int:
    """LGPD: leads idle for LGPD_RETENTION_DAYS are anonymized; old raw requests tied to no lead
    are cleared."""
    from privacy.services import retention_run

    report = retention_run(now=timezone.now(), days=settings.LGPD_RETENTION_DAYS)
    return sum(1 for erased in report.leads if erased.changed) + report.requests_cleared


# name → (every N seconds, job)
JOBS = {
    "sweep_events": (5, sweep_events),
    "sweep_actions": (5, sweep_actions),
    "release_held_actions": (30, release_held_actions),
    "routing": (60, routing),
    "bot_pauses": (30, bot_pauses),
    "supabase_sync": (60, supabase_sync_all),
    "reminders": (60, reminders),
    "prune_bookkeeping": (3600, prune_bookkeeping),
    "lgpd_retention": (86400, lgpd_retention),
}
