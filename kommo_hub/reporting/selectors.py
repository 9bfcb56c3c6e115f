"""The report queries: plain typed functions returning dicts and lists (no HTTP, no DRF).

Every period is a pair of local dates (the hub's TIME_ZONE, America/Sao_Paulo), both included.
`salesperson_id` narrows a report to one salesperson's data (a salesperson looking at their own
numbers); None means everyone. A lead belongs to the salesperson and area of its current
assignment.

Each function is a fixed, small number of aggregate queries, whatever the number of leads
(joins and semi-joins, no correlated subquery per row). Speed-to-lead percentiles are computed
in Python from one row per assignment of the period (percentile_cont's interpolation): on
Postgres, percentile_cont over the per-assignment first reply needed a correlated subquery per
row, 8x slower at 100,000 leads (bench/reporting.py).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    F,
    FilteredRelation,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import TruncDate

from botcontrol.models import BotChange, BotMode, ChangeVia
from kommo_hub.models import ActionStatus, ActionTarget, Lead, Message, OutboundAction
from routing.models import AreaMembership, Assignment, AssignmentStatus
from scheduling.models import Appointment, AppointmentStatus

AI_ACTIONS = ("reply", "schedule")


# --- Periods --------------------------------------------------------------------------------


def local_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[local midnight of start, local midnight after end): both days included."""
    zone = local_zone()
    return (
        datetime.combine(start, time(0), tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time(0), tzinfo=zone),
    )


def current_assignment_q(salesperson_id: int | None, prefix: str = "") -> Q:
    """Rows whose lead's current assignment is the salesperson's (everything when None)."""
    if salesperson_id is None:
        return Q()
    return Q(
        **{
            f"{prefix}assignments__is_current": True,
            f"{prefix}assignments__salesperson_id": salesperson_id,
        }
    )


# --- Percentiles ----------------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks, as percentile_cont does."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- Reports ------------------------------------------------------------------------------


class DayCount(TypedDict):
    day: date
    leads: int


def leads_per_day(
    *,
    start: date,
    end: date,
    area: int | None = None,
    salesperson: int | None = None,
    source: str | None = None,
    salesperson_id: int | None = None,
) -> list[DayCount]:
    """New leads per local day, every day of the period (zeros included)."""
    since, until = period_bounds(start, end)
    leads = Lead.objects.filter(created_at__gte=since, created_at__lt=until)
    leads = leads.filter(current_assignment_q(salesperson_id))
    if area is not None:
        leads = leads.filter(assignments__is_current=True, assignments__area_id=area)
    if salesperson is not None:
        leads = leads.filter(assignments__is_current=True, assignments__salesperson_id=salesperson)
    if source:
        leads = leads.filter(source=source)
    counts = dict(
        leads.annotate(day=TruncDate("created_at", tzinfo=local_zone()))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("day", "n")
    )
    days = (end - start).days + 1
    return [
        {"day": day, "leads": counts.get(day, 0)}
        for day in (start + timedelta(days=i) for i in range(days))
    ]


class DistributionRow(TypedDict):
    area_id: int | None
    area: str
    salesperson_id: int
    salesperson: str
    assigned: int
    share: float
    target_share: float | None


def distribution(
    *, start: date, end: date, salesperson_id: int | None = None
) -> list[DistributionRow]:
    """Assignments decided in the period per area and salesperson: the count, its share of the
    area's assignments, and the share the area's active membership weights aim at."""
    since, until = period_bounds(start, end)
    actual = (
        Assignment.objects.filter(
            decided_at__gte=since,
            decided_at__lt=until,
            status=AssignmentStatus.ASSIGNED,
            salesperson__isnull=False,
        )
        .values("area_id", "area__name", "salesperson_id", "salesperson__name")
        .annotate(n=Count("pk"))
        .order_by()
    )
    members = AreaMembership.objects.filter(active=True, area__active=True).values(
        "area_id", "area__name", "salesperson_id", "salesperson__name", "weight"
    )
    counts: dict[tuple[int | None, int], int] = {}
    names: dict[tuple[int | None, int], tuple[str, str]] = {}
    for row in actual:
        key: tuple[int | None, int] = (row["area_id"], row["salesperson_id"])
        counts[key] = row["n"]
        names[key] = (row["area__name"] or "", row["salesperson__name"])
    weights: dict[tuple[int | None, int], int] = {}
    for member in members:
        pair = (member["area_id"], member["salesperson_id"])
        weights[pair] = member["weight"]
        names[pair] = (member["area__name"], member["salesperson__name"])
    area_total: Counter[int | None] = Counter()
    area_weight: Counter[int | None] = Counter()
    for (total_area, _sp), n in counts.items():
        area_total[total_area] += n
    for (weight_area, _sp), weight_of in weights.items():
        area_weight[weight_area] += weight_of
    rows: list[DistributionRow] = []
    for key in sorted(names, key=lambda k: (names[k][0], names[k][1], k[0] or 0, k[1])):
        area_id, sp_id = key
        if salesperson_id is not None and sp_id != salesperson_id:
            continue
        n = counts.get(key, 0)
        weight = weights.get(key)
        rows.append(
            {
                "area_id": area_id,
                "area": names[key][0],
                "salesperson_id": sp_id,
                "salesperson": names[key][1],
                "assigned": n,
                "share": round(n / area_total[area_id], 4) if area_total[area_id] else 0.0,
                "target_share": (
                    round(weight / area_weight[area_id], 4) if weight is not None else None
                ),
            }
        )
    return rows


class SpeedRow(TypedDict):
    group: str  # "salesperson" or "area"
    id: int | None
    name: str
    assignments: int
    replied: int
    median_seconds: float | None
    p90_seconds: float | None


def first_human_reply() -> Min | Subquery:
    """The first salesperson message (outgoing, not the bot's) in the assignment's lead's
    conversations at or after the assignment was decided.

    Postgres: one join and a MIN (a correlated subquery per row was 8x slower there). SQLite:
    the correlated subquery, which its planner runs faster than the grouped join.
    """
    if connection.vendor == "sqlite":
        return Subquery(
            Message.objects.filter(
                conversation__lead_id=OuterRef("lead_id"),
                direction=Message.Direction.OUTGOING,
                author_kind=Message.AuthorKind.SALESPERSON,
                sent_at__gte=OuterRef("decided_at"),
            )
            .order_by("sent_at")
            .values("sent_at")[:1]
        )
    return Min(
        "lead__conversations__messages__sent_at",
        filter=Q(
            lead__conversations__messages__direction=Message.Direction.OUTGOING,
            lead__conversations__messages__author_kind=Message.AuthorKind.SALESPERSON,
            lead__conversations__messages__sent_at__gte=F("decided_at"),
        ),
    )


def speed_to_lead(*, start: date, end: date, salesperson_id: int | None = None) -> list[SpeedRow]:
    """Assignment → first human reply, for assignments decided in the period: median and p90
    in seconds, per salesperson and per area (assignments without a reply yet are counted in
    `assignments` but not in the percentiles).

    One query returns one row per assignment (ids and two times, no text); the percentiles are
    computed in Python, which the period (at most a year through the API) keeps bounded.
    """
    since, until = period_bounds(start, end)
    assignments = Assignment.objects.filter(
        decided_at__gte=since,
        decided_at__lt=until,
        status=AssignmentStatus.ASSIGNED,
        salesperson__isnull=False,
    )
    if salesperson_id is not None:
        assignments = assignments.filter(salesperson_id=salesperson_id)
    reply = first_human_reply()
    # GROUP BY the assignment for the MIN.
    rows_of: Any = assignments.values("pk") if isinstance(reply, Min) else assignments
    facts: list[tuple[Any, ...]] = list(
        rows_of.annotate(first_reply=reply)
        .values_list(
            "salesperson_id",
            "salesperson__name",
            "area_id",
            "area__name",
            "decided_at",
            "first_reply",
        )
        .order_by()
    )
    rows: list[SpeedRow] = []
    for group, index in (("salesperson", 0), ("area", 2)):
        totals: Counter[int | None] = Counter()
        durations: dict[int | None, list[float]] = defaultdict(list)
        names: dict[int | None, str] = {}
        for fact in facts:
            key = fact[index]
            names[key] = fact[index + 1] or ""
            totals[key] += 1
            if fact[5] is not None:
                durations[key].append((fact[5] - fact[4]).total_seconds())
        for key in sorted(names, key=lambda k: (names[k], k or 0)):
            rows.append(
                {
                    "group": group,
                    "id": key,
                    "name": names[key],
                    "assignments": totals[key],
                    "replied": len(durations[key]),
                    "median_seconds": _round(percentile(durations[key], 0.5)),
                    "p90_seconds": _round(percentile(durations[key], 0.9)),
                }
            )
    return rows


class BotActivity(TypedDict):
    ai_replies: int
    pauses: dict[str, int]
    handoffs: int
    reactivations: int


def bot_activity(*, start: date, end: date, salesperson_id: int | None = None) -> BotActivity:
    """The AI's replies (n8n reply and schedule actions delivered in the period), pauses by how
    they happened (every ChangeVia, zeros included), handoffs (the AI asked for a person) and
    reactivations (the bot resumed, however)."""
    since, until = period_bounds(start, end)
    replies = OutboundAction.objects.filter(
        target=ActionTarget.N8N,
        action__in=AI_ACTIONS,
        status=ActionStatus.DONE,
        delivered_at__gte=since,
        delivered_at__lt=until,
    ).filter(current_assignment_q(salesperson_id, "lead__"))
    changes = BotChange.objects.filter(at__gte=since, at__lt=until).filter(
        current_assignment_q(salesperson_id, "conversation__lead__")
    )
    by_kind: dict[tuple[str, str], int] = {
        (row["mode"], row["via"]): row["n"]
        for row in changes.values("mode", "via").annotate(n=Count("pk")).order_by()
    }
    pauses = {via: by_kind.get((BotMode.PAUSED.value, via), 0) for via in ChangeVia.values}
    return {
        "ai_replies": replies.count(),
        "pauses": pauses,
        "handoffs": pauses[ChangeVia.HANDOFF.value],
        "reactivations": sum(n for (mode, _via), n in by_kind.items() if mode == BotMode.ACTIVE),
    }


class AppointmentRow(TypedDict):
    salesperson_id: int
    salesperson: str
    booked: int
    done: int
    no_show: int
    cancelled: int
    total: int


def appointments_summary(
    *, start: date, end: date, salesperson_id: int | None = None
) -> list[AppointmentRow]:
    """Appointments starting in the period per salesperson, by status (booked = booked or
    confirmed and not yet done)."""
    since, until = period_bounds(start, end)
    appointments = Appointment.objects.filter(starts_at__gte=since, starts_at__lt=until)
    if salesperson_id is not None:
        appointments = appointments.filter(salesperson_id=salesperson_id)
    S = AppointmentStatus
    rows = (
        appointments.values("salesperson_id", "salesperson__name")
        .annotate(
            booked=Count("pk", filter=Q(status__in=(S.BOOKED, S.CONFIRMED))),
            done=Count("pk", filter=Q(status=S.DONE)),
            no_show=Count("pk", filter=Q(status=S.NO_SHOW)),
            cancelled=Count("pk", filter=Q(status=S.CANCELLED)),
            total=Count("pk"),
        )
        .order_by("salesperson__name", "salesperson_id")
    )
    return [
        {
            "salesperson_id": row["salesperson_id"],
            "salesperson": row["salesperson__name"],
            "booked": row["booked"],
            "done": row["done"],
            "no_show": row["no_show"],
            "cancelled": row["cancelled"],
            "total": row["total"],
        }
        for row in rows
    ]


class FunnelRow(TypedDict):
    area_id: int | None
    area: str
    source: str
    leads: int
    replied: int
    booked: int
    done: int


def funnel(*, start: date, end: date, salesperson_id: int | None = None) -> list[FunnelRow]:
    """Leads created in the period per area (of the current assignment) and source: how many
    got a salesperson's reply, a meeting booked (any status), a meeting done. One grouped count
    per stage (each a semi-join), merged here."""
    since, until = period_bounds(start, end)
    leads: QuerySet[Lead] = Lead.objects.filter(created_at__gte=since, created_at__lt=until)
    leads = leads.filter(current_assignment_q(salesperson_id))
    leads = leads.annotate(
        current=FilteredRelation("assignments", condition=Q(assignments__is_current=True))
    )
    replied = Message.objects.filter(
        direction=Message.Direction.OUTGOING, author_kind=Message.AuthorKind.SALESPERSON
    ).values("conversation__lead_id")
    stages = {
        "leads": leads,
        "replied": leads.filter(pk__in=replied),
        "booked": leads.filter(pk__in=Appointment.objects.values("lead_id")),
        "done": leads.filter(
            pk__in=Appointment.objects.filter(status=AppointmentStatus.DONE).values("lead_id")
        ),
    }
    counts: dict[tuple[int | None, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(stages, 0)
    )
    names: dict[int | None, str] = {}
    for stage, queryset in stages.items():
        for row in (
            queryset.values("current__area_id", "current__area__name", "source")
            .annotate(n=Count("pk"))
            .order_by()
        ):
            area_id = row["current__area_id"]
            names[area_id] = row["current__area__name"] or ""
            counts[(area_id, row["source"])][stage] = row["n"]
    result: list[FunnelRow] = [
        {
            "area_id": area_id,
            "area": names[area_id],
            "source": source,
            "leads": n["leads"],
            "replied": n["replied"],
            "booked": n["booked"],
            "done": n["done"],
        }
        for (area_id, source), n in counts.items()
    ]
    result.sort(key=lambda r: (r["area"], r["area_id"] or 0, r["source"]))
    return result
