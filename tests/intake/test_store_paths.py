"""inbound_request_store: the usual path (no savepoints) and the retry when a key was seen."""

from typing import Any

import pytest
from django_tasks_db.models import DBTaskResult

from kommo_hub.intake.parsed import ParsedEvent
from kommo_hub.intake.store import inbound_request_store
from kommo_hub.models import InboundEvent, InboundRequest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def database_tasks(settings: Any) -> None:
    """Task rows in the database, as in production, so that they can be counted."""
    settings.TASKS_BACKEND = "database"
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}
    }


def _event(key: str, event_type: str = "kommo.leads.add") -> ParsedEvent:
    return ParsedEvent(event_type, key, {"id": key}, external_id=key)


def _store(*events: ParsedEvent) -> tuple[int, int, InboundRequest]:
    result = inbound_request_store(
        source="kommo",
        body="raw",
        content_type="application/x-www-form-urlencoded",
        headers={"User-Agent": "test"},
        remote_addr="127.0.0.1",
        events=list(events),
    )
    request = InboundRequest.objects.get(pk=result.request_id)
    assert (request.accepted, request.duplicates) == (result.accepted, result.duplicates)
    return result.accepted, result.duplicates, request


def test_new_events_are_stored_each_with_one_task() -> None:
    accepted, duplicates, request = _store(_event("k1"), _event("k2"))

    assert (accepted, duplicates) == (2, 0)
    assert set(request.events.values_list("dedupe_key", flat=True)) == {"k1", "k2"}
    task_args = sorted(t.args_kwargs["args"][0] for t in DBTaskResult.objects.all())
    assert task_args == sorted(request.events.values_list("pk", flat=True))


def test_a_seen_key_keeps_the_raw_request_and_enqueues_only_the_new_event() -> None:
    _store(_event("k1"))

    accepted, duplicates, request = _store(_event("k1"), _event("k2"))

    assert (accepted, duplicates) == (1, 1)
    assert InboundRequest.objects.count() == 2
    assert list(request.events.values_list("dedupe_key", flat=True)) == ["k2"]
    assert InboundEvent.objects.count() == 2
    assert DBTaskResult.objects.count() == 2


def test_the_same_key_twice_in_one_body_is_one_event() -> None:
    accepted, duplicates, request = _store(_event("k1"), _event("k1"))

    assert (accepted, duplicates) == (1, 1)
    assert request.events.count() == 1
    assert DBTaskResult.objects.count() == 1


def test_only_duplicates_store_the_request_with_nothing_accepted() -> None:
    _store(_event("k1"))

    accepted, duplicates, request = _store(_event("k1"))

    assert (accepted, duplicates) == (0, 1)
    assert request.events.count() == 0
    assert DBTaskResult.objects.count() == 1


def test_an_event_without_handler_is_stored_ignored_without_a_task() -> None:
    accepted, duplicates, request = _store(_event("k1", event_type="kommo.unknown.thing"))

    assert (accepted, duplicates) == (1, 0)
    assert request.events.get().status == "ignored"
    assert DBTaskResult.objects.count() == 0


def test_the_stored_task_row_is_one_django_tasks_db_can_claim_and_run() -> None:
    _, _, request = _store(_event("101"), _event("k2", event_type="kommo.catalogs.add"))

    event = request.events.get(dedupe_key="101")
    ignored = request.events.get(dedupe_key="k2")
    assert (event.status, ignored.status) == ("received", "ignored")
    task_row = DBTaskResult.objects.ready().get()
    assert task_row.task.module_path == "kommo_hub.tasks.process_inbound_event"
    assert task_row.task_result.args == [event.pk]
    assert task_row.task_result.kwargs == {}
    assert task_row.task.call(*task_row.task_result.args) == "processed"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.lead.kommo_lead_id) == ("processed", 1, 101)


def test_a_batch_larger_than_one_statement_carries_is_stored_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kommo_hub.intake import store

    assert store.ONE_STATEMENT_MAX_EVENTS * 6 + 20 < 65_535  # Postgres' parameter limit
    monkeypatch.setattr(store, "ONE_STATEMENT_MAX_EVENTS", 2)
    events = [_event(str(1000 + i)) for i in range(3)]

    accepted, duplicates, request = _store(*events)

    assert (accepted, duplicates) == (3, 0)
    assert request.events.count() == 3
    assert DBTaskResult.objects.count() == 3
