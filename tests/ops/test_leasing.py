"""Claiming rows with a lease (one winner), expired leases, and the retry backoff."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection

from kommo_hub.leasing import backoff_delay, claim_row
from kommo_hub.models import ActionStatus, EventStatus, InboundEvent, OutboundAction
from tests.factories import InboundEventFactory, OutboundActionFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
EVENT_STATES = {"waiting": [EventStatus.RECEIVED, EventStatus.FAILED], "working": "processing"}
ACTION_STATES = {"waiting": [ActionStatus.PENDING, ActionStatus.FAILED], "working": "delivering"}


@pytest.fixture
def frozen(time_machine: time_machine.TimeMachineFixture) -> None:
    time_machine.move_to(NOW, tick=False)


def claim_action(pk: int) -> str | None:
    return claim_row(OutboundAction, pk=pk, **ACTION_STATES)  # type: ignore[arg-type]


def claim_event(pk: int) -> str | None:
    return claim_row(InboundEvent, pk=pk, **EVENT_STATES)  # type: ignore[arg-type]


@pytest.mark.usefixtures("frozen")
def test_of_two_claims_on_one_row_only_the_first_wins_and_holds_a_lease() -> None:
    action = OutboundActionFactory()

    first = claim_action(action.pk)
    second = claim_action(action.pk)

    assert first is not None
    assert len(first) == 32
    assert second is None
    action.refresh_from_db()
    assert action.status == ActionStatus.DELIVERING
    assert action.claim_token == first
    assert action.attempts == 1
    assert action.locked_until == NOW + timedelta(seconds=120)


@pytest.mark.django_db(transaction=True)
def test_of_eight_threads_claiming_one_row_at_once_exactly_one_wins() -> None:
    event = InboundEventFactory()
    start = threading.Barrier(8)
    tokens: list[str | None] = []

    def worker() -> None:
        try:
            start.wait()
            tokens.append(claim_event(event.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [t for t in tokens if t is not None]
    assert len(tokens) == 8
    assert len(winners) == 1
    event.refresh_from_db()
    assert (event.status, event.claim_token, event.attempts) == ("processing", winners[0], 1)


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize(
    ("factory", "claim", "working"),
    [
        (InboundEventFactory, claim_event, EventStatus.PROCESSING),
        (OutboundActionFactory, claim_action, ActionStatus.DELIVERING),
    ],
    ids=["event", "action"],
)
def test_a_row_whose_lease_expired_can_be_claimed_again(
    factory: Any, claim: Any, working: str
) -> None:
    row = factory(
        status=working, claim_token="a" * 32, attempts=1, locked_until=NOW - timedelta(seconds=1)
    )

    token = claim(row.pk)

    assert token is not None
    assert token != "a" * 32
    row.refresh_from_db()
    assert (row.status, row.claim_token, row.attempts) == (working, token, 2)
    assert row.locked_until == NOW + timedelta(seconds=120)


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize(
    ("factory", "claim", "working"),
    [
        (InboundEventFactory, claim_event, EventStatus.PROCESSING),
        (OutboundActionFactory, claim_action, ActionStatus.DELIVERING),
    ],
    ids=["event", "action"],
)
def test_a_row_under_a_live_lease_cannot_be_claimed(factory: Any, claim: Any, working: str) -> None:
    row = factory(
        status=working, claim_token="a" * 32, attempts=1, locked_until=NOW + timedelta(seconds=1)
    )

    assert claim(row.pk) is None
    row.refresh_from_db()
    assert (row.claim_token, row.attempts) == ("a" * 32, 1)


@pytest.mark.usefixtures("frozen")
def test_a_failed_row_is_claimed_only_once_its_next_attempt_is_due() -> None:
    not_due = OutboundActionFactory(status="failed", next_attempt_at=NOW + timedelta(seconds=1))
    due = OutboundActionFactory(status="failed", next_attempt_at=NOW)

    assert claim_action(not_due.pk) is None
    assert claim_action(due.pk) is not None


@pytest.mark.parametrize("status", ["done", "dead", "held"])
def test_finished_dead_and_held_actions_are_never_claimed(status: str) -> None:
    action = OutboundActionFactory(status=status)

    assert claim_action(action.pk) is None
    action.refresh_from_db()
    assert (action.status, action.attempts) == (status, 0)


@pytest.mark.parametrize(
    ("attempts", "low", "high"),
    [(0, 5, 10), (1, 5, 10), (2, 10, 20), (3, 20, 40), (6, 160, 320), (9, 1280, 2560)],
)
def test_backoff_is_half_fixed_half_random_and_doubles_per_attempt(
    attempts: int, low: float, high: float
) -> None:
    delays = [backoff_delay(attempts).total_seconds() for _ in range(200)]

    assert all(low <= d <= high for d in delays)
    assert len(set(delays)) > 100  # jittered, not a fixed schedule
    assert min(delays) < low + (high - low) / 4
    assert max(delays) > high - (high - low) / 4


@pytest.mark.parametrize("attempts", [10, 12, 40])
def test_backoff_never_exceeds_retry_max_seconds(attempts: int) -> None:
    delays = [backoff_delay(attempts).total_seconds() for _ in range(50)]

    assert all(1800 <= d <= 3600 for d in delays)


def test_backoff_follows_the_configured_base_and_cap(settings: Any) -> None:
    settings.RETRY_BASE_SECONDS = 2.0
    settings.RETRY_MAX_SECONDS = 30.0

    assert all(1 <= backoff_delay(1).total_seconds() <= 2 for _ in range(50))
    assert all(15 <= backoff_delay(8).total_seconds() <= 30 for _ in range(50))
