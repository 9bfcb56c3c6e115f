"""Periodic jobs. Each is idempotent; the scheduler lets one process run each per tick."""

import logging
from datetime import timedelta
from typing import Any

from django.db.models import Q
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
) -> int:
    """Re-enqueue rows that are due: retries, expired leases, and stranded new rows."""
    now = timezone.now()
    due = due_filter(waiting=[failed], working=working, now=now) | Q(
        status=new, created_at__lt=now - STRANDED_AFTER
    )
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


# name → (every N seconds, job)
JOBS = {
    "sweep_events": (5, sweep_events),
    "sweep_actions": (5, sweep_actions),
    "release_held_actions": (30, release_held_actions),
    "routing": (60, routing),
    "prune_bookkeeping": (3600, prune_bookkeeping),
}
