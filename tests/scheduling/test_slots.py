"""Free slots: working hours with breaks, minus time off, holidays, blocks and appointments with
their buffers; minimum notice, booking horizon, durations, wall-time grids across DST."""

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from routing.models import Area, Salesperson
from scheduling.models import AgendaBlock, AppointmentStatus
from scheduling.slots import (
    Slot,
    SlotRules,
    free_slots,
    slot_alternatives,
    slot_is_free,
    slots_for_lead,
    slots_for_salesperson,
)
from tests.factories import LeadFactory
from tests.routing.factories import (
    AreaFactory,
    AreaMembershipFactory,
    CompanyHolidayFactory,
    SalespersonFactory,
    TimeOffFactory,
    WorkingHoursFactory,
    always_working,
)
from tests.scheduling.factories import AgendaBlockFactory, AppointmentFactory

pytestmark = pytest.mark.django_db

SP = ZoneInfo("America/Sao_Paulo")
NY = ZoneInfo("America/New_York")
MONDAY = date(2026, 11, 23)
WEDNESDAY = date(2026, 11, 25)
SATURDAY = date(2026, 11, 28)
LUNCH_BREAK = ((time(9), time(12)), (time(13), time(18)))
RULES = SlotRules(
    duration_minutes=30, step_minutes=30, buffer_minutes=0, min_notice_minutes=0, horizon_days=14
)
WEDNESDAY_FULL = [
    "09:00", "09:30", "10:00", "10:30", "11:00", "11:30",
    "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00", "17:30",
]  # fmt: skip


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


def clock(slots: Iterable[Slot], tz: ZoneInfo = SP) -> list[str]:
    return [f"{slot.start.astimezone(tz):%H:%M}" for slot in slots]


def by_day(slots: Iterable[Slot], tz: ZoneInfo = SP) -> dict[date, list[str]]:
    days: dict[date, list[str]] = {}
    for slot in slots:
        local = slot.start.astimezone(tz)
        days.setdefault(local.date(), []).append(f"{local:%H:%M}")
    return days


def day_slots(
    person: Salesperson, day: date, rules: SlotRules = RULES, **kwargs: Any
) -> list[Slot]:
    return free_slots(
        salesperson_ids=[person.pk],
        rules=rules,
        start=at(day, 0),
        end=at(day + timedelta(days=1), 0),
        now=kwargs.pop("now", at(MONDAY, 0)),
        **kwargs,
    )


def meeting_area(**fields: Any) -> Area:
    values = {
        "slot_minutes": 30,
        "buffer_minutes": 0,
        "min_notice_minutes": 0,
        "booking_horizon_days": 14,
    }
    return AreaFactory(**(values | fields))


# --- The grid ----------------------------------------------------------------------------------


def test_a_day_with_a_lunch_break_gives_half_hour_slots_aligned_to_each_interval() -> None:
    person = office_hours(SalespersonFactory())

    slots = day_slots(person, WEDNESDAY)

    assert clock(slots) == WEDNESDAY_FULL
    assert slots[0] == Slot(
        start=datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        end=datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
        salesperson_id=person.pk,
    )


def test_the_grid_starts_at_each_interval_start_even_off_the_hour() -> None:
    person = office_hours(SalespersonFactory(), spans=((time(9, 15), time(11)),))

    assert clock(day_slots(person, WEDNESDAY)) == ["09:15", "09:45", "10:15"]


def test_a_longer_meeting_keeps_the_area_grid_and_must_fit_before_the_break() -> None:
    person = office_hours(SalespersonFactory())
    hour_long = SlotRules(
        duration_minutes=60,
        step_minutes=30,
        buffer_minutes=0,
        min_notice_minutes=0,
        horizon_days=14,
    )

    slots = day_slots(person, WEDNESDAY, rules=hour_long)

    assert clock(slots) == [
        "09:00", "09:30", "10:00", "10:30", "11:00",
        "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00", "16:30", "17:00",
    ]  # fmt: skip
    assert all(slot.end - slot.start == timedelta(hours=1) for slot in slots)


def test_nobody_works_on_a_day_without_hours() -> None:
    person = office_hours(SalespersonFactory())

    assert day_slots(person, SATURDAY) == []


def test_an_inactive_salesperson_has_no_slots_even_with_extra_availability() -> None:
    person = office_hours(SalespersonFactory(active=False))
    AgendaBlockFactory(
        salesperson=person,
        kind=AgendaBlock.Kind.AVAILABLE,
        starts_at=at(WEDNESDAY, 19),
        ends_at=at(WEDNESDAY, 20),
    )

    assert day_slots(person, WEDNESDAY) == []


# --- What takes time away --------------------------------------------------------------------


def test_an_active_appointment_takes_its_slot_and_a_cancelled_one_does_not() -> None:
    person = office_hours(SalespersonFactory())
    AppointmentFactory(
        salesperson=person, starts_at=at(WEDNESDAY, 10), ends_at=at(WEDNESDAY, 10, 30)
    )
    AppointmentFactory(
        salesperson=person,
        starts_at=at(WEDNESDAY, 14),
        ends_at=at(WEDNESDAY, 14, 30),
        status=AppointmentStatus.CANCELLED,
    )
    AppointmentFactory(starts_at=at(WEDNESDAY, 15), ends_at=at(WEDNESDAY, 15, 30))  # someone else

    slots = clock(day_slots(person, WEDNESDAY))

    assert slots == [s for s in WEDNESDAY_FULL if s != "10:00"]


def test_the_buffer_keeps_meetings_apart_on_both_sides() -> None:
    person = office_hours(SalespersonFactory())
    AppointmentFactory(
        salesperson=person, starts_at=at(WEDNESDAY, 10), ends_at=at(WEDNESDAY, 10, 30)
    )
    buffered = SlotRules(
        duration_minutes=30,
        step_minutes=30,
        buffer_minutes=15,
        min_notice_minutes=0,
        horizon_days=14,
    )

    slots = clock(day_slots(person, WEDNESDAY, rules=buffered))

    # 09:30–10:00 ends inside 09:45–10:00, 10:30 starts inside 10:30–10:45.
    assert slots[:3] == ["09:00", "11:00", "11:30"]


def test_an_appointment_off_the_grid_takes_every_slot_it_touches() -> None:
    person = office_hours(SalespersonFactory())
    AppointmentFactory(
        salesperson=person, starts_at=at(WEDNESDAY, 10, 10), ends_at=at(WEDNESDAY, 10, 40)
    )

    assert clock(day_slots(person, WEDNESDAY))[:4] == ["09:00", "09:30", "11:00", "11:30"]


def test_time_off_and_holidays_remove_whole_days() -> None:
    person = office_hours(SalespersonFactory())
    TimeOffFactory(salesperson=person, first_day=date(2026, 11, 24), last_day=date(2026, 11, 24))
    CompanyHolidayFactory(date=date(2026, 11, 26), name="Convenção de vendas")

    slots = free_slots(
        salesperson_ids=[person.pk],
        rules=RULES,
        start=at(date(2026, 11, 19), 0),
        end=at(SATURDAY, 0),
        now=at(date(2026, 11, 19), 0),
    )

    days = by_day(slots)
    # 20/11 is the national Black Consciousness Day; 24/11 time off; 26/11 the company's day.
    assert sorted(days) == [date(2026, 11, 19), date(2026, 11, 23), WEDNESDAY, date(2026, 11, 27)]
    assert all(times == WEDNESDAY_FULL for times in days.values())


def test_a_blocked_period_removes_its_slots_without_moving_the_grid() -> None:
    person = office_hours(SalespersonFactory())
    AgendaBlockFactory(
        salesperson=person, starts_at=at(WEDNESDAY, 14), ends_at=at(WEDNESDAY, 14, 45)
    )
    AgendaBlockFactory(
        salesperson=person, starts_at=at(WEDNESDAY, 9), ends_at=at(WEDNESDAY, 12), deleted=True
    )

    assert clock(day_slots(person, WEDNESDAY)) == [
        s for s in WEDNESDAY_FULL if s not in ("14:00", "14:30")
    ]


def test_extra_availability_adds_time_outside_the_weekly_hours() -> None:
    person = office_hours(SalespersonFactory())
    AgendaBlockFactory(
        salesperson=person,
        kind=AgendaBlock.Kind.AVAILABLE,
        starts_at=at(SATURDAY, 10),
        ends_at=at(SATURDAY, 12),
    )
    AgendaBlockFactory(
        salesperson=person,
        kind=AgendaBlock.Kind.AVAILABLE,
        starts_at=at(WEDNESDAY, 18),
        ends_at=at(WEDNESDAY, 19),
    )

    assert clock(day_slots(person, SATURDAY)) == ["10:00", "10:30", "11:00", "11:30"]
    # Joined to the afternoon interval: the grid goes on from 13:00.
    assert clock(day_slots(person, WEDNESDAY))[-3:] == ["17:30", "18:00", "18:30"]


# --- Notice and horizon ----------------------------------------------------------------------


def test_minimum_notice_hides_slots_starting_too_soon() -> None:
    person = office_hours(SalespersonFactory())
    rules = SlotRules(
        duration_minutes=30,
        step_minutes=30,
        buffer_minutes=0,
        min_notice_minutes=60,
        horizon_days=14,
    )

    slots = day_slots(person, WEDNESDAY, rules=rules, now=at(WEDNESDAY, 10, 10))

    assert clock(slots)[:2] == ["11:30", "13:00"]


def test_the_booking_horizon_ends_the_offer() -> None:
    person = office_hours(SalespersonFactory())
    rules = SlotRules(
        duration_minutes=30, step_minutes=30, buffer_minutes=0, min_notice_minutes=0, horizon_days=2
    )

    slots = free_slots(
        salesperson_ids=[person.pk],
        rules=rules,
        start=at(MONDAY, 0),
        end=at(MONDAY + timedelta(days=10), 0),
        now=at(MONDAY, 12, 10),
    )

    days = by_day(slots)
    assert sorted(days) == [MONDAY, date(2026, 11, 24), WEDNESDAY]
    assert days[MONDAY][0] == "13:00"
    assert days[WEDNESDAY] == ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]


# --- Daylight saving time -------------------------------------------------------------------


@pytest.fixture
def new_york(settings: Any) -> None:
    settings.TIME_ZONE = "America/New_York"


@pytest.mark.usefixtures("new_york")
def test_the_grid_follows_wall_time_across_the_spring_forward_switch() -> None:
    person = office_hours(SalespersonFactory(), spans=((time(9), time(12)),), weekdays=range(7))
    saturday, monday = date(2026, 3, 7), date(2026, 3, 9)  # clocks jump 02:00 → 03:00 on Sunday

    slots = free_slots(
        salesperson_ids=[person.pk],
        rules=RULES,
        start=at(saturday, 0, tz=NY),
        end=at(monday + timedelta(days=1), 0, tz=NY),
        now=at(saturday, 0, tz=NY),
    )

    morning = ["09:00", "09:30", "10:00", "10:30", "11:00", "11:30"]
    assert by_day(slots, NY) == {saturday: morning, date(2026, 3, 8): morning, monday: morning}
    assert slots[0].start == datetime(2026, 3, 7, 14, 0, tzinfo=UTC)  # EST, UTC−5
    assert slots[6].start == datetime(2026, 3, 8, 13, 0, tzinfo=UTC)  # EDT, UTC−4
    assert all(slot.end - slot.start == timedelta(minutes=30) for slot in slots)


@pytest.mark.usefixtures("new_york")
def test_a_23_hour_day_offers_23_hourly_slots_and_skips_the_missing_hour() -> None:
    person = SalespersonFactory()
    always_working(person)
    day = date(2026, 3, 8)
    hourly = SlotRules(
        duration_minutes=60,
        step_minutes=60,
        buffer_minutes=0,
        min_notice_minutes=0,
        horizon_days=14,
    )

    slots = free_slots(
        salesperson_ids=[person.pk],
        rules=hourly,
        start=at(day, 0, tz=NY),
        end=at(day + timedelta(days=1), 0, tz=NY),
        now=at(day - timedelta(days=1), 0, tz=NY),
    )

    assert clock(slots, NY) == [f"{hour:02d}:00" for hour in range(24) if hour != 2]
    assert all(slot.end - slot.start == timedelta(hours=1) for slot in slots)


@pytest.mark.usefixtures("new_york")
def test_a_25_hour_day_offers_each_wall_hour_once() -> None:
    person = SalespersonFactory()
    always_working(person)
    day = date(2026, 11, 1)  # clocks go back 02:00 → 01:00
    hourly = SlotRules(
        duration_minutes=60,
        step_minutes=60,
        buffer_minutes=0,
        min_notice_minutes=0,
        horizon_days=14,
    )

    slots = free_slots(
        salesperson_ids=[person.pk],
        rules=hourly,
        start=at(day, 0, tz=NY),
        end=at(day + timedelta(days=1), 0, tz=NY),
        now=at(day - timedelta(days=1), 0, tz=NY),
    )

    assert clock(slots, NY) == [f"{hour:02d}:00" for hour in range(24)]
    assert len({slot.start for slot in slots}) == 24
    assert all(slot.end - slot.start == timedelta(hours=1) for slot in slots)


@pytest.mark.usefixtures("new_york")
def test_the_horizon_counts_wall_clock_days_across_a_dst_switch() -> None:
    person = office_hours(SalespersonFactory(), spans=((time(8), time(10)),), weekdays=range(7))
    one_day = SlotRules(
        duration_minutes=30, step_minutes=30, buffer_minutes=0, min_notice_minutes=0, horizon_days=1
    )
    saturday = date(2026, 3, 7)

    slots = free_slots(
        salesperson_ids=[person.pk],
        rules=one_day,
        start=at(saturday, 0, tz=NY),
        end=at(saturday + timedelta(days=3), 0, tz=NY),
        now=at(saturday, 8, tz=NY),
    )

    # Saturday 08:00 + 1 day = Sunday 08:00 local (23 real hours): nothing on Sunday.
    assert by_day(slots, NY) == {saturday: ["08:00", "08:30", "09:00", "09:30"]}


# --- Checks used when booking ------------------------------------------------------------------


def test_a_slot_is_free_only_on_the_grid_and_when_nothing_takes_it() -> None:
    person = office_hours(SalespersonFactory())
    taken = AppointmentFactory(
        salesperson=person, starts_at=at(WEDNESDAY, 10), ends_at=at(WEDNESDAY, 10, 30)
    )
    now = at(MONDAY, 8)

    def free(hour: int, minute: int = 0, **kwargs: Any) -> bool:
        return slot_is_free(
            salesperson_id=person.pk,
            rules=RULES,
            start=at(WEDNESDAY, hour, minute),
            now=now,
            **kwargs,
        )

    assert free(9) is True
    assert free(9, 15) is False  # off the grid
    assert free(10) is False
    assert free(10, exclude_appointment_id=taken.pk) is True
    assert free(12) is False  # lunch
    assert (
        slot_is_free(salesperson_id=person.pk, rules=RULES, start=at(MONDAY, 7), now=now) is False
    )


def test_alternatives_are_the_three_nearest_free_slots_in_time_order() -> None:
    person = office_hours(SalespersonFactory())
    for hour in (10, 11):
        AppointmentFactory(
            salesperson=person, starts_at=at(WEDNESDAY, hour), ends_at=at(WEDNESDAY, hour, 30)
        )

    alternatives = slot_alternatives(
        salesperson_id=person.pk, rules=RULES, around=at(WEDNESDAY, 10), now=at(MONDAY, 8)
    )

    assert [a.start.astimezone(SP) for a in alternatives] == [
        at(WEDNESDAY, 9),
        at(WEDNESDAY, 9, 30),
        at(WEDNESDAY, 10, 30),
    ]


# --- Whose slots -------------------------------------------------------------------------------


def test_a_salesperson_s_slots_follow_their_area_rules(settings: Any) -> None:
    person = office_hours(SalespersonFactory())
    area = meeting_area(slot_minutes=45, min_notice_minutes=0)
    AreaMembershipFactory(area=area, salesperson=person)

    offer = slots_for_salesperson(
        salesperson=person, start=at(WEDNESDAY, 0), days=1, now=at(MONDAY, 8)
    )

    assert offer.area == area
    assert offer.rules.duration_minutes == 45
    assert clock(offer.slots) == [
        "09:00", "09:45", "10:30", "11:15",
        "13:00", "13:45", "14:30", "15:15", "16:00", "16:45",
    ]  # fmt: skip


def test_a_lead_gets_its_own_salesperson_s_slots() -> None:
    area = meeting_area()
    owner = office_hours(SalespersonFactory(name="Ana"))
    other = office_hours(SalespersonFactory(name="Bruno"))
    for person in (owner, other):
        AreaMembershipFactory(area=area, salesperson=person)
    lead = LeadFactory()
    _assign(lead, owner, area)

    offer = slots_for_lead(lead=lead, start=at(WEDNESDAY, 0), days=1, now=at(MONDAY, 8))

    assert offer is not None
    assert offer.owner == owner
    assert offer.fallback is False
    assert {slot.salesperson_id for slot in offer.slots} == {owner.pk}
    assert clock(offer.slots) == WEDNESDAY_FULL


def test_when_the_owner_has_nothing_within_the_horizon_the_area_s_others_are_offered() -> None:
    area = meeting_area(booking_horizon_days=5)
    owner = office_hours(SalespersonFactory(name="Ana"))
    bruno = office_hours(SalespersonFactory(name="Bruno"), spans=((time(9), time(10)),))
    carla = office_hours(SalespersonFactory(name="Carla"), spans=((time(9, 30), time(10, 30)),))
    retired = office_hours(SalespersonFactory(name="Davi", active=False))
    for person in (owner, bruno, carla, retired):
        AreaMembershipFactory(area=area, salesperson=person)
    TimeOffFactory(salesperson=owner, first_day=MONDAY, last_day=MONDAY + timedelta(days=10))
    lead = LeadFactory()
    _assign(lead, owner, area)

    offer = slots_for_lead(lead=lead, start=at(WEDNESDAY, 0), days=1, now=at(MONDAY, 8))

    assert offer is not None
    assert offer.owner == owner
    assert offer.fallback is True
    assert [(clock([s])[0], s.salesperson_id) for s in offer.slots] == [
        ("09:00", bruno.pk),
        ("09:30", bruno.pk),
        ("09:30", carla.pk),
        ("10:00", carla.pk),
    ]
    assert offer.people == {bruno.pk: bruno, carla.pk: carla}


def test_an_owner_busy_only_in_the_asked_window_is_no_reason_to_fall_back() -> None:
    area = meeting_area()
    owner = office_hours(SalespersonFactory(), weekdays=[3])  # Thursdays only
    AreaMembershipFactory(area=area, salesperson=owner)
    AreaMembershipFactory(area=area, salesperson=office_hours(SalespersonFactory()))
    lead = LeadFactory()
    _assign(lead, owner, area)

    offer = slots_for_lead(lead=lead, start=at(WEDNESDAY, 0), days=1, now=at(MONDAY, 8))

    assert offer is not None
    assert offer.fallback is False
    assert offer.slots == []


def test_a_lead_nobody_was_assigned_to_has_no_slots() -> None:
    assert slots_for_lead(lead=LeadFactory(), now=at(MONDAY, 8)) is None


def test_slot_times_are_aware_utc() -> None:
    person = office_hours(SalespersonFactory())

    slots = day_slots(person, WEDNESDAY)

    assert all(
        timezone.is_aware(slot.start) and slot.start.utcoffset() == timedelta() for slot in slots
    )


def _assign(lead: Any, person: Salesperson, area: Area) -> None:
    from routing.models import Assignment, AssignmentKind, AssignmentStatus

    Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED,
        decided_at=timezone.now(),
    )
