"""`manage.py run_hub`: the whole hub in one supervised process group, end to end."""

import os
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from django.db import connection

from kommo_hub.models import EventStatus, InboundEvent, Lead
from tests.conftest import shared_fixture
from tests.system.locks import lead_row_locked, lock_waiters
from tests.system.processes import (
    HubProcess,
    HubProcesses,
    children_of,
    command_line,
    free_port,
    pid_alive,
    post_kommo,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KOMMO_LEAD_ID = 18754321  # the lead in kommo/lead_add.form
EventRows = Callable[[], list[tuple[str, int]]]


def _own_sqlite_database(hub: HubProcesses, tmp_path: Path) -> tuple[dict[str, str], EventRows]:
    """A fresh SQLite file, migrated by `manage.py migrate` like a first install."""
    path = tmp_path / "run_hub.sqlite3"
    env = {"DATABASE_URL": f"sqlite:///{path}"}
    hub.manage("migrate", "--noinput", "-v", "0", **env)

    def rows() -> list[tuple[str, int]]:
        with sqlite3.connect(path, timeout=20) as db:
            return db.execute("SELECT status, attempts FROM kommo_hub_inboundevent").fetchall()

    return env, rows


def _test_database_rows() -> list[tuple[str, int]]:
    return list(InboundEvent.objects.values_list("status", "attempts"))


def _all_five_processes(run_hub: HubProcess, hub: HubProcesses) -> set[int]:
    """gunicorn's master and 2 web workers, one task worker, the scheduler."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: found if len(found := children_of(run_hub.pid)) >= 5 else None,
        timeout=15,
        what="run_hub's five processes",
        hub=hub,
    )


def _task_worker(pids: set[int], *, missing_ok: bool = False) -> int | None:
    workers = [pid for pid in pids if "run_worker" in command_line(pid)]
    assert len(workers) == 1 or (missing_ok and not workers), workers
    return workers[0] if workers else None


def _sigterm(run_hub: HubProcess) -> None:
    run_hub.signal(signal.SIGTERM)


def _ctrl_c(run_hub: HubProcess) -> None:
    """A terminal's Ctrl-C: SIGINT to the whole foreground process group."""
    os.killpg(run_hub.pid, signal.SIGINT)


@pytest.mark.parametrize("stop", [_sigterm, _ctrl_c], ids=["sigterm", "ctrl-c"])
def test_run_hub_serves_processes_and_stops_cleanly(
    hub: HubProcesses, tmp_path: Path, stop: Callable[[HubProcess], None]
) -> None:
    if connection.vendor == "sqlite":
        env, event_rows = _own_sqlite_database(hub, tmp_path)
    else:
        env, event_rows = {}, _test_database_rows
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run_hub = hub.run_hub("--port", str(port), "--task-workers", "1", **env)
    assert hub.wait_healthy(base, run_hub, timeout=30), f"run_hub died\n{hub.logs()}"

    # Supervision: a task worker that dies is replaced, and the replacement does the work.
    crashed = _task_worker(_all_five_processes(run_hub, hub))
    assert crashed is not None
    os.kill(crashed, signal.SIGKILL)
    wait_until(
        lambda: _task_worker(children_of(run_hub.pid), missing_ok=True) not in {None, crashed},
        timeout=15,
        what="run_hub to restart its task worker",
        hub=hub,
    )

    response = post_kommo(base, shared_fixture("kommo/lead_add.form"))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    wait_until(
        lambda: event_rows() == [("processed", 1)],
        timeout=15,
        what="run_hub's worker to process the event",
        hub=hub,
    )

    def ready() -> dict[str, object] | None:
        answer = httpx.get(f"{base}/readyz", timeout=5)
        data = answer.json()
        worker = data["checks"]["worker"]
        fresh = answer.status_code == 200 and worker.get("status") == "ok"
        return data if fresh and worker["last_heartbeat_age_s"] < 30 else None

    readiness = wait_until(ready, timeout=15, what="/readyz to show a fresh worker", hub=hub)
    assert readiness["status"] == "ok"
    assert readiness["checks"]["database"] == "ok"  # type: ignore[index]

    children = _all_five_processes(run_hub, hub)
    stop(run_hub)
    wait_until(lambda: not run_hub.alive(), timeout=15, what="run_hub to stop", hub=hub)
    assert run_hub.popen.returncode == 0, hub.logs([run_hub])
    wait_until(
        lambda: not [pid for pid in children if pid_alive(pid)] and not hub.marked_pids(),
        timeout=5,
        what="run_hub's children to be gone",
        hub=hub,
    )
    assert "Stopped." in run_hub.log_tail()


@pytest.mark.postgres
@pytest.mark.parametrize("stop", [_sigterm, _ctrl_c], ids=["sigterm", "ctrl-c"])
def test_run_hub_lets_the_event_in_flight_finish_when_stopped(
    hub: HubProcesses, stop: Callable[[HubProcess], None]
) -> None:
    """Stopping is graceful: a worker in the middle of an event finishes it before exiting."""
    Lead.objects.create(kommo_lead_id=KOMMO_LEAD_ID, source="kommo")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run_hub = hub.run_hub("--port", str(port), "--web-workers", "1", "--task-workers", "1")
    assert hub.wait_healthy(base, run_hub, timeout=30), f"run_hub died\n{hub.logs()}"

    with lead_row_locked(KOMMO_LEAD_ID):
        response = post_kommo(base, shared_fixture("kommo/lead_add.form"))
        assert response.json() == {"accepted": 1, "duplicates": 0}
        wait_until(
            lambda: (
                InboundEvent.objects.filter(status=EventStatus.PROCESSING).exists()
                and lock_waiters()
            ),
            timeout=15,
            what="the worker to block inside the event's handler",
            hub=hub,
        )
        stop(run_hub)
        wait_until(
            lambda: "shutting down gracefully" in run_hub.log_tail(),
            timeout=5,
            what="the worker to be asked to stop",
            hub=hub,
        )
    # The lock is released: the worker finishes the event, then everything exits.
    wait_until(lambda: not run_hub.alive(), timeout=15, what="run_hub to stop", hub=hub)
    assert run_hub.popen.returncode == 0, hub.logs([run_hub])
    event = InboundEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.PROCESSED, 1), hub.logs([run_hub])
