"""/healthz (liveness) and /readyz (database, cache, backlog, worker heartbeat)."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import OperationalError
from django.test import Client

from kommo_hub.models import WorkerHeartbeat
from kommo_hub.ops import health
from tests.factories import InboundEventFactory, OutboundActionFactory
from tests.outbox.support import closed_port

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_healthz_answers_ok_without_touching_anything(client: Client) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_reports_the_backlog_its_oldest_ages_and_the_worker_heartbeat(
    client: Client, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(at(-500), tick=False)
    InboundEventFactory(status="processed")  # older than all, but not pending
    OutboundActionFactory(status="done")
    time_machine.move_to(at(0), tick=False)
    InboundEventFactory(status="received")
    OutboundActionFactory(status="failed")
    time_machine.move_to(at(30), tick=False)
    InboundEventFactory(status="received")
    InboundEventFactory(status="processing")
    InboundEventFactory(status="failed")
    InboundEventFactory(status="ignored")
    InboundEventFactory(status="dead")
    OutboundActionFactory(status="pending")
    OutboundActionFactory(status="delivering")
    OutboundActionFactory(status="dead")
    OutboundActionFactory(status="held")
    OutboundActionFactory(status="held")
    WorkerHeartbeat.objects.create(worker_id="w1", last_seen=at(90))
    WorkerHeartbeat.objects.create(worker_id="w2", last_seen=at(40))
    time_machine.move_to(at(100), tick=False)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {
            "database": "ok",
            "cache": "ok",
            "backlog": {
                "events": 4,
                "actions": 3,
                "held_actions": 2,
                "oldest_pending_event_age_s": 100.0,
                "oldest_pending_action_age_s": 100.0,
            },
            "worker": {"last_heartbeat_age_s": 10.0, "tasks_backend": "immediate"},
        },
    }


def test_readyz_with_an_empty_backlog_reports_no_ages(client: Client) -> None:
    body = client.get("/readyz").json()

    assert body["checks"]["backlog"] == {
        "events": 0,
        "actions": 0,
        "held_actions": 0,
        "oldest_pending_event_age_s": None,
        "oldest_pending_action_age_s": None,
    }


def test_readyz_is_degraded_with_the_database_queue_and_no_worker_heartbeat(
    client: Client, settings: Any
) -> None:
    settings.TASKS_BACKEND = "database"

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"] == {
        "last_heartbeat_age_s": None,
        "tasks_backend": "database",
        "status": "stale",
    }


@pytest.mark.parametrize(
    ("age", "status", "worker_status"), [(35.0, "ok", "ok"), (35.5, "degraded", "stale")]
)
def test_readyz_with_the_database_queue_judges_the_heartbeat_by_its_age(
    age: float,
    status: str,
    worker_status: str,
    client: Client,
    settings: Any,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    settings.TASKS_BACKEND = "database"
    settings.WORKER_HEARTBEAT_SECONDS = 10.0  # stale after 3 missed beats + 5 s
    time_machine.move_to(at(age), tick=False)
    WorkerHeartbeat.objects.create(worker_id="w1", last_seen=T0)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == status
    assert response.json()["checks"]["worker"] == {
        "last_heartbeat_age_s": age,
        "tasks_backend": "database",
        "status": worker_status,
    }


def test_readyz_answers_503_when_the_database_is_unavailable(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    class UnreachableDatabase:
        def cursor(self) -> Any:
            raise OperationalError("connection refused")

    monkeypatch.setattr(health, "connection", UnreachableDatabase())

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "error: OperationalError"},
    }


def test_readyz_answers_503_when_the_cache_is_unreachable(client: Client, settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port()}/0",
        }
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "error: ConnectionError"
