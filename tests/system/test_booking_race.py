"""Ten parallel bookings of the same slot on Postgres: exactly one wins.

Booking locks the salesperson's row (SELECT … FOR UPDATE) and re-checks the slot against the
hub's mirror before writing, so the nine others see the winner's row and get the slot-taken
answer with alternatives. Supabase is not configured here: the hub's lock alone must hold.

Twice: ten threads calling the booking service (each on its own database connection), and ten
clients hitting the real API (gunicorn, several workers and threads) at the same moment.
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from django.db import connection
from django.utils import timezone

from kommo_hub.flows.scheduling import appointment_booked_sync
from kommo_hub.models import ApiKey, OutboundAction
from routing.calendar import holiday_names_for
from scheduling.booking import BookingResult, SlotTaken, appointment_book
from scheduling.models import Appointment
from tests.scheduling.booking_support import Team, team_build
from tests.system.processes import HubProcesses

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PARALLEL = 10


def next_working_day() -> date:
    """Tomorrow or later: a weekday that is no Brazilian holiday (the team works Mon–Fri)."""
    day = timezone.localdate() + timedelta(days=1)
    while day.weekday() >= 5 or holiday_names_for(first=day, last=day, state="", company={}):
        day += timedelta(days=1)
    return day


def contested_start() -> datetime:
    return timezone.make_aware(datetime.combine(next_working_day(), time(15)))


def run_together(count: int, call: Any) -> list[Any]:
    """`call(i)` in `count` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(count)

    def worker(index: int) -> Any:
        try:
            barrier.wait(timeout=30)
            return call(index)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            return exc
        finally:
            connection.close()  # each thread had its own connection

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(worker, range(count)))


def test_ten_threads_booking_one_slot_one_wins(transactional_db: None) -> None:
    team: Team = team_build()
    start = contested_start()

    def book(index: int) -> BookingResult:
        return appointment_book(
            lead_id=team.lead.pk,
            start=start,
            idempotency_key=f"race:service:{index}",
            then=lambda appointment: appointment_booked_sync(appointment=appointment),
        )

    results = run_together(PARALLEL, book)

    won = [r for r in results if isinstance(r, BookingResult)]
    lost = [r for r in results if isinstance(r, SlotTaken)]
    assert len(won) == 1, results
    assert len(lost) == PARALLEL - 1, results
    assert all(len(error.alternatives) == 3 for error in lost)
    assert all(start not in [slot.start for slot in error.alternatives] for error in lost)
    assert Appointment.objects.count() == 1
    assert Appointment.objects.get().starts_at == start
    assert sorted(OutboundAction.objects.values_list("action", flat=True)) == [
        "note_add",
        "task_add",
    ]


def test_ten_clients_booking_one_slot_through_the_api_one_gets_201(hub: HubProcesses) -> None:
    team: Team = team_build()
    _api_key, key = ApiKey.generate(name="n8n")
    start = contested_start()
    base = hub.gunicorn(workers=3, threads=4)

    def book(index: int) -> httpx.Response:
        return httpx.post(
            f"{base}/api/scheduling/appointments/",
            json={
                "lead": team.lead.pk,
                "start": start.isoformat(),
                "idempotency_key": f"race:api:{index}",
            },
            headers={"Authorization": f"Api-Key {key}"},
            timeout=60,
        )

    responses = run_together(PARALLEL, book)

    assert all(isinstance(r, httpx.Response) for r in responses), responses
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: PARALLEL - 1}, [r.text[:200] for r in responses]
    for response in responses:
        if response.status_code == 409:
            body = response.json()
            assert body["code"] == "slot_taken"
            assert len(body["alternatives"]) == 3
    assert Appointment.objects.count() == 1
    winner = next(r for r in responses if r.status_code == 201).json()
    assert winner["id"] == Appointment.objects.get().pk
    assert winner["start"] == timezone.localtime(start).isoformat()
