"""The scheduler (one run per job and tick) and its jobs: sweeps and pruning."""

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import respx
import time_machine
from django.db import connection
from django_tasks_db.models import DBTaskResult

from kommo_hub.models import (
    EventStatus,
    InboundEvent,
    OutboundAction,
    SchedulerRun,
    WorkerHeartbeat,
)
from kommo_hub.ops.jobs import JOBS, STRANDED_AFTER, prune_bookkeeping, sweep_actions, sweep_events
from kommo_hub.ops.scheduler import scheduler_tick
from tests.factories import InboundEventFactory, OutboundActionFactory
from tests.outbox.support import N8N_URL

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
TICK_NOW = 86400.0 * 20_420  # a multiple of every job's period: all are due
ALL_JOBS = {
    "sweep_events",
    "sweep_actions",
    "release_held_actions",
    "routing",
    "bot_pauses",
    "supabase_sync",
    "reminders",
    "prune_bookkeeping",
    "lgpd_retention",
}


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


def seconds_ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_a_tick_runs_every_job_once_and_the_same_tick_again_runs_nothing() -> None:
    first = scheduler_tick(now=TICK_NOW, runner="host-a")
    second = scheduler_tick(now=TICK_NOW, runner="host-b")

    assert first == {name: 0 for name in ALL_JOBS}
    assert second == {}
    assert set(SchedulerRun.objects.values_list("job", "tick", "ran_by")) == {
        ("sweep_events", int(TICK_NOW // 5), "host-a"),
        ("sweep_actions", int(TICK_NOW // 5), "host-a"),
        ("release_held_actions", int(TICK_NOW // 30), "host-a"),
        ("routing", int(TICK_NOW // 60), "host-a"),
        ("bot_pauses", int(TICK_NOW // 30), "host-a"),
        ("supabase_sync", int(TICK_NOW // 60), "host-a"),
        ("reminders", int(TICK_NOW // 60), "host-a"),
        ("prune_bookkeeping", int(TICK_NOW // 3600), "host-a"),
        ("lgpd_retention", int(TICK_NOW // 86400), "host-a"),
    }


def test_later_ticks_run_only_the_jobs_whose_period_has_come_round() -> None:
    scheduler_tick(now=TICK_NOW)

    assert set(scheduler_tick(now=TICK_NOW + 4.9)) == set()
    assert set(scheduler_tick(now=TICK_NOW + 5)) == {"sweep_events", "sweep_actions"}
    assert set(scheduler_tick(now=TICK_NOW + 30)) == {
        "sweep_events",
        "sweep_actions",
        "release_held_actions",
        "bot_pauses",
    }
    assert set(scheduler_tick(now=TICK_NOW + 3600)) == ALL_JOBS - {"lgpd_retention"}
    assert set(scheduler_tick(now=TICK_NOW + 86400)) == ALL_JOBS


@pytest.mark.django_db(transaction=True)
def test_schedulers_ticking_at_once_on_several_threads_run_each_job_exactly_once() -> None:
    start = threading.Barrier(4)
    runs: list[str] = []

    def scheduler(name: str) -> None:
        try:
            start.wait()
            runs.extend(scheduler_tick(now=TICK_NOW, runner=name))
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler, args=(f"s{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(runs) == sorted(ALL_JOBS)
    assert SchedulerRun.objects.count() == len(ALL_JOBS)


def test_a_failing_job_does_not_stop_the_others_and_is_not_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken() -> int:
        raise RuntimeError("job bug")

    monkeypatch.setitem(JOBS, "broken", (5, broken))
    monkeypatch.setitem(JOBS, "after_broken", (5, lambda: 7))

    ran = scheduler_tick(now=TICK_NOW)

    assert "broken" not in ran
    assert ran["after_broken"] == 7
    assert set(ran) == {*ALL_JOBS, "after_broken"}


@pytest.mark.usefixtures("frozen")
def test_sweep_events_reenqueues_due_failures_and_expired_leases_and_nothing_else() -> None:
    def event(status: str, **fields: Any) -> InboundEvent:
        return InboundEventFactory(event_type="test.no_handler", status=status, **fields)

    failed_due = event("failed", attempts=1, next_attempt_at=seconds_ago(1))
    lease_expired = event("processing", attempts=1, locked_until=seconds_ago(1))
    stranded = event("received")
    InboundEvent.objects.filter(pk=stranded.pk).update(
        created_at=seconds_ago(STRANDED_AFTER.total_seconds() + 1)
    )
    untouched = [
        event("failed", attempts=1, next_attempt_at=NOW + timedelta(seconds=30)),
        event("processing", attempts=1, locked_until=NOW + timedelta(seconds=30)),
        event("received"),  # its own task is on its way
        event("processed", attempts=1, processed_at=seconds_ago(100)),
        event("ignored", attempts=1),
        event("dead", attempts=8),
    ]
    before = {e.pk: (e.status, e.attempts) for e in untouched}

    assert sweep_events() == 3

    for swept in (failed_due, lease_expired, stranded):
        swept.refresh_from_db()
        assert swept.status == EventStatus.IGNORED
        assert swept.result == "no handler for this event type"
        assert swept.processed_at == NOW
    assert (failed_due.attempts, lease_expired.attempts, stranded.attempts) == (2, 2, 1)
    after = {
        pk: (status, attempts)
        for pk, status, attempts in InboundEvent.objects.filter(
            pk__in=[e.pk for e in untouched]
        ).values_list("pk", "status", "attempts")
    }
    assert after == before
    assert InboundEvent.objects.get(status="processed").processed_at == seconds_ago(100)
    assert sweep_events() == 0


@pytest.mark.usefixtures("frozen", "n8n_on")
def test_sweep_actions_redelivers_due_failures_and_expired_leases_and_nothing_else(
    http_mock: respx.MockRouter,
) -> None:
    n8n = http_mock.post(N8N_URL).respond(200)

    def action(key: str, status: str, **fields: Any) -> OutboundAction:
        return OutboundActionFactory(idempotency_key=key, status=status, **fields)

    action("failed-due", "failed", attempts=1, next_attempt_at=seconds_ago(1))
    action("lease-expired", "delivering", attempts=1, locked_until=seconds_ago(1))
    stranded = action("stranded", "pending")
    OutboundAction.objects.filter(pk=stranded.pk).update(
        created_at=seconds_ago(STRANDED_AFTER.total_seconds() + 1)
    )
    action("not-due", "failed", attempts=1, next_attempt_at=NOW + timedelta(seconds=30))
    action("lease-live", "delivering", attempts=1, locked_until=NOW + timedelta(seconds=30))
    action("fresh", "pending")
    action("done", "done", attempts=1)
    action("dead", "dead", attempts=10)
    action("held", "held", held_reason="n8n not configured")

    assert sweep_actions() == 3

    sent = sorted(json.loads(call.request.content)["idempotency_key"] for call in n8n.calls)
    assert sent == ["failed-due", "lease-expired", "stranded"]
    assert dict(OutboundAction.objects.values_list("idempotency_key", "status")) == {
        "failed-due": "done",
        "lease-expired": "done",
        "stranded": "done",
        "not-due": "failed",
        "lease-live": "delivering",
        "fresh": "pending",
        "done": "done",
        "dead": "dead",
        "held": "held",
    }
    assert sweep_actions() == 0
    assert n8n.call_count == 3


@pytest.mark.usefixtures("frozen")
def test_prune_bookkeeping_deletes_old_ticks_finished_task_results_and_vanished_workers() -> None:
    old_tick = SchedulerRun.objects.create(job="sweep_events", tick=1)
    recent_tick = SchedulerRun.objects.create(job="sweep_events", tick=2)
    SchedulerRun.objects.filter(pk=old_tick.pk).update(ran_at=NOW - timedelta(days=1, seconds=1))
    SchedulerRun.objects.filter(pk=recent_tick.pk).update(ran_at=NOW - timedelta(hours=23))
    WorkerHeartbeat.objects.create(worker_id="gone", last_seen=NOW - timedelta(days=2))
    WorkerHeartbeat.objects.create(worker_id="alive", last_seen=NOW - timedelta(seconds=5))

    def task_result(status: str, finished_days_ago: float | None) -> DBTaskResult:
        finished = None if finished_days_ago is None else NOW - timedelta(days=finished_days_ago)
        return DBTaskResult.objects.create(
            status=status,
            finished_at=finished,
            args_kwargs={"args": [1], "kwargs": {}},
            task_path="kommo_hub.tasks.deliver_outbound_action",
            backend_name="default",
            run_after=NOW - timedelta(days=9),
        )

    task_result("SUCCESSFUL", 8)
    task_result("FAILED", 8)
    task_result("SUCCESSFUL", 6)
    task_result("READY", None)

    assert prune_bookkeeping() == 4

    assert list(SchedulerRun.objects.values_list("tick", flat=True)) == [2]
    assert list(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == ["alive"]
    assert sorted(DBTaskResult.objects.values_list("status", flat=True)) == [
        "READY",
        "SUCCESSFUL",
    ]
    assert prune_bookkeeping() == 0
