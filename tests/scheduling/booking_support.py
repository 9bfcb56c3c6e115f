"""Shared setup of the slot, booking and API tests: a team with office hours, a lead assigned to
one of them, a frozen clock, and Supabase's REST API answered at the HTTP boundary (respx)."""

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx
import time_machine
from django.utils import timezone

from kommo_hub.models import Lead
from routing.models import Area, Assignment, AssignmentKind, AssignmentStatus, Salesperson
from tests.factories import LeadFactory
from tests.routing.factories import (
    AreaFactory,
    AreaMembershipFactory,
    SalespersonFactory,
    WorkingHoursFactory,
)

SP = ZoneInfo("America/Sao_Paulo")
MONDAY = date(2026, 11, 23)
WEDNESDAY = date(2026, 11, 25)
THURSDAY = date(2026, 11, 26)
LUNCH_BREAK = ((time(9), time(12)), (time(13), time(18)))
SUPABASE_URL = "https://agenda.supabase.test"
APPOINTMENTS_URL = f"{SUPABASE_URL}/rest/v1/agendamentos"
# Shaped like a JWT: the supabase client refuses other keys.
SUPABASE_KEY = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl"
SUPABASE_UPDATED_AT = "2026-11-23T11:00:00.123456+00:00"


def at(day: date, hour: int, minute: int = 0, tz: ZoneInfo = SP) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=tz)


def office_hours(
    person: Salesperson,
    spans: tuple[tuple[time, time], ...] = LUNCH_BREAK,
    weekdays: Iterable[int] = range(5),
) -> Salesperson:
    for weekday in weekdays:
        for starts, ends in spans:
            WorkingHoursFactory(salesperson=person, weekday=weekday, starts=starts, ends=ends)
    return person


def assign(lead: Lead, person: Salesperson | None, area: Area | None) -> Assignment:
    return Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED if person else AssignmentStatus.WAITING,
        decided_at=timezone.now(),
    )


def meeting_area(**fields: Any) -> Area:
    values = {
        "slot_minutes": 30,
        "buffer_minutes": 0,
        "min_notice_minutes": 0,
        "booking_horizon_days": 14,
    }
    return AreaFactory(**(values | fields))


@dataclass
class Team:
    area: Area
    ana: Salesperson
    bruno: Salesperson
    lead: Lead


def team_build(**area_fields: Any) -> Team:
    """Ana and Bruno (office hours with a lunch break) in one area; a lead assigned to Ana."""
    area = meeting_area(**area_fields)
    ana = office_hours(SalespersonFactory(name="Ana Souza", kommo_user_id=9876543))
    bruno = office_hours(SalespersonFactory(name="Bruno Lima", kommo_user_id=9876544))
    for person in (ana, bruno):
        AreaMembershipFactory(area=area, salesperson=person)
    lead = LeadFactory(name="Maria Oliveira", kommo_lead_id=18754321)
    assign(lead, ana, area)
    return Team(area=area, ana=ana, bruno=bruno, lead=lead)


@pytest.fixture
def monday_morning() -> Iterator[None]:
    """The clock stands still on Monday 23/11/2026, 08:00 in São Paulo."""
    with time_machine.travel(at(MONDAY, 8), tick=False):
        yield


@pytest.fixture
def team(db: None, monday_morning: None) -> Team:
    return team_build()


@pytest.fixture
def supabase(settings: Any) -> Iterator[respx.MockRouter]:
    """Supabase configured; its REST API answers only the routes a test adds."""
    settings.SUPABASE_URL = SUPABASE_URL
    settings.SUPABASE_SERVICE_ROLE_KEY = SUPABASE_KEY
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


def stored(request: httpx.Request, **extra: Any) -> httpx.Response:
    """PostgREST's answer to an insert: the row as stored, with its id and timestamps."""
    row = json.loads(request.content)
    return httpx.Response(
        201,
        json=[
            {
                **row,
                "id": str(extra.pop("id", uuid.uuid4())),
                "created_at": SUPABASE_UPDATED_AT,
                "updated_at": SUPABASE_UPDATED_AT,
                **extra,
            }
        ],
    )


def postgrest_error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"code": code, "message": message, "details": None, "hint": None}
    )
