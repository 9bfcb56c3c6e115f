"""run_worker outlives a database restart: it waits and polls again instead of exiting."""

import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError
from django_tasks_db.management.commands.db_worker import Worker

from kommo_hub.management.commands import run_worker


@pytest.fixture
def worker_runs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> list[str]:
    """Worker.run replaced: the first run fails like a restarting Postgres, the second stops."""
    settings.TASKS_BACKEND = "database"
    runs: list[str] = []

    def run(self: Worker) -> None:
        runs.append("run")
        if len(runs) == 1:
            raise OperationalError("FATAL:  the database system is shutting down")
        self.running = False

    monkeypatch.setattr(Worker, "run", run)
    monkeypatch.setattr(Worker, "configure_signals", lambda self: None)
    monkeypatch.setattr(run_worker, "heartbeat_start", lambda **kwargs: threading.Event())
    monkeypatch.setattr(run_worker, "DATABASE_RETRY_SECONDS", 0)
    return runs


def test_a_worker_whose_database_restarts_waits_and_polls_again(worker_runs: list[str]) -> None:
    errors = StringIO()

    call_command("run_worker", stderr=errors)

    assert worker_runs == ["run", "run"]
    assert errors.getvalue() == "task worker waiting, database unavailable: OperationalError\n"


def test_a_worker_stopped_while_the_database_is_down_exits(
    worker_runs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(self: Worker) -> None:
        worker_runs.append("run")
        self.running = False  # SIGTERM arrived during the task
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(Worker, "run", run)

    call_command("run_worker", stderr=StringIO())

    assert worker_runs == ["run"]
