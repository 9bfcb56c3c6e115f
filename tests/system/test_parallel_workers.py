"""Several workers draining a backlog of webhook events: each event processed exactly once."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import pytest
from django.db.models import Count
from django_tasks_db.models import DBTaskResult
from pytest_django.fixtures import Settings

from kommo_hub.models import EventStatus, InboundEvent, Lead
from kommo_hub.tasks import process_inbound_event
from tests.system.processes import HubProcesses, log_records, post_kommo, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EVENTS = 200
PER_REQUEST = 10
WORKERS = 3
FIRST_LEAD_ID = 7_000_000


def kommo_leads_body(lead_ids: range) -> bytes:
    """A Kommo `leads[add]` webhook carrying several leads, like Kommo batches them."""
    fields: list[tuple[str, str | int]] = []
    for index, lead_id in enumerate(lead_ids):
        prefix = f"leads[add][{index}]"
        fields += [
            (f"{prefix}[id]", lead_id),
            (f"{prefix}[name]", f"Lead #{lead_id}"),
            (f"{prefix}[status_id]", 61234501),
            (f"{prefix}[pipeline_id]", 7654321),
            (f"{prefix}[updated_at]", 1767261600),
        ]
    fields += [("account[subdomain]", "acmevendas"), ("account[id]", 31234567)]
    return urlencode(fields).encode()


def test_three_workers_process_every_event_exactly_once(
    hub: HubProcesses, settings: Settings
) -> None:
    base = hub.gunicorn()
    bodies = [
        kommo_leads_body(range(start, start + PER_REQUEST))
        for start in range(FIRST_LEAD_ID, FIRST_LEAD_ID + EVENTS, PER_REQUEST)
    ]
    start_together = threading.Barrier(len(bodies))

    def send(body: bytes) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            start_together.wait(timeout=30)
            return post_kommo(base, body, client=client)

    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(send, bodies))
    assert [r.status_code for r in responses] == [200] * len(bodies)
    assert sum(r.json()["accepted"] for r in responses) == EVENTS
    event_ids = list(InboundEvent.objects.values_list("pk", flat=True))
    assert len(event_ids) == EVENTS

    # A second task per event, queued right next to the first (as when a sweep re-enqueues an
    # event whose task is still waiting): workers race for the same event at the same moment.
    originals = {t.args_kwargs["args"][0]: t.enqueued_at for t in DBTaskResult.objects.all()}
    assert sorted(originals) == sorted(event_ids)
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}
    }
    for event_id in event_ids:
        duplicate = process_inbound_event.enqueue(event_id)
        DBTaskResult.objects.filter(pk=duplicate.id).update(enqueued_at=originals[event_id])
    assert DBTaskResult.objects.count() == 2 * EVENTS

    workers = [hub.worker() for _ in range(WORKERS)]
    wait_until(
        lambda: DBTaskResult.objects.filter(status="SUCCESSFUL").count() == 2 * EVENTS,
        timeout=60,
        what=f"{WORKERS} workers to run all {2 * EVENTS} tasks",
        hub=hub,
    )

    assert Counter(DBTaskResult.objects.values_list("return_value", flat=True)) == {
        "processed": EVENTS,
        "not claimed": EVENTS,
    }
    assert set(InboundEvent.objects.values_list("status", "attempts")) == {
        (EventStatus.PROCESSED, 1)
    }
    assert Lead.objects.count() == EVENTS
    assert not Lead.objects.values("kommo_lead_id").annotate(n=Count("id")).filter(n__gt=1)
    assert set(Lead.objects.values_list("kommo_lead_id", flat=True)) == set(
        range(FIRST_LEAD_ID, FIRST_LEAD_ID + EVENTS)
    )
    processed = Counter(
        r["event_id"]
        for r in log_records(workers)
        if r.get("logger") == "kommo_hub.processing" and r.get("msg") == "event processed"
    )
    assert processed == dict.fromkeys(event_ids, 1)
    busy_workers = {w for t in DBTaskResult.objects.all() for w in t.worker_ids}
    assert len(busy_workers) >= 2, "the backlog was not shared between workers"
