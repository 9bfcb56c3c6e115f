"""Periodic jobs. Each is idempotent; the scheduler lets one process run each per tick."""

import logging
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from kommo_hub.intake.processing import WAITING as EVENT_WAITING
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
from kommo_hub.outbox.delivery import WAITING as ACTION_WAITING
from kommo_hub.outbox.delivery import hold_reason
from kommo_hub.outbox.services import actions_requeue

logger = logging.getLogger("kommo_hub.jobs")

SWEEP_BATCH = 500
# A new event's own task is normally queued with it; sweep it only when it is clearly stranded
# (e.g. the queue lost it), so a backlog does not fill the queue with duplicate tasks.
STRANDED_AFTER = timedelta(minutes=5)


def sweep_events() -> int:
    """Re-enqueue events that are due: retries, expired leases, and stranded new events."""
    from kommo_hub.tasks import process_inbound_event

    now = timezone.now()
    due = due_filter(waiting=[EventStatus.FAILED], working=EventStatus.PROCESSING, now=now) | Q(
        status=EventStatus.RECEIVED, created_at__lt=now - STRANDED_AFTER
    )
    ids = list(
        InboundEvent.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in ids:
        process_inbound_event.enqueue(pk)
    return len(ids)


def sweep_actions() -> int:
    from kommo_hub.tasks import deliver_outbound_action

    now = timezone.now()
    due = due_filter(waiting=[ActionStatus.FAILED], working=ActionStatus.DELIVERING, now=now) | Q(
        status=ActionStatus.PENDING, created_at__lt=now - STRANDED_AFTER
    )
    ids = list(
        OutboundAction.objects.filter(due).order_by("pk").values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for pk in ids:
        deliver_outbound_action.enqueue(pk)
    return len(ids)


def release_held_actions() -> int:
    """Held actions go out as soon as their target is configured (and Kommo is not stopped)."""
    released = 0
    for target in ActionTarget.values:
        if hold_reason(target):
            continue
        released += actions_requeue(
            actions=OutboundAction.objects.filter(target=target, status=ActionStatus.HELD),
            reset_attempts=False,
        )
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


# name → (every N seconds, job)
JOBS = {
    "sweep_events": (5, sweep_events),
    "sweep_actions": (5, sweep_actions),
    "release_held_actions": (30, release_held_actions),
    "prune_bookkeeping": (3600, prune_bookkeeping),
}

__all__ = ["ACTION_WAITING", "EVENT_WAITING", "JOBS"]
