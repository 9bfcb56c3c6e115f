"""Free meeting slots: a salesperson's working time minus everything that takes it.

Selectors only (reads). For each salesperson:

    open  = working hours (routing.calendar: weekly intervals with breaks, minus holidays and
            time off)  ∪  AgendaBlock "available" (extra time outside the weekly hours)
    taken = AgendaBlock "blocked"  ∪  active appointments of the hub's mirror, each widened by
            the area's buffer on both sides
    slots = grid points of each open interval, `step` apart in LOCAL WALL TIME from the
            interval's start (09:00, 09:30, …), whose [start, start + duration) fits inside the
            interval, touches nothing taken, starts at least `min_notice` from now and before
            the booking horizon (now + horizon days, wall clock).

The grid is walked in wall time and each point is converted to UTC on its own, so a DST switch
shifts nothing: 09:00 stays 09:00 the day after. A wall time that does not exist (the skipped
hour of a spring-forward night) is no slot; on a fall-back night the repeated hour is offered
once. A meeting's end is its UTC start plus its duration (it really lasts that long).
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from kommo_hub.models import Lead
from routing.calendar import Segment, calendars_load
from routing.models import Area, AreaMembership, Assignment, Salesperson
from scheduling.models import ACTIVE_STATUSES, AgendaBlock, Appointment

UTC = datetime.UTC
# Defaults when a salesperson belongs to no area: the Area model's own defaults.
DEFAULT_SLOT_MINUTES = 30
DEFAULT_BUFFER_MINUTES = 0
DEFAULT_MIN_NOTICE_MINUTES = 120
DEFAULT_HORIZON_DAYS = 14
# How far a single query may look ahead (and how far alternatives are searched).
MAX_DAYS = 60


@dataclass(frozen=True)
class SlotRules:
    """An area's meeting rules, with the duration one request asks for."""

    duration_minutes: int
    step_minutes: int
    buffer_minutes: int
    min_notice_minutes: int
    horizon_days: int

    @classmethod
    def for_area(cls, area: Area | None, *, duration_minutes: int | None = None) -> SlotRules:
        step = area.slot_minutes if area is not None else DEFAULT_SLOT_MINUTES
        step = max(step, 1)
        return cls(
            duration_minutes=duration_minutes or step,
            step_minutes=step,
            buffer_minutes=area.buffer_minutes if area is not None else DEFAULT_BUFFER_MINUTES,
            min_notice_minutes=(
                area.min_notice_minutes if area is not None else DEFAULT_MIN_NOTICE_MINUTES
            ),
            horizon_days=area.booking_horizon_days if area is not None else DEFAULT_HORIZON_DAYS,
        )

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    @property
    def buffer(self) -> timedelta:
        return timedelta(minutes=self.buffer_minutes)

    def earliest(self, now: datetime.datetime) -> datetime.datetime:
        return now + timedelta(minutes=self.min_notice_minutes)

    def horizon_end(self, now: datetime.datetime, tz: ZoneInfo) -> datetime.datetime:
        """now + horizon days on the wall clock (a 23- or 25-hour day still counts as one)."""
        return wall_add(now, days=self.horizon_days, tz=tz)


@dataclass(frozen=True, order=True)
class Slot:
    start: datetime.datetime  # UTC
    end: datetime.datetime  # UTC
    salesperson_id: int


@dataclass(frozen=True)
class SlotOffer:
    """What the slots endpoint answers: whose slots, under which rules, and the slots."""

    rules: SlotRules
    owner: Salesperson | None
    area: Area | None
    slots: list[Slot]
    fallback: bool = False
    people: dict[int, Salesperson] = field(default_factory=dict)


def local_tz() -> ZoneInfo:
    tz = timezone.get_default_timezone()
    assert isinstance(tz, ZoneInfo)
    return tz


def wall_add(moment: datetime.datetime, *, days: int, tz: ZoneInfo) -> datetime.datetime:
    """`moment` plus whole days on the local wall clock, in UTC."""
    local = moment.astimezone(tz)
    return (local + timedelta(days=days)).astimezone(UTC)


def _merge(segments: Iterable[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for start, end in sorted(segments):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _overlaps(taken: list[Segment], start: datetime.datetime, end: datetime.datetime) -> bool:
    # `taken` is merged (disjoint, sorted): only the last interval starting before `end` matters.
    index = bisect.bisect_left(taken, (end, end)) - 1
    return index >= 0 and taken[index][1] > start


def _grid(
    *,
    open_segments: list[Segment],
    taken: list[Segment],
    first: datetime.datetime,
    last: datetime.datetime,
    rules: SlotRules,
    tz: ZoneInfo,
    salesperson_id: int,
) -> list[Slot]:
    """Slots starting in [first, last) on each open segment's wall-time grid."""
    step = timedelta(minutes=rules.step_minutes)
    duration = rules.duration
    slots: list[Slot] = []
    for seg_start, seg_end in open_segments:
        if seg_end <= first or seg_start >= last:
            continue
        origin = seg_start.astimezone(tz).replace(tzinfo=None)  # naive wall time
        # Jump close to `first` (an hour early: a DST switch moves wall against UTC by one).
        skip = max(timedelta(), first - seg_start - timedelta(hours=2))
        point = origin + step * (skip // step)
        while True:
            start = point.replace(tzinfo=tz).astimezone(UTC)
            if start >= seg_end or start >= last:
                break
            wall = point
            point += step
            if start.astimezone(tz).replace(tzinfo=None) != wall:
                continue  # this wall time does not exist (spring-forward gap)
            end = start + duration
            if start < first or start < seg_start or end > seg_end:
                continue
            if _overlaps(taken, start, end):
                continue
            slots.append(Slot(start=start, end=end, salesperson_id=salesperson_id))
    return slots


def free_slots(
    *,
    salesperson_ids: Sequence[int],
    rules: SlotRules,
    start: datetime.datetime,
    end: datetime.datetime,
    now: datetime.datetime | None = None,
    exclude_appointment_id: int | None = None,
) -> list[Slot]:
    """Every free slot of these people starting in [start, end), within notice and horizon.

    Sorted by start, then by the order of `salesperson_ids`. A constant number of queries,
    whatever the number of people.
    """
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValueError("slot questions need aware datetimes")
    ids = list(dict.fromkeys(salesperson_ids))
    now = now or timezone.now()
    tz = local_tz()
    first = max(start, rules.earliest(now)).astimezone(UTC)
    last = min(end, rules.horizon_end(now, tz)).astimezone(UTC)
    if not ids or first >= last:
        return []
    # Local days touched, one more each side: shifts across midnight and the buffers.
    first_day = first.astimezone(tz).date() - timedelta(days=1)
    last_day = (last + rules.duration).astimezone(tz).date() + timedelta(days=1)
    calendars = calendars_load(salesperson_ids=ids, first=first_day, last=last_day)
    load_from = first - rules.duration - rules.buffer - timedelta(days=1)
    load_to = last + rules.duration + rules.buffer + timedelta(days=1)

    taken: dict[int, list[Segment]] = {pk: [] for pk in ids}
    appointments = Appointment.objects.filter(
        salesperson_id__in=ids,
        status__in=ACTIVE_STATUSES,
        starts_at__lt=load_to,
        ends_at__gt=load_from,
    )
    if exclude_appointment_id is not None:
        appointments = appointments.exclude(pk=exclude_appointment_id)
    for person_id, a_start, a_end in appointments.values_list(
        "salesperson_id", "starts_at", "ends_at"
    ):
        taken[person_id].append((a_start - rules.buffer, a_end + rules.buffer))
    extra: dict[int, list[Segment]] = {pk: [] for pk in ids}
    for person_id, kind, b_start, b_end in AgendaBlock.objects.filter(
        salesperson_id__in=ids, deleted=False, starts_at__lt=load_to, ends_at__gt=load_from
    ).values_list("salesperson_id", "kind", "starts_at", "ends_at"):
        if kind == AgendaBlock.Kind.BLOCKED:
            taken[person_id].append((b_start, b_end))
        elif kind == AgendaBlock.Kind.AVAILABLE:
            extra[person_id].append((b_start, b_end))

    slots: list[Slot] = []
    for person_id in ids:
        calendar = calendars.get(person_id)
        if calendar is None or not calendar.active:
            continue
        # Taken time is checked per slot (not cut out of the open intervals), so a block or an
        # appointment off the grid never shifts the grid of the rest of the interval.
        open_segments = _merge([*calendar.segments(first_day, last_day), *extra[person_id]])
        slots.extend(
            _grid(
                open_segments=open_segments,
                taken=_merge(taken[person_id]),
                first=first,
                last=last,
                rules=rules,
                tz=tz,
                salesperson_id=person_id,
            )
        )
    order = {pk: index for index, pk in enumerate(ids)}
    slots.sort(key=lambda slot: (slot.start, order[slot.salesperson_id]))
    return slots


def slot_is_free(
    *,
    salesperson_id: int,
    rules: SlotRules,
    start: datetime.datetime,
    now: datetime.datetime | None = None,
    exclude_appointment_id: int | None = None,
) -> bool:
    """Is [start, start + duration) one of this person's free slots (same computation)?"""
    found = free_slots(
        salesperson_ids=[salesperson_id],
        rules=rules,
        start=start,
        end=start + timedelta(microseconds=1),
        now=now,
        exclude_appointment_id=exclude_appointment_id,
    )
    return any(slot.start == start for slot in found)


def slot_alternatives(
    *,
    salesperson_id: int,
    rules: SlotRules,
    around: datetime.datetime,
    count: int = 3,
    now: datetime.datetime | None = None,
    exclude_appointment_id: int | None = None,
    skip_start: datetime.datetime | None = None,
) -> list[Slot]:
    """The `count` free slots nearest to `around` (before or after it), in time order;
    none starting at `skip_start`."""
    now = now or timezone.now()
    tz = local_tz()
    candidates = free_slots(
        salesperson_ids=[salesperson_id],
        rules=rules,
        start=now,
        end=rules.horizon_end(now, tz),
        now=now,
        exclude_appointment_id=exclude_appointment_id,
    )
    candidates = [slot for slot in candidates if slot.start != skip_start]
    nearest = sorted(candidates, key=lambda slot: (abs(slot.start - around), slot.start))
    return sorted(nearest[:count])


def salesperson_area(*, salesperson_id: int) -> Area | None:
    """The area whose meeting rules apply to this person: their first active membership."""
    membership = (
        AreaMembership.objects.filter(salesperson_id=salesperson_id, active=True, area__active=True)
        .select_related("area")
        .order_by("priority", "area__name", "pk")
        .first()
    )
    return membership.area if membership is not None else None


def lead_current_assignment(*, lead_id: int) -> Assignment | None:
    return (
        Assignment.objects.filter(lead_id=lead_id, is_current=True)
        .select_related("salesperson", "area")
        .first()
    )


def booking_area(*, lead_id: int | None, salesperson_id: int) -> Area | None:
    """The lead's area when this person serves it (owner or member), else the person's own."""
    if lead_id is not None:
        assignment = lead_current_assignment(lead_id=lead_id)
        area = assignment.area if assignment is not None else None
        if area is not None and assignment is not None:
            serves = assignment.salesperson_id == salesperson_id
            if (
                serves
                or AreaMembership.objects.filter(
                    area=area, salesperson_id=salesperson_id, active=True
                ).exists()
            ):
                return area
    return salesperson_area(salesperson_id=salesperson_id)


def _window(
    *, start: datetime.datetime | None, days: int | None, rules: SlotRules, now: datetime.datetime
) -> tuple[datetime.datetime, datetime.datetime]:
    tz = local_tz()
    begin = start if start is not None else now
    span = days if days is not None else rules.horizon_days
    return begin, wall_add(begin, days=min(max(span, 1), MAX_DAYS), tz=tz)


def slots_for_salesperson(
    *,
    salesperson: Salesperson,
    start: datetime.datetime | None = None,
    days: int | None = None,
    duration_minutes: int | None = None,
    now: datetime.datetime | None = None,
) -> SlotOffer:
    """One person's free slots from `start` (default now) for `days` (default: the horizon)."""
    now = now or timezone.now()
    area = salesperson_area(salesperson_id=salesperson.pk)
    rules = SlotRules.for_area(area, duration_minutes=duration_minutes)
    begin, end = _window(start=start, days=days, rules=rules, now=now)
    slots = free_slots(salesperson_ids=[salesperson.pk], rules=rules, start=begin, end=end, now=now)
    return SlotOffer(
        rules=rules, owner=salesperson, area=area, slots=slots, people={salesperson.pk: salesperson}
    )


def slots_for_lead(
    *,
    lead: Lead,
    start: datetime.datetime | None = None,
    days: int | None = None,
    duration_minutes: int | None = None,
    now: datetime.datetime | None = None,
) -> SlotOffer | None:
    """The slots of the lead's current salesperson; when they have none within the booking
    horizon (or the lead waits for one), those of the area's other active members.

    None when the lead has no current assignment with a salesperson or an area.
    """
    now = now or timezone.now()
    assignment = lead_current_assignment(lead_id=lead.pk)
    if assignment is None or (assignment.salesperson is None and assignment.area is None):
        return None
    owner = assignment.salesperson
    area = assignment.area or (
        salesperson_area(salesperson_id=owner.pk) if owner is not None else None
    )
    rules = SlotRules.for_area(area, duration_minutes=duration_minutes)
    begin, end = _window(start=start, days=days, rules=rules, now=now)
    if owner is not None:
        slots = free_slots(salesperson_ids=[owner.pk], rules=rules, start=begin, end=end, now=now)
        if slots or _has_any_slot(salesperson_id=owner.pk, rules=rules, now=now):
            return SlotOffer(
                rules=rules, owner=owner, area=area, slots=slots, people={owner.pk: owner}
            )
    if area is None:
        return SlotOffer(rules=rules, owner=owner, area=None, slots=[], fallback=True)
    members = Salesperson.objects.filter(
        memberships__area=area, memberships__active=True, active=True
    )
    if owner is not None:
        members = members.exclude(pk=owner.pk)
    others = list(members.order_by("memberships__priority", "name", "pk"))
    slots = free_slots(
        salesperson_ids=[person.pk for person in others],
        rules=rules,
        start=begin,
        end=end,
        now=now,
    )
    used = {slot.salesperson_id for slot in slots}
    return SlotOffer(
        rules=rules,
        owner=owner,
        area=area,
        slots=slots,
        fallback=True,
        people={person.pk: person for person in others if person.pk in used},
    )


def _has_any_slot(*, salesperson_id: int, rules: SlotRules, now: datetime.datetime) -> bool:
    return bool(
        free_slots(
            salesperson_ids=[salesperson_id],
            rules=rules,
            start=now,
            end=rules.horizon_end(now, local_tz()),
            now=now,
        )
    )
