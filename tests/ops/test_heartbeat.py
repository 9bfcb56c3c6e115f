"""heartbeat_beat: one row per worker, refreshed on every beat."""

import os
import socket
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from kommo_hub.models import WorkerHeartbeat
from kommo_hub.ops.heartbeat import heartbeat_beat

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_the_first_beat_writes_one_row_for_the_worker(
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(T0, tick=False)

    heartbeat_beat(worker_id="host-a:worker-1")

    beat = WorkerHeartbeat.objects.get()
    assert beat.worker_id == "host-a:worker-1"
    assert beat.hostname == socket.gethostname()
    assert beat.pid == os.getpid()
    assert beat.started_at == T0
    assert beat.last_seen == T0


def test_later_beats_update_the_same_row(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(T0, tick=False)
    heartbeat_beat(worker_id="host-a:worker-1")
    time_machine.move_to(T0 + timedelta(seconds=10), tick=False)

    heartbeat_beat(worker_id="host-a:worker-1")
    heartbeat_beat(worker_id="host-a:worker-1")

    beat = WorkerHeartbeat.objects.get()
    assert beat.started_at == T0
    assert beat.last_seen == T0 + timedelta(seconds=10)


def test_each_worker_has_its_own_row() -> None:
    heartbeat_beat(worker_id="host-a:worker-1")
    heartbeat_beat(worker_id="host-b:worker-1")

    assert sorted(WorkerHeartbeat.objects.values_list("worker_id", flat=True)) == [
        "host-a:worker-1",
        "host-b:worker-1",
    ]
