"""Salespeople's working time: shifts, holidays and time off, and the gaps in an area's coverage.

Everything is loaded up front (`calendars_load`) so the questions asked while routing a lead —
who is on shift, when does a reply SLA expire — never touch the database.
"""

from __future__ import annotations

import bisect
import datetime
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

import holidays
from django.utils import timezone
from django.utils.translation import gettext as _

from routing.models import (
    Area,
    AreaMembership,
    CompanyHoliday,
    Salesperson,
    TimeOff,
    WorkingHours,
)

BRAZILIAN_STATES: frozenset[str] = frozenset(
    {
        "AC", "AL", "AM", "AP", "BA", "CE", "DF", "ES", "GO", "MA", "MG", "MS", "MT", "PA",
        "PB", "PE", "PI", "PR", "RJ", "RN", "RO", "RR", "RS", "SC", "SE", "SP", "TO",
    }
)  # fmt: skip

MINUTES_PER_DAY = 24 * 60
UTC = datetime.UTC

Segment = tuple[datetime.datetime, datetime.datetime]


def interval_end_minutes(t: datetime.time) -> int:
    """Minutes since midnight for an interval end; 00:00 means 24:00 (1440)."""
    minutes = t.hour * 60 + t.minute
    return minutes or MINUTES_PER_DAY


def _start_minutes(t: datetime.time) -> int:
    return t.hour * 60 + t.minute


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _wall(day: date, minutes: int, tz: ZoneInfo) -> datetime.datetime:
    """Local wall time `minutes` after the day's midnight, as UTC (1440 is the next midnight)."""
    day = day + timedelta(days=minutes // MINUTES_PER_DAY)
    minutes %= MINUTES_PER_DAY
    local = datetime.datetime.combine(day, datetime.time(minutes // 60, minutes % 60), tzinfo=tz)
    return local.astimezone(UTC)


def _require_aware(at: datetime.datetime) -> None:
    if timezone.is_naive(at):
        raise ValueError("calendar questions need an aware datetime")


@dataclass(frozen=True)
class Unavailable:
    code: str  # "inactive" | "holiday" | "time_off" | "off_shift"
    detail: str


@dataclass
class WorkCalendar:
    """Everything needed to answer availability questions for ONE salesperson, loaded up front.

    Holidays and time off are known only for the range it was loaded for; an inactive person
    has no working time at all.
    """

    intervals: dict[int, list[tuple[int, int]]]
    time_off: list[tuple[date, date, str]]
    holiday_names: dict[date, str]
    tz: ZoneInfo
    active: bool = True
    _day_cache: dict[date, list[Segment]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def _holiday(self, day: date) -> str | None:
        return self.holiday_names.get(day)

    def _time_off(self, day: date) -> tuple[date, date, str] | None:
        matching = [entry for entry in self.time_off if entry[0] <= day <= entry[1]]
        return max(matching, key=lambda entry: entry[1]) if matching else None

    def unavailable(self, at: datetime.datetime) -> Unavailable | None:
        """Why this person is not on shift at `at`; None when they are."""
        _require_aware(at)
        local = at.astimezone(self.tz)
        day = local.date()
        if not self.active:
            return Unavailable("inactive", _("inactive"))
        holiday = self._holiday(day)
        if holiday is not None:
            return Unavailable("holiday", _("holiday: %(name)s") % {"name": holiday})
        time_off = self._time_off(day)
        if time_off is not None:
            return Unavailable(
                "time_off",
                _("%(kind)s (until %(day)s)")
                % {"kind": time_off[2], "day": time_off[1].strftime("%d/%m/%Y")},
            )
        minute = local.hour * 60 + local.minute
        if any(start <= minute < end for start, end in self.intervals.get(day.weekday(), [])):
            return None
        return Unavailable("off_shift", _("off shift"))

    def is_working(self, at: datetime.datetime) -> bool:
        return self.unavailable(at) is None

    def _day_segments(self, day: date) -> list[Segment]:
        """The day's working time as UTC segments; empty on holidays and time off."""
        cached = self._day_cache.get(day)
        if cached is not None:
            return cached
        segments: list[Segment] = []
        if self.active and self._holiday(day) is None and self._time_off(day) is None:
            segments = [
                (_wall(day, start, self.tz), _wall(day, end, self.tz))
                for start, end in self.intervals.get(day.weekday(), [])
            ]
        self._day_cache[day] = segments
        return segments

    def segments(self, first: date, last: date) -> Iterator[Segment]:
        """Working time over local days first..last, in order, shifts across midnight joined."""
        pending: Segment | None = None
        day = first
        while day <= last:
            for start, end in self._day_segments(day):
                if pending is not None and start <= pending[1]:
                    pending = (pending[0], max(pending[1], end))
                    continue
                if pending is not None:
                    yield pending
                pending = (start, end)
            day += timedelta(days=1)
        if pending is not None:
            yield pending

    def add_working_minutes(
        self, start: datetime.datetime, minutes: int, *, horizon_days: int = 60
    ) -> datetime.datetime | None:
        """When `minutes` of working time have elapsed after `start` (UTC); None beyond the horizon.

        With 0 minutes: `start` itself when on shift, else the next shift's start.
        """
        _require_aware(start)
        if minutes < 0:
            raise ValueError("minutes must not be negative")
        start = start.astimezone(UTC)
        first = start.astimezone(self.tz).date()
        remaining = timedelta(minutes=minutes)
        for seg_start, seg_end in self.segments(first, first + timedelta(days=horizon_days)):
            if seg_end <= start:
                continue
            begin = max(seg_start, start)
            if remaining <= seg_end - begin:
                return begin + remaining
            remaining -= seg_end - begin
        return None

    def next_shift_start(
        self, after: datetime.datetime, *, horizon_days: int = 60
    ) -> datetime.datetime | None:
        """The first moment at or after `after` on shift (`after` itself when on shift now)."""
        return self.add_working_minutes(after, 0, horizon_days=horizon_days)

    def shift_minutes_between(self, start: datetime.datetime, end: datetime.datetime) -> int:
        """Whole working minutes elapsed in [start, end)."""
        _require_aware(start)
        _require_aware(end)
        if end <= start:
            return 0
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        first, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        total = timedelta()
        for seg_start, seg_end in self.segments(first, last):
            overlap = min(seg_end, end) - max(seg_start, start)
            if overlap > timedelta():
                total += overlap
        return int(total.total_seconds()) // 60


@functools.lru_cache(maxsize=256)
def _brazil_holidays(state: str, year: int) -> Mapping[date, str]:
    calendar = holidays.Brazil(years=year, subdiv=state or None)
    return MappingProxyType(dict(calendar.items()))


def holiday_names_for(
    *, first: date, last: date, state: str, company: dict[date, str]
) -> dict[date, str]:
    """Brazilian national holidays (plus the state's, if given) and company days in first..last."""
    state = state.upper()
    if state not in BRAZILIAN_STATES:
        state = ""
    names: dict[date, str] = {}
    for year in range(first.year, last.year + 1):
        for day, name in _brazil_holidays(state, year).items():
            if first <= day <= last:
                names[day] = name
    for day, name in company.items():
        if first <= day <= last:
            names[day] = f"{names[day]}; {name}" if day in names else name
    return dict(sorted(names.items()))


def _kind_label(kind: str) -> str:
    try:
        return str(TimeOff.Kind(kind).label)
    except ValueError:
        return kind


def calendars_load(
    *, salesperson_ids: Iterable[int], first: date, last: date
) -> dict[int, WorkCalendar]:
    """Calendars for many people over local days first..last, in four queries whatever their number.

    People with no working hours get an empty calendar (never on shift); unknown ids are left out.
    """
    if first > last:
        raise ValueError("first must not be after last")
    ids = sorted(set(salesperson_ids))
    if not ids:
        return {}
    people = list(
        Salesperson.objects.filter(pk__in=ids).values_list("pk", "holiday_state", "active")
    )
    hours: dict[int, dict[int, list[tuple[int, int]]]] = {}
    for person_id, weekday, starts, ends in WorkingHours.objects.filter(
        salesperson_id__in=ids
    ).values_list("salesperson_id", "weekday", "starts", "ends"):
        hours.setdefault(person_id, {}).setdefault(weekday, []).append(
            (_start_minutes(starts), interval_end_minutes(ends))
        )
    time_off: dict[int, list[tuple[date, date, str]]] = {}
    for person_id, first_day, last_day, kind in (
        TimeOff.objects.filter(salesperson_id__in=ids, first_day__lte=last, last_day__gte=first)
        .order_by("first_day")
        .values_list("salesperson_id", "first_day", "last_day", "kind")
    ):
        time_off.setdefault(person_id, []).append((first_day, last_day, _kind_label(kind)))
    company = dict(
        CompanyHoliday.objects.filter(date__range=(first, last)).values_list("date", "name")
    )
    tz = timezone.get_default_timezone()
    by_state: dict[str, dict[date, str]] = {}
    calendars: dict[int, WorkCalendar] = {}
    for person_id, state, active in people:
        if state not in by_state:
            by_state[state] = holiday_names_for(
                first=first, last=last, state=state, company=company
            )
        calendars[person_id] = WorkCalendar(
            intervals={day: _merge(spans) for day, spans in hours.get(person_id, {}).items()},
            time_off=time_off.get(person_id, []),
            holiday_names=dict(by_state[state]),
            tz=tz,
            active=active,
        )
    return calendars


@dataclass(frozen=True)
class CoverageGap:
    day: date
    weekday: int
    hour: int
    reason: str
    fallback_covers: bool


def _union(segment_lists: Iterable[Iterable[Segment]]) -> list[Segment]:
    merged: list[Segment] = []
    for start, end in sorted(s for segments in segment_lists for s in segments):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlaps(union: list[Segment], start: datetime.datetime, end: datetime.datetime) -> bool:
    # The only candidate is the last segment starting before `end`; union segments are disjoint.
    index = bisect.bisect_left(union, (end, end)) - 1
    return index >= 0 and union[index][1] > start


def coverage_gaps(
    *, area: Area, start: datetime.datetime | None = None, days: int = 7
) -> list[CoverageGap]:
    """Every local one-hour slot in the coming `days` days where no active member works at all.

    The area's fallback and the global duty salesperson do not close a gap; `fallback_covers`
    says whether one of them works in it.
    """
    tz = timezone.get_default_timezone()
    start = start if start is not None else timezone.now()
    _require_aware(start)
    local = start.astimezone(tz)
    first_day, first_hour = local.date(), local.hour
    slots = [
        (first_day + timedelta(days=(first_hour + n) // 24), (first_hour + n) % 24)
        for n in range(days * 24)
    ]
    if not slots:
        return []
    last_day = slots[-1][0]

    member_ids = set(
        AreaMembership.objects.filter(area=area, active=True, salesperson__active=True).values_list(
            "salesperson_id", flat=True
        )
    )
    backup_ids = set(
        Salesperson.objects.filter(is_duty=True, active=True).values_list("pk", flat=True)
    )
    if area.fallback_salesperson_id is not None:
        backup_ids.add(area.fallback_salesperson_id)
    calendars = calendars_load(
        salesperson_ids=member_ids | backup_ids, first=first_day, last=last_day
    )
    members = [calendars[pk] for pk in sorted(member_ids) if pk in calendars]
    backups = [calendars[pk] for pk in sorted(backup_ids) if pk in calendars]
    covered = _union(c.segments(first_day, last_day) for c in members)
    backup_covered = _union(c.segments(first_day, last_day) for c in backups)

    def reason(day: date) -> str:
        if not members:
            return _("no active members")
        names = [c.holiday_names.get(day) for c in members]
        if all(names):
            distinct = list(dict.fromkeys(name for name in names if name))
            return _("holiday: %(name)s") % {"name": ", ".join(distinct)}
        return _("nobody on shift")

    gaps: list[CoverageGap] = []
    for day, hour in slots:
        slot_start = _wall(day, hour * 60, tz)
        slot_end = _wall(day, (hour + 1) * 60, tz)
        if _overlaps(covered, slot_start, slot_end):
            continue
        gaps.append(
            CoverageGap(
                day=day,
                weekday=day.weekday(),
                hour=hour,
                reason=reason(day),
                fallback_covers=_overlaps(backup_covered, slot_start, slot_end),
            )
        )
    return gaps


def coverage_summary(gaps: list[CoverageGap]) -> list[tuple[date, int, str, list[tuple[int, int]]]]:
    """Consecutive gap hours of a day merged for display: (day, weekday, reason, [(from, to)])."""
    summary: list[tuple[date, int, str, list[tuple[int, int]]]] = []
    for gap in gaps:
        if summary and summary[-1][0] == gap.day and summary[-1][2] == gap.reason:
            ranges = summary[-1][3]
            if ranges[-1][1] == gap.hour:
                ranges[-1] = (ranges[-1][0], gap.hour + 1)
            else:
                ranges.append((gap.hour, gap.hour + 1))
        else:
            summary.append((gap.day, gap.weekday, gap.reason, [(gap.hour, gap.hour + 1)]))
    return summary
