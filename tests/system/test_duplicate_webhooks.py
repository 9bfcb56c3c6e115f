"""Kommo retrying the same webhook many times at once, against a real gunicorn and worker.

Runs on SQLite too: the embedded default must absorb concurrent retries just the same.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django_tasks_db.models import DBTaskResult

from kommo_hub.models import EventStatus, InboundEvent, InboundRequest, Lead
from tests.conftest import shared_fixture
from tests.system.processes import HubProcesses, log_records, post_kommo, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PARALLEL_POSTS = 20


def test_parallel_identical_posts_store_one_event_processed_once(hub: HubProcesses) -> None:
    body = shared_fixture("kommo/lead_add.form")
    base = hub.gunicorn(workers=2, threads=4)
    start_together = threading.Barrier(PARALLEL_POSTS)

    def send(_: int) -> httpx.Response:
        with httpx.Client(timeout=30) as client:
            start_together.wait(timeout=30)
            return post_kommo(base, body, client=client)

    with ThreadPoolExecutor(PARALLEL_POSTS) as pool:
        responses = list(pool.map(send, range(PARALLEL_POSTS)))

    assert [r.status_code for r in responses] == [200] * PARALLEL_POSTS, [r.text for r in responses]
    answers = [r.json() for r in responses]
    assert sum(a["accepted"] for a in answers) == 1
    assert sum(a["duplicates"] for a in answers) == PARALLEL_POSTS - 1
    # Every request is kept raw; only one event, and only its request enqueued a task.
    assert InboundRequest.objects.count() == PARALLEL_POSTS
    event = InboundEvent.objects.get()
    assert event.status == EventStatus.RECEIVED
    assert event.attempts == 0
    task = DBTaskResult.objects.get()
    assert task.args_kwargs["args"] == [event.pk]

    worker = hub.worker()
    wait_until(
        lambda: DBTaskResult.objects.filter(pk=task.pk, status="SUCCESSFUL").exists(),
        timeout=20,
        what="the worker to run the event's task",
        hub=hub,
    )

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED
    assert event.attempts == 1
    assert event.result == "lead updated; routed: waiting for someone available"
    lead = Lead.objects.get()
    assert lead.kommo_lead_id == 18754321
    assert event.lead_id == lead.pk
    assert DBTaskResult.objects.get().return_value == "processed"
    processed_logs = [
        r
        for r in log_records([worker])
        if r.get("logger") == "kommo_hub.processing" and r.get("event_id") == event.pk
    ]
    assert [r["msg"] for r in processed_logs] == ["event processed"]
