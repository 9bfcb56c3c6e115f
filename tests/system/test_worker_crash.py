"""A worker killed in the middle of an event: the lease expires and a new worker finishes it."""

import signal

import pytest
from django_tasks_db.models import DBTaskResult

from kommo_hub.models import EventStatus, InboundEvent, Lead
from tests.conftest import shared_fixture
from tests.system.locks import lead_row_locked, lock_waiters
from tests.system.processes import HubProcesses, post_kommo, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

KOMMO_LEAD_ID = 18754321  # the lead in kommo/lead_add.form
FAST_LEASES = {"CLAIM_LEASE_SECONDS": 2, "SCHEDULER_TICK_SECONDS": 0.5}


def test_event_of_a_killed_worker_is_processed_by_the_next_one(hub: HubProcesses) -> None:
    Lead.objects.create(kommo_lead_id=KOMMO_LEAD_ID, source="kommo")
    base = hub.gunicorn(**FAST_LEASES)
    response = post_kommo(base, shared_fixture("kommo/lead_add.form"))
    assert response.json() == {"accepted": 1, "duplicates": 0}
    event = InboundEvent.objects.get()

    with lead_row_locked(KOMMO_LEAD_ID):
        first = hub.worker(**FAST_LEASES)
        # The worker claims the event, then blocks in the handler waiting for our row lock.
        wait_until(
            lambda: InboundEvent.objects.filter(
                pk=event.pk, status=EventStatus.PROCESSING
            ).exists(),
            timeout=20,
            what="the first worker to claim the event",
            hub=hub,
        )
        wait_until(
            lock_waiters,
            timeout=20,
            what="the first worker's handler to wait for the lead's row lock",
            hub=hub,
        )
        first.signal(signal.SIGKILL)
        first.popen.wait(timeout=10)
        assert first.popen.returncode == -signal.SIGKILL

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSING  # the dead worker's claim is still on the row
    assert event.attempts == 1
    # django-tasks-db leaves the killed task RUNNING; our own row drives the retry.
    assert DBTaskResult.objects.get().status == "RUNNING"

    hub.worker(**FAST_LEASES)
    hub.scheduler(**FAST_LEASES)
    wait_until(
        lambda: InboundEvent.objects.filter(pk=event.pk, status=EventStatus.PROCESSED).exists(),
        timeout=30,
        what="the event to be processed after its lease expired",
        hub=hub,
    )
    event.refresh_from_db()
    assert event.attempts == 2
    assert event.result == "lead updated; routed: waiting for someone available"
    lead = Lead.objects.get()
    assert event.lead_id == lead.pk
    assert lead.kommo_status_id == 61234501
    assert DBTaskResult.objects.filter(status="SUCCESSFUL").get().return_value == "processed"
