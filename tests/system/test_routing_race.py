"""Eight real workers route 1,000 website leads into one area at the same time: exact shares.

The issue's promise, end to end: the leads arrive through the real forms receiver (gunicorn), wait
on the database task queue, and eight `run_worker` processes start together and route them
(Flow 1: lead created → lead_route → outbox rows). lead_route locks the lead row, then the
area row, so every rotation step is taken by one worker at a time and counted once:

- 4 people with equal weights (round robin and weighted) → exactly 250 each;
- 2 people with weights 3:1 (weighted) → 750 / 250 (±1).

Every lead gets its own phone and e-mail, so no contact is merged or sent back to a returning
owner: only the strategy decides. Kommo and n8n are not configured here, so the outbox actions
the flow writes are held by the same workers; that is the real load, not a problem.
"""

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.db.models import Count, Sum
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from kommo_hub.models import EventStatus, InboundEvent, Lead
from routing.calendar import holiday_names_for
from routing.models import Area, AreaMembership, Assignment, AssignmentStatus, Strategy
from tests.conftest import SECRETS
from tests.routing.factories import (
    AreaFactory,
    AreaMembershipFactory,
    SalespersonFactory,
    always_working,
)
from tests.system.processes import HubProcesses, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

LEADS = 1000
WORKERS = 8
SENDERS = 16
FORMS_PATH = f"/webhooks/forms/{SECRETS['FORMS_WEBHOOK_SECRET']}/"
EVENT_TASK = "kommo_hub.tasks.process_inbound_event"


def area_with_team(strategy: str, weights: tuple[int, ...]) -> tuple[Area, list[int]]:
    """The default area (every lead lands there: no rules) and its members, always on shift."""
    area = AreaFactory(is_default=True, strategy=strategy, name="Vendas", slug="vendas")
    people = []
    for index, weight in enumerate(weights):
        person = SalespersonFactory(name=f"Vendedor {index + 1}")
        always_working(person)
        AreaMembershipFactory(area=area, salesperson=person, weight=weight)
        people.append(person.pk)
    return area, people


def form_body(n: int) -> bytes:
    """A website form; its own person (phone and e-mail), so nothing merges or sticks."""
    return json.dumps(
        {
            "nome": f"Cliente {n}",
            "telefone": f"+55 11 98{n:07d}",
            "email": f"cliente{n}@example.com",
            "utm_source": "google",
            "form": "contato",
        }
    ).encode()


def leads_post(base: str, count: int) -> None:
    """POST `count` forms to the real receiver from SENDERS connections at once."""

    def send(numbers: range) -> list[int]:
        with httpx.Client(base_url=base, timeout=30) as client:
            return [
                client.post(
                    FORMS_PATH,
                    content=form_body(n),
                    headers={"Content-Type": "application/json"},
                ).status_code
                for n in numbers
            ]

    shares = [range(first, count, SENDERS) for first in range(SENDERS)]
    with ThreadPoolExecutor(SENDERS) as pool:
        codes = Counter(code for codes in pool.map(send, shares) for code in codes)
    assert codes == {200: count}


def all_routed() -> bool:
    """True once every event is processed; fails at once on a retry or a dead event (a deadlock
    or a serialization error would show up here, not as a slow test)."""
    broken = list(
        InboundEvent.objects.filter(status__in=[EventStatus.FAILED, EventStatus.DEAD]).values_list(
            "pk", "status", "last_error"
        )[:5]
    )
    assert not broken, f"events failed while routing in parallel: {broken}"
    return InboundEvent.objects.filter(status=EventStatus.PROCESSED).count() == LEADS


def route_in_parallel(hub: HubProcesses) -> float:
    """Store LEADS form events (their tasks wait), then let WORKERS workers loose on them.

    Returns the seconds the workers took.
    """
    today = timezone.localdate()
    if holiday_names_for(first=today, last=today, state="", company={}):
        pytest.skip(f"{today} is a Brazilian holiday: nobody is on shift")
    base = hub.gunicorn()
    posting = time.monotonic()
    leads_post(base, LEADS)
    posted = time.monotonic() - posting
    hub.processes[-1].kill_group()  # the receiver is done: leave both cores to the workers
    assert InboundEvent.objects.filter(event_type="forms.lead").count() == LEADS
    assert DBTaskResult.objects.filter(task_path=EVENT_TASK, status="READY").count() == LEADS

    started = time.monotonic()
    for _ in range(WORKERS):
        hub.worker()
    wait_until(all_routed, timeout=150, what=f"{WORKERS} workers to route {LEADS} leads", hub=hub)
    seconds = time.monotonic() - started
    print(
        f"{LEADS} forms posted in {posted:.1f} s; {WORKERS} workers routed them in {seconds:.1f} s"
    )
    return seconds


def assert_one_current_assignment_per_lead() -> None:
    assert Lead.objects.count() == LEADS
    assert Assignment.objects.count() == LEADS  # no history: nothing routed twice
    current = Assignment.objects.filter(is_current=True)
    assert current.count() == LEADS
    assert set(current.values_list("lead_id", flat=True)) == set(
        Lead.objects.values_list("pk", flat=True)
    )
    assert not current.values("lead_id").annotate(n=Count("pk")).filter(n__gt=1).exists()
    assert set(current.values_list("status", flat=True)) == {AssignmentStatus.ASSIGNED}


def assert_work_was_shared() -> None:
    busy = {
        worker
        for ids in DBTaskResult.objects.filter(task_path=EVENT_TASK).values_list(
            "worker_ids", flat=True
        )
        for worker in ids
    }
    assert len(busy) >= 4, f"only {len(busy)} of {WORKERS} workers routed leads"


def choices_in_order() -> list[int]:
    """Who got each lead, in the order the decisions were taken.

    The assignment row is inserted while its worker holds the area's row lock, so the id the
    sequence hands out grows with the rotation turn.
    """
    return list(Assignment.objects.order_by("pk").values_list("salesperson_id", flat=True))


@pytest.mark.parametrize("strategy", [Strategy.ROUND_ROBIN, Strategy.WEIGHTED])
def test_eight_workers_share_1000_leads_equally_among_four(
    hub: HubProcesses, strategy: str
) -> None:
    area, people = area_with_team(strategy, (1, 1, 1, 1))

    seconds = route_in_parallel(hub)

    assert_one_current_assignment_per_lead()
    shares = Counter(Assignment.objects.values_list("salesperson_id", flat=True))
    assert shares == dict.fromkeys(people, 250), f"shares {shares} after {seconds:.1f} s"
    area.refresh_from_db()
    assert area.rotation_seq == LEADS
    memberships = AreaMembership.objects.filter(area=area)
    if strategy == Strategy.ROUND_ROBIN:
        assert sorted(memberships.values_list("last_turn", flat=True)) == [997, 998, 999, 1000]
    else:
        assert memberships.aggregate(s=Sum("current_weight"))["s"] == 0
    # Not only the totals: every round of four went to the four people.
    order = choices_in_order()
    assert all(sorted(order[i : i + 4]) == sorted(people) for i in range(0, LEADS, 4))
    assert_work_was_shared()


def test_eight_workers_share_1000_leads_three_to_one(hub: HubProcesses) -> None:
    area, (heavy, light) = area_with_team(Strategy.WEIGHTED, (3, 1))

    seconds = route_in_parallel(hub)

    assert_one_current_assignment_per_lead()
    shares = Counter(Assignment.objects.values_list("salesperson_id", flat=True))
    assert abs(shares[heavy] - 750) <= 1, f"shares {shares} after {seconds:.1f} s"
    assert abs(shares[light] - 250) <= 1, f"shares {shares} after {seconds:.1f} s"
    assert shares[heavy] + shares[light] == LEADS
    area.refresh_from_db()
    assert area.rotation_seq == LEADS
    memberships = AreaMembership.objects.filter(area=area)
    assert memberships.aggregate(s=Sum("current_weight"))["s"] == 0
    # Smooth weighted round robin: every four consecutive decisions give three to one.
    order = choices_in_order()
    assert all(order[i : i + 4].count(light) == 1 for i in range(0, LEADS, 4))
    assert_work_was_shared()
