"""Working calendars: shifts, lunch breaks, holidays, time off, working-minute arithmetic and the
hours an area leaves uncovered."""

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.utils import translation
from pytest_django import DjangoAssertNumQueries

from routing.calendar import (
    BRAZILIAN_STATES,
    CoverageGap,
    Unavailable,
    WorkCalendar,
    calendars_load,
    coverage_gaps,
    coverage_summary,
    holiday_names_for,
    interval_end_minutes,
)
from routing.models import Area, Salesperson, TimeOff
from tests.routing.factories import (
    AreaFactory,
    AreaMembershipFactory,
    CompanyHolidayFactory,
    SalespersonFactory,
    TimeOffFactory,
    WorkingHoursFactory,
    always_working,
)

SP = ZoneInfo("America/Sao_Paulo")
MONDAY = date(2026, 11, 23)
WEDNESDAY = date(2026, 11, 25)
LUNCH_BREAK = ((time(9), time(12)), (time(13), time(18)))

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    with translation.override("en"):
        yield


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=SP)


def office_hours(
    person: Salesperson,
    spans: tuple[tuple[time, time], ...] = LUNCH_BREAK,
    weekdays: range = range(5),
) -> None:
    for weekday in weekdays:
        for starts, ends in spans:
            WorkingHoursFactory(salesperson=person, weekday=weekday, starts=starts, ends=ends)


def calendar_of(person: Salesperson, first: date = MONDAY, days: int = 60) -> WorkCalendar:
    return calendars_load(
        salesperson_ids=[person.pk], first=first, last=first + timedelta(days=days)
    )[person.pk]


# --- Pure helpers ------------------------------------------------------------------------------


def test_an_interval_ending_at_midnight_ends_at_the_end_of_the_day() -> None:
    assert interval_end_minutes(time(0)) == 1440
    assert interval_end_minutes(time(18, 30)) == 1110


def test_brazilian_states_are_the_27_federative_units() -> None:
    assert len(BRAZILIAN_STATES) == 27
    assert {"SP", "RJ", "DF", "TO"} <= BRAZILIAN_STATES
    assert "XX" not in BRAZILIAN_STATES


def test_holiday_names_include_national_state_and_company_days() -> None:
    names = holiday_names_for(
        first=date(2026, 7, 1),
        last=date(2026, 12, 31),
        state="sp",
        company={date(2026, 12, 25): "Recesso", date(2027, 1, 2): "Fora do intervalo"},
    )
    assert names[date(2026, 7, 9)] == "Revolução Constitucionalista"
    assert names[date(2026, 11, 20)] == "Dia Nacional de Zumbi e da Consciência Negra"
    assert names[date(2026, 12, 25)] == "Natal; Recesso"
    assert date(2027, 1, 2) not in names
    assert date(2026, 4, 21) not in names


def test_an_unknown_state_only_gets_national_holidays() -> None:
    names = holiday_names_for(first=date(2026, 7, 9), last=date(2026, 7, 9), state="XX", company={})
    assert names == {}


def test_a_shift_across_a_dst_change_counts_real_minutes() -> None:
    new_york = WorkCalendar(
        intervals={6: [(0, 1440)]}, time_off=[], holiday_names={}, tz=ZoneInfo("America/New_York")
    )
    day = date(2026, 3, 8)  # clocks jump from 02:00 to 03:00
    start = datetime.combine(day, time(0), tzinfo=new_york.tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=new_york.tz)
    assert new_york.shift_minutes_between(start, end) == 23 * 60
    assert new_york.add_working_minutes(start, 3 * 60) == datetime(
        2026, 3, 8, 4, 0, tzinfo=new_york.tz
    )


# --- Availability ------------------------------------------------------------------------------


def test_a_lunch_break_takes_the_person_off_shift() -> None:
    person = SalespersonFactory()
    office_hours(person)
    calendar = calendar_of(person)
    assert calendar.is_working(at(WEDNESDAY, 11, 59)) is True
    assert calendar.unavailable(at(WEDNESDAY, 12, 0)) == Unavailable("off_shift", "off shift")
    assert calendar.is_working(at(WEDNESDAY, 12, 30)) is False
    assert calendar.is_working(at(WEDNESDAY, 13, 0)) is True
    assert calendar.is_working(at(WEDNESDAY, 18, 0)) is False
    assert calendar.is_working(at(WEDNESDAY, 8, 59)) is False


def test_an_aware_datetime_in_another_zone_is_read_as_local_time() -> None:
    person = SalespersonFactory()
    office_hours(person)
    calendar = calendar_of(person)
    assert calendar.is_working(datetime(2026, 11, 25, 14, 0, tzinfo=UTC)) is True  # 11:00 local
    assert calendar.is_working(datetime(2026, 11, 25, 15, 30, tzinfo=UTC)) is False  # 12:30


def test_hours_ending_at_midnight_cover_the_last_minute_of_the_day() -> None:
    person = SalespersonFactory()
    WorkingHoursFactory(salesperson=person, weekday=2, starts=time(18), ends=time(0))
    calendar = calendar_of(person)
    assert calendar.intervals == {2: [(1080, 1440)]}
    assert calendar.is_working(at(WEDNESDAY, 23, 59)) is True
    assert calendar.is_working(at(WEDNESDAY + timedelta(days=1), 0, 0)) is False


def test_overlapping_and_touching_intervals_are_merged() -> None:
    person = SalespersonFactory()
    office_hours(
        person, ((time(9), time(12)), (time(11), time(14)), (time(14), time(15))), range(1)
    )
    assert calendar_of(person).intervals == {0: [(540, 900)]}


def test_a_national_holiday_makes_the_person_unavailable_all_day() -> None:
    person = SalespersonFactory()
    always_working(person)
    calendar = calendar_of(person, first=date(2026, 11, 1))
    assert calendar.unavailable(at(date(2026, 12, 25), 10)) == Unavailable(
        "holiday", "holiday: Natal"
    )
    assert calendar.unavailable(at(date(2026, 11, 20), 0)) == Unavailable(
        "holiday", "holiday: Dia Nacional de Zumbi e da Consciência Negra"
    )
    assert calendar.is_working(at(date(2026, 12, 24), 23, 59)) is True


def test_a_state_holiday_counts_only_for_people_of_that_state() -> None:
    paulista = SalespersonFactory(holiday_state="SP")
    carioca = SalespersonFactory(holiday_state="RJ")
    nobody = SalespersonFactory()
    for person in (paulista, carioca, nobody):
        always_working(person)
    calendars = calendars_load(
        salesperson_ids=[paulista.pk, carioca.pk, nobody.pk],
        first=date(2026, 7, 1),
        last=date(2026, 7, 31),
    )
    thursday = at(date(2026, 7, 9), 10)
    assert calendars[paulista.pk].unavailable(thursday) == Unavailable(
        "holiday", "holiday: Revolução Constitucionalista"
    )
    assert calendars[carioca.pk].is_working(thursday) is True
    assert calendars[nobody.pk].is_working(thursday) is True


def test_a_company_holiday_makes_everyone_unavailable() -> None:
    person = SalespersonFactory()
    always_working(person)
    CompanyHolidayFactory(date=WEDNESDAY, name="Aniversário da empresa")
    assert calendar_of(person).unavailable(at(WEDNESDAY, 10)) == Unavailable(
        "holiday", "holiday: Aniversário da empresa"
    )


def test_time_off_says_until_when() -> None:
    person = SalespersonFactory()
    always_working(person)
    TimeOffFactory(salesperson=person, first_day=date(2026, 12, 21), last_day=date(2027, 1, 5))
    calendar = calendar_of(person, first=date(2026, 12, 1))
    assert calendar.unavailable(at(date(2026, 12, 21), 0)) == Unavailable(
        "time_off", "vacation (until 05/01/2027)"
    )
    assert calendar.unavailable(at(date(2027, 1, 5), 23, 59)) is not None
    assert calendar.is_working(at(date(2027, 1, 6), 0)) is True
    assert calendar.is_working(at(date(2026, 12, 20), 23, 59)) is True


def test_a_holiday_is_reported_before_time_off_and_time_off_before_the_shift() -> None:
    person = SalespersonFactory()
    office_hours(person)
    TimeOffFactory(
        salesperson=person,
        kind=TimeOff.Kind.SICK,
        first_day=date(2026, 12, 24),
        last_day=date(2026, 12, 26),
    )
    calendar = calendar_of(person, first=date(2026, 12, 1))
    assert calendar.unavailable(at(date(2026, 12, 25), 3)) == Unavailable(
        "holiday", "holiday: Natal"
    )
    assert calendar.unavailable(at(date(2026, 12, 24), 3)) == Unavailable(
        "time_off", "sick leave (until 26/12/2026)"
    )


def test_an_inactive_person_is_never_on_shift() -> None:
    person = SalespersonFactory(active=False)
    always_working(person)
    calendar = calendar_of(person)
    assert calendar.unavailable(at(WEDNESDAY, 10)) == Unavailable("inactive", "inactive")
    assert calendar.add_working_minutes(at(WEDNESDAY, 10), 30) is None


def test_a_person_without_hours_gets_an_empty_calendar_that_never_works() -> None:
    person = SalespersonFactory()
    calendar = calendar_of(person)
    assert calendar.intervals == {}
    assert calendar.is_working(at(WEDNESDAY, 10)) is False
    assert calendar.add_working_minutes(at(WEDNESDAY, 10), 30) is None
    assert calendar.next_shift_start(at(WEDNESDAY, 10)) is None
    assert calendar.shift_minutes_between(at(WEDNESDAY, 0), at(WEDNESDAY, 23)) == 0


# --- Working-minute arithmetic -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "minutes", "expected"),
    [
        pytest.param(at(WEDNESDAY, 10), 30, at(WEDNESDAY, 10, 30), id="within a shift"),
        pytest.param(at(WEDNESDAY, 11, 50), 30, at(WEDNESDAY, 13, 20), id="across lunch"),
        pytest.param(at(WEDNESDAY, 11, 30), 30, at(WEDNESDAY, 12), id="ending with the shift"),
        pytest.param(at(WEDNESDAY, 17, 50), 30, at(date(2026, 11, 26), 9, 20), id="overnight"),
        pytest.param(at(WEDNESDAY, 21), 30, at(date(2026, 11, 26), 9, 30), id="off shift start"),
        pytest.param(
            at(date(2026, 11, 27), 17, 30), 60, at(date(2026, 11, 30), 9, 30), id="weekend"
        ),
        pytest.param(at(date(2026, 12, 24), 17, 30), 60, at(date(2026, 12, 28), 9, 30), id="Natal"),
        pytest.param(at(WEDNESDAY, 9), 8 * 60 * 2, at(date(2026, 11, 26), 18), id="two full days"),
    ],
)
def test_working_minutes_skip_breaks_nights_weekends_and_holidays(
    start: datetime, minutes: int, expected: datetime
) -> None:
    person = SalespersonFactory()
    office_hours(person)
    due = calendar_of(person, first=date(2026, 11, 1)).add_working_minutes(start, minutes)
    assert due == expected
    assert due is not None
    assert due.tzinfo is UTC


def test_working_minutes_skip_time_off() -> None:
    person = SalespersonFactory()
    office_hours(person)
    TimeOffFactory(salesperson=person, first_day=date(2026, 11, 26), last_day=date(2026, 11, 27))
    calendar = calendar_of(person)
    assert calendar.add_working_minutes(at(WEDNESDAY, 17, 30), 60) == at(date(2026, 11, 30), 9, 30)


def test_zero_minutes_is_now_on_shift_and_the_next_shift_start_off_shift() -> None:
    person = SalespersonFactory()
    office_hours(person)
    calendar = calendar_of(person)
    assert calendar.add_working_minutes(at(WEDNESDAY, 10, 15), 0) == at(WEDNESDAY, 10, 15)
    assert calendar.add_working_minutes(at(WEDNESDAY, 12, 15), 0) == at(WEDNESDAY, 13)
    assert calendar.add_working_minutes(at(WEDNESDAY, 18), 0) == at(date(2026, 11, 26), 9)
    assert calendar.next_shift_start(at(date(2026, 11, 28), 10)) == at(date(2026, 11, 30), 9)
    assert calendar.next_shift_start(at(WEDNESDAY, 10, 15)) == at(WEDNESDAY, 10, 15)


def test_a_shift_across_midnight_is_continuous() -> None:
    person = SalespersonFactory()
    WorkingHoursFactory(salesperson=person, weekday=2, starts=time(22), ends=time(0))
    WorkingHoursFactory(salesperson=person, weekday=3, starts=time(0), ends=time(2))
    calendar = calendar_of(person)
    assert calendar.add_working_minutes(at(WEDNESDAY, 23, 30), 60) == at(date(2026, 11, 26), 0, 30)
    assert calendar.shift_minutes_between(at(WEDNESDAY, 21), at(date(2026, 11, 26), 3)) == 240


def test_no_due_time_when_the_horizon_has_not_enough_working_time() -> None:
    person = SalespersonFactory()
    office_hours(person)
    TimeOffFactory(salesperson=person, first_day=WEDNESDAY, last_day=date(2027, 3, 1))
    calendar = calendar_of(person, days=120)
    assert calendar.add_working_minutes(at(WEDNESDAY, 10), 30) is None
    assert calendar.add_working_minutes(at(WEDNESDAY, 10), 30, horizon_days=100) == at(
        date(2027, 3, 2), 9, 30
    )


def test_shift_minutes_between_counts_only_working_time() -> None:
    person = SalespersonFactory()
    office_hours(person)
    calendar = calendar_of(person)
    assert calendar.shift_minutes_between(at(WEDNESDAY, 11), at(WEDNESDAY, 14)) == 120
    assert calendar.shift_minutes_between(at(WEDNESDAY, 17), at(date(2026, 11, 26), 10)) == 120
    assert (
        calendar.shift_minutes_between(at(date(2026, 11, 27), 17), at(MONDAY + timedelta(7), 10))
        == 120
    )
    assert calendar.shift_minutes_between(at(WEDNESDAY, 14), at(WEDNESDAY, 11)) == 0
    assert calendar.shift_minutes_between(at(WEDNESDAY, 12), at(WEDNESDAY, 13)) == 0


def test_naive_datetimes_are_refused() -> None:
    calendar = WorkCalendar(intervals={}, time_off=[], holiday_names={}, tz=SP)
    with pytest.raises(ValueError, match="aware"):
        calendar.is_working(datetime(2026, 11, 25, 10, 0))


# --- Loading -----------------------------------------------------------------------------------


@pytest.mark.parametrize("people", [2, 50])
def test_loading_calendars_takes_four_queries_whatever_the_number_of_people(
    people: int, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    ids = []
    for _ in range(people):
        person = SalespersonFactory(holiday_state="SP")
        office_hours(person)
        TimeOffFactory(salesperson=person, first_day=WEDNESDAY, last_day=WEDNESDAY)
        ids.append(person.pk)
    CompanyHolidayFactory(date=MONDAY)
    with django_assert_num_queries(4):
        calendars = calendars_load(salesperson_ids=ids, first=MONDAY, last=MONDAY + timedelta(14))
    assert len(calendars) == people
    assert all(len(c.time_off) == 1 and MONDAY in c.holiday_names for c in calendars.values())


def test_loading_keeps_only_time_off_and_holidays_in_range_and_skips_unknown_people() -> None:
    person = SalespersonFactory()
    TimeOffFactory(salesperson=person, first_day=date(2026, 11, 1), last_day=date(2026, 11, 22))
    TimeOffFactory(salesperson=person, first_day=date(2026, 11, 20), last_day=MONDAY)
    CompanyHolidayFactory(date=MONDAY - timedelta(days=1))
    calendars = calendars_load(salesperson_ids=[person.pk, 999_999], first=MONDAY, last=WEDNESDAY)
    assert list(calendars) == [person.pk]
    assert calendars[person.pk].time_off == [(date(2026, 11, 20), MONDAY, "vacation")]
    assert calendars[person.pk].holiday_names == {}


def test_loading_nobody_needs_no_query(django_assert_num_queries: DjangoAssertNumQueries) -> None:
    with django_assert_num_queries(0):
        assert calendars_load(salesperson_ids=[], first=MONDAY, last=MONDAY) == {}


def test_loading_a_reversed_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="first"):
        calendars_load(salesperson_ids=[1], first=WEDNESDAY, last=MONDAY)


# --- Coverage ----------------------------------------------------------------------------------


def weekday_team(*names: str, area: Area | None = None) -> Area:
    """An area whose people work Monday to Friday 9–18, taking turns at lunch."""
    area = area or AreaFactory()
    for i, name in enumerate(names):
        person = SalespersonFactory(name=name)
        spans = LUNCH_BREAK if i % 2 == 0 else ((time(9), time(18)),)
        office_hours(person, spans)
        AreaMembershipFactory(area=area, salesperson=person)
    return area


def test_an_office_hours_team_leaves_nights_and_the_weekend_uncovered() -> None:
    area = weekday_team("Ana", "Bruno")
    gaps = coverage_gaps(area=area, start=at(MONDAY, 0))
    assert len(gaps) == 5 * 15 + 2 * 24
    assert {(g.day, g.hour) for g in gaps if g.day == MONDAY} == {
        (MONDAY, hour) for hour in [*range(9), *range(18, 24)]
    }
    assert all(g.reason == "nobody on shift" and g.fallback_covers is False for g in gaps)
    saturday = [g for g in gaps if g.weekday == 5]
    assert [g.hour for g in saturday] == list(range(24))


def test_a_lunch_break_not_covered_by_anyone_is_a_gap() -> None:
    area = weekday_team("Ana")
    gaps = coverage_gaps(area=area, start=at(MONDAY, 0), days=1)
    assert [g.hour for g in gaps] == [*range(9), 12, *range(18, 24)]


def test_a_slot_is_covered_by_a_single_working_minute() -> None:
    area = AreaFactory()
    person = SalespersonFactory()
    WorkingHoursFactory(salesperson=person, weekday=0, starts=time(9, 59), ends=time(10, 1))
    AreaMembershipFactory(area=area, salesperson=person)
    gaps = coverage_gaps(area=area, start=at(MONDAY, 0), days=1)
    assert [g.hour for g in gaps] == [*range(9), *range(11, 24)]


def test_a_holiday_is_a_whole_day_gap_named_after_it() -> None:
    area = weekday_team("Ana", "Bruno")
    gaps = coverage_gaps(area=area, start=at(date(2026, 12, 24), 0), days=2)
    christmas = [g for g in gaps if g.day == date(2026, 12, 25)]
    assert [g.hour for g in christmas] == list(range(24))
    assert {g.reason for g in christmas} == {"holiday: Natal"}
    assert {g.reason for g in gaps if g.day == date(2026, 12, 24)} == {"nobody on shift"}


def test_a_holiday_of_only_some_members_is_not_the_reason() -> None:
    area = weekday_team("Ana")
    carioca = SalespersonFactory(holiday_state="RJ")
    AreaMembershipFactory(area=area, salesperson=carioca)
    gaps = coverage_gaps(area=area, start=at(date(2026, 7, 9), 0), days=1)
    assert [g.hour for g in gaps] == [*range(9), 12, *range(18, 24)]  # Revolução is SP only
    paulistas = weekday_team("Sérgio", "Sílvia")
    Salesperson.objects.filter(memberships__area=paulistas).update(holiday_state="SP")
    gaps = coverage_gaps(area=paulistas, start=at(date(2026, 7, 9), 0), days=1)
    assert {g.reason for g in gaps} == {"holiday: Revolução Constitucionalista"}
    assert len(gaps) == 24


def test_inactive_people_and_memberships_do_not_cover() -> None:
    area = weekday_team("Ana", "Bruno")
    Salesperson.objects.filter(name="Ana").update(active=False)
    area.memberships.filter(salesperson__name="Bruno").update(active=False)
    gaps = coverage_gaps(area=area, start=at(MONDAY, 0), days=1)
    assert len(gaps) == 24
    assert {g.reason for g in gaps} == {"no active members"}


def test_the_fallback_does_not_close_a_gap_but_is_reported() -> None:
    area = weekday_team("Ana", "Bruno")
    fallback = SalespersonFactory(name="Fábio")
    WorkingHoursFactory(salesperson=fallback, weekday=5, starts=time(9), ends=time(13))
    area.fallback_salesperson = fallback
    area.save()
    gaps = coverage_gaps(area=area, start=at(MONDAY, 0))
    saturday = [g for g in gaps if g.weekday == 5]
    assert len(saturday) == 24
    assert [g.hour for g in saturday if g.fallback_covers] == [9, 10, 11, 12]
    assert not any(g.fallback_covers for g in gaps if g.weekday != 5)


def test_the_duty_salesperson_is_reported_as_covering_every_gap() -> None:
    area = weekday_team("Ana")
    always_working(SalespersonFactory(name="Plantão", is_duty=True))
    gaps = coverage_gaps(area=area, start=at(MONDAY, 0))
    assert len(gaps) == 5 * 16 + 2 * 24
    assert all(g.fallback_covers for g in gaps)


def test_an_inactive_duty_salesperson_covers_nothing() -> None:
    area = weekday_team("Ana")
    always_working(SalespersonFactory(name="Plantão", is_duty=True, active=False))
    assert not any(g.fallback_covers for g in coverage_gaps(area=area, start=at(MONDAY, 0)))


def test_coverage_starts_at_the_current_local_hour_by_default() -> None:
    area = weekday_team("Ana", "Bruno")
    with time_machine.travel(at(date(2026, 11, 27), 20, 37), tick=False):  # Friday
        gaps = coverage_gaps(area=area, days=1)
    assert [(g.day, g.hour) for g in gaps] == [
        *[(date(2026, 11, 27), hour) for hour in range(20, 24)],
        *[(date(2026, 11, 28), hour) for hour in range(20)],
    ]


def test_coverage_summary_merges_consecutive_hours_per_day() -> None:
    area = weekday_team("Ana")
    gaps = coverage_gaps(area=area, start=at(date(2026, 12, 24), 0), days=3)
    assert coverage_summary(gaps) == [
        (date(2026, 12, 24), 3, "nobody on shift", [(0, 9), (12, 13), (18, 24)]),
        (date(2026, 12, 25), 4, "holiday: Natal", [(0, 24)]),
        (date(2026, 12, 26), 5, "nobody on shift", [(0, 24)]),
    ]


def test_coverage_summary_of_hand_made_gaps() -> None:
    day = date(2026, 11, 23)

    def gap(hour: int, reason: str = "nobody on shift") -> CoverageGap:
        return CoverageGap(day=day, weekday=0, hour=hour, reason=reason, fallback_covers=False)

    assert coverage_summary([gap(1), gap(2), gap(5), gap(6), gap(7, "holiday: X")]) == [
        (day, 0, "nobody on shift", [(1, 3), (5, 7)]),
        (day, 0, "holiday: X", [(7, 8)]),
    ]
    assert coverage_summary([]) == []
