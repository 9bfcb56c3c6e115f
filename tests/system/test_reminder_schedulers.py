"""Several schedulers sending the same due reminders: each reminder becomes one n8n action, and
n8n (a real local HTTP server) receives each reminder once."""

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from pytest_django.fixtures import Settings

from kommo_hub.flows.reminders import reminders_send_due
from kommo_hub.models import ActionStatus, OutboundAction
from scheduling.models import Appointment, Reminder, ReminderStatus
from scheduling.reminders import reminders_plan
from tests.factories import LeadFactory
from tests.outbox.support import N8N_SECRET, LocalHttpServer
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.scheduling.factories import AppointmentFactory
from tests.system.processes import HubProcesses, log_records, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APPOINTMENTS = 40
SCHEDULERS = 6


@pytest.fixture
def n8n_server() -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        yield server


def due_reminders(count: int) -> list[Reminder]:
    """`count` appointments three hours ahead, booked two days ago: each one's 24-hour reminder
    is due (overdue), its 1-hour one is not yet."""
    area = AreaFactory()
    person = SalespersonFactory()
    AreaMembershipFactory(area=area, salesperson=person)
    now = timezone.now()
    for index in range(count):
        start = (now + timedelta(hours=3, minutes=index)).replace(second=0, microsecond=0)
        appointment: Appointment = AppointmentFactory(
            salesperson=person,
            lead=LeadFactory(),
            starts_at=start,
            ends_at=start + timedelta(minutes=30),
        )
        reminders_plan(appointment=appointment, now=now - timedelta(days=2))
    due = list(Reminder.objects.filter(status=ReminderStatus.SCHEDULED, due_at__lte=now))
    assert len(due) == count
    return due


def received_keys(server: LocalHttpServer) -> Counter[str]:
    return Counter(r.json()["idempotency_key"] for r in server.received)


def test_reminder_jobs_racing_on_several_threads_send_each_reminder_once(
    settings: Settings, n8n_server: LocalHttpServer
) -> None:
    settings.N8N_WEBHOOK_URL = f"{n8n_server.url}/webhook/kommo-hub"
    settings.N8N_WEBHOOK_SECRET = N8N_SECRET
    due = due_reminders(APPOINTMENTS)
    start = threading.Barrier(SCHEDULERS)
    queued: list[int] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        # Each thread is a scheduler with its own connection; tasks run inline after commit, so
        # every scheduler also delivers what it queued.
        try:
            start.wait(timeout=30)
            queued.append(reminders_send_due())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(SCHEDULERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    actions = OutboundAction.objects.filter(action="reminder")
    assert actions.count() == APPOINTMENTS
    assert set(actions.values_list("status", flat=True)) == {ActionStatus.DONE}
    keys = received_keys(n8n_server)
    assert sorted(keys.values()) == [1] * APPOINTMENTS
    assert set(keys) == set(actions.values_list("idempotency_key", flat=True))
    assert {r.headers.get("X-Kommo-Hub-Secret") for r in n8n_server.received} == {N8N_SECRET}
    # Each reminder was handed over once in all; a run after them records every one as sent.
    assert sum(queued) >= APPOINTMENTS
    reminders_send_due()
    assert (
        sorted(Reminder.objects.filter(pk__in=[r.pk for r in due]).values_list("status", flat=True))
        == [ReminderStatus.SENT] * APPOINTMENTS
    )
    assert sorted(Reminder.objects.values_list("action_id", flat=True).exclude(action=None)) == (
        sorted(actions.values_list("pk", flat=True))
    )


def test_several_scheduler_processes_and_a_worker_remind_each_appointment_once(
    hub: HubProcesses, n8n_server: LocalHttpServer
) -> None:
    due_reminders(APPOINTMENTS // 2)
    n8n: dict[str, Any] = {
        "N8N_WEBHOOK_URL": f"{n8n_server.url}/webhook/kommo-hub",
        "N8N_WEBHOOK_SECRET": N8N_SECRET,
    }
    worker = hub.worker(**n8n)
    schedulers = [hub.scheduler(SCHEDULER_TICK_SECONDS=0.2, **n8n) for _ in range(3)]

    wait_until(
        lambda: (
            len(n8n_server.received) >= APPOINTMENTS // 2
            and not OutboundAction.objects.exclude(status=ActionStatus.DONE).exists()
        ),
        timeout=60,
        what="every reminder to reach n8n",
        hub=hub,
    )
    assert all(s.alive() for s in schedulers), hub.logs(schedulers)
    hub.close()

    actions = OutboundAction.objects.filter(action="reminder")
    assert actions.count() == APPOINTMENTS // 2
    assert sorted(received_keys(n8n_server).values()) == [1] * (APPOINTMENTS // 2)
    failures = [
        r for r in log_records([worker, *schedulers]) if r.get("level") in {"ERROR", "CRITICAL"}
    ]
    assert failures == []
