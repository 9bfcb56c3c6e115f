"""Two schedulers at once: every (job, tick) runs once, and a due retry is enqueued once."""

import socket
from datetime import timedelta

import pytest
from django.db.models import Count
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from kommo_hub.models import EventStatus, InboundEvent, Lead, SchedulerRun, WorkerHeartbeat
from tests.factories import InboundEventFactory
from tests.system.processes import HubProcesses, log_records, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SWEEP_EVERY = 5  # seconds, JOBS["sweep_events"]
# Beyond bigint: the handler's INSERT fails in the database, a transient-looking error → retry.
OUT_OF_RANGE_LEAD_ID = "99999999999999999999"


def _failed_event(payload: dict[str, str]) -> InboundEvent:
    return InboundEventFactory(  # type: ignore[no-any-return]
        payload=payload,
        status=EventStatus.FAILED,
        attempts=1,
        last_error="OperationalError: the first attempt failed",
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )


def _tasks_for(event: InboundEvent) -> list[DBTaskResult]:
    return [t for t in DBTaskResult.objects.all() if t.args_kwargs["args"] == [event.pk]]


def test_two_schedulers_run_each_tick_once_and_retry_once_per_due_time(
    hub: HubProcesses,
) -> None:
    recovers = _failed_event({"id": "555001", "name": "Retried lead"})
    fails_again = _failed_event({"id": OUT_OF_RANGE_LEAD_ID, "name": "Broken lead"})
    # A long backoff after the retry: within this test each event is due exactly once.
    worker = hub.worker(RETRY_BASE_SECONDS=600)
    wait_until(WorkerHeartbeat.objects.exists, timeout=20, what="the worker's heartbeat", hub=hub)
    schedulers = [hub.scheduler(SCHEDULER_TICK_SECONDS=0.2) for _ in range(2)]

    def retried() -> bool:
        done = InboundEvent.objects.filter(pk__in=[recovers.pk, fails_again.pk], attempts=2)
        return done.exclude(status=EventStatus.PROCESSING).count() == 2

    wait_until(retried, timeout=20, what="both due events to be retried", hub=hub)
    first_sweep = SchedulerRun.objects.filter(job="sweep_events").order_by("tick").first()
    assert first_sweep is not None
    # Let the schedulers race through at least one more sweep after the retries.
    wait_until(
        lambda: SchedulerRun.objects.filter(job="sweep_events", tick__gt=first_sweep.tick).exists(),
        timeout=SWEEP_EVERY * 2 + 5,
        what="a second sweep tick",
        hub=hub,
    )
    assert all(s.alive() for s in schedulers), hub.logs(schedulers)
    hub.close()

    # Each (job, tick) exactly once, with no tick skipped while both were running.
    per_tick = SchedulerRun.objects.values("job", "tick").annotate(n=Count("id"))
    assert [row for row in per_tick if row["n"] != 1] == []
    for job in ("sweep_events", "sweep_actions"):
        ticks = list(
            SchedulerRun.objects.filter(job=job).order_by("tick").values_list("tick", flat=True)
        )
        assert len(ticks) >= 2
        assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), (job, ticks)
    runners = set(SchedulerRun.objects.values_list("ran_by", flat=True))
    assert runners <= {f"{socket.gethostname()[:60]}-{s.pid}" for s in schedulers}

    recovers.refresh_from_db()
    assert recovers.status == EventStatus.PROCESSED
    assert recovers.attempts == 2
    assert Lead.objects.filter(kommo_lead_id=555001).count() == 1
    fails_again.refresh_from_db()
    # Its retry shows the id can never fit: dead at once, not retried again.
    assert fails_again.status == EventStatus.DEAD
    assert fails_again.attempts == 2
    assert "less than or equal to" in fails_again.last_error
    assert fails_again.next_attempt_at is None
    # One due time → one task each, and that task did the retry.
    assert [t.return_value for t in _tasks_for(recovers)] == ["processed"]
    assert [t.return_value for t in _tasks_for(fails_again)] == ["dead"]
    failures = [
        r for r in log_records([worker, *schedulers]) if r.get("level") in {"ERROR", "CRITICAL"}
    ]
    assert failures == []
