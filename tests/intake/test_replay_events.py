"""`python manage.py replay_events`: which events it selects, what it changes, and its errors."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from kommo_hub.models import EventStatus, InboundEvent, Lead
from tests.factories import InboundEventFactory


def replay(*args: str) -> str:
    out = StringIO()
    call_command("replay_events", *args, stdout=out, stderr=StringIO())
    return out.getvalue().strip()


def statuses() -> dict[int, str]:
    return dict(InboundEvent.objects.values_list("pk", "status"))


@pytest.fixture
def events() -> dict[str, InboundEvent]:
    made = {
        "failed": InboundEventFactory(status=EventStatus.FAILED, attempts=2, last_error="boom"),
        "dead": InboundEventFactory(status=EventStatus.DEAD, attempts=8, last_error="gave up"),
        "processed": InboundEventFactory(status=EventStatus.PROCESSED, attempts=1),
        "ignored": InboundEventFactory(status=EventStatus.IGNORED),
    }
    old = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
    InboundEvent.objects.filter(pk=made["dead"].pk).update(created_at=old)
    return made


@pytest.mark.django_db
def test_failed_replays_failed_and_dead_events_and_resets_their_attempts(events) -> None:
    output = replay("--failed")

    assert output == "2 event(s) queued for processing again"
    assert statuses() == {
        events["failed"].pk: EventStatus.RECEIVED,
        events["dead"].pk: EventStatus.RECEIVED,
        events["processed"].pk: EventStatus.PROCESSED,
        events["ignored"].pk: EventStatus.IGNORED,
    }
    replayed = InboundEvent.objects.get(pk=events["dead"].pk)
    assert (replayed.attempts, replayed.next_attempt_at) == (0, None)


@pytest.mark.django_db
def test_ids_replays_exactly_the_chosen_events_whatever_their_status(events) -> None:
    output = replay("--ids", f"{events['processed'].pk}, {events['ignored'].pk}")

    assert output == "2 event(s) queued for processing again"
    assert statuses()[events["processed"].pk] == EventStatus.RECEIVED
    assert statuses()[events["ignored"].pk] == EventStatus.RECEIVED
    assert statuses()[events["failed"].pk] == EventStatus.FAILED


@pytest.mark.django_db
def test_since_replays_events_received_from_that_moment(events) -> None:
    output = replay("--since", "2026-01-01")

    assert output == "3 event(s) queued for processing again"
    assert statuses()[events["dead"].pk] == EventStatus.DEAD


@pytest.mark.django_db
def test_since_accepts_an_iso_date_time(events) -> None:
    output = replay("--since", "2025-12-01T11:59:00+00:00", "--failed")

    assert output == "2 event(s) queued for processing again"


@pytest.mark.django_db
def test_options_combine_as_and(events) -> None:
    output = replay("--failed", "--since", "2026-01-01")

    assert output == "1 event(s) queued for processing again"
    assert statuses()[events["failed"].pk] == EventStatus.RECEIVED
    assert statuses()[events["dead"].pk] == EventStatus.DEAD


@pytest.mark.django_db
def test_dry_run_counts_and_changes_nothing(events) -> None:
    before = statuses()

    output = replay("--failed", "--dry-run")

    assert output == "2 event(s) would be replayed"
    assert statuses() == before


@pytest.mark.django_db
def test_an_event_being_processed_right_now_is_left_alone() -> None:
    busy = InboundEventFactory(
        status=EventStatus.PROCESSING,
        locked_until=timezone.now() + timedelta(minutes=1),
    )

    output = replay("--ids", str(busy.pk))

    assert output == "0 event(s) queued for processing again"
    assert InboundEvent.objects.get().status == EventStatus.PROCESSING


@pytest.mark.django_db(transaction=True)
def test_a_replayed_dead_event_is_processed_again() -> None:
    dead = InboundEventFactory(
        status=EventStatus.DEAD,
        attempts=8,
        last_error="gave up",
        payload={"id": "18750001", "name": "Lead reprocessado", "updated_at": "1767261600"},
    )

    replay("--ids", str(dead.pk))

    dead.refresh_from_db()
    assert (dead.status, dead.attempts, dead.last_error) == (EventStatus.PROCESSED, 1, "")
    assert Lead.objects.get().name == "Lead reprocessado"


@pytest.mark.django_db
def test_nothing_selected_replays_nothing(events) -> None:
    assert replay("--ids", "999999") == "0 event(s) queued for processing again"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "say what to replay: --failed, --ids 1,2,3 and/or --since 2026-01-01"),
        (("--ids", "1,dois"), "--ids must be comma-separated numbers"),
        (("--since", "ontem"), "--since 'ontem': use YYYY-MM-DD or an ISO-8601 date-time"),
        (("--since", "2026-13-45"), "--since '2026-13-45': use YYYY-MM-DD or an ISO-8601"),
        (("--since", "2026-01-01T25:00"), "--since '2026-01-01T25:00': use YYYY-MM-DD"),
    ],
)
def test_bad_or_missing_options_are_a_command_error(events, args, message: str) -> None:
    before = statuses()

    with pytest.raises(CommandError) as error:
        replay(*args)

    assert str(error.value).startswith(message)
    assert statuses() == before
