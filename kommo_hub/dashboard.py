"""The managers' dashboard on the admin home: what the last 7, 30 or 90 days looked like.

`dashboard_data` reads a fixed number of aggregate queries whatever the number of leads;
the charts are inline SVG written here (no JavaScript, no CDN), each bar or point with a
<title>, and every chart has a table with the same numbers beside it.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, FilteredRelation, Q
from django.db.models.functions import TruncDate
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext

from kommo_hub.models import Lead, Message
from kommo_hub.reporting import selectors as reports
from kommo_hub.roles import is_manager
from scheduling.models import AppointmentStatus

DAY_CHOICES = (7, 30, 90)
DEFAULT_DAYS = 30

# Colour-blind-safe (Okabe–Ito), repeated when there are more areas than colours.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")


# --- The period --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    days: int
    first_day: date
    last_day: date
    start: datetime  # local midnight of first_day
    end: datetime  # local midnight after last_day

    @property
    def dates(self) -> list[date]:
        return [self.first_day + timedelta(days=n) for n in range(self.days)]


def days_from_query(value: str | None) -> int:
    try:
        days = int(value or "")
    except ValueError:
        return DEFAULT_DAYS
    return days if days in DAY_CHOICES else DEFAULT_DAYS


def period_for(days: int, now: datetime | None = None) -> Period:
    """The last `days` local calendar days, today included."""
    today = timezone.localdate(now or timezone.now())
    first_day = today - timedelta(days=days - 1)
    zone = timezone.get_current_timezone()
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return Period(days=days, first_day=first_day, last_day=today, start=start, end=end)


# --- The numbers -------------------------------------------------------------------------------


@dataclass
class Series:
    name: str
    values: list[int]


@dataclass
class Share:
    name: str  # "salesperson · area"
    leads: int
    actual: float  # 0..1 of the area's assigned leads
    target: float | None  # 0..1: what the area's weights aim at; None when not a member


@dataclass
class Speed:
    name: str
    assignments: int
    replied: int
    median_minutes: float | None
    p90_minutes: float | None


@dataclass
class Count_:
    label: str
    value: int


@dataclass
class Dashboard:
    period: Period
    leads_per_area: list[Series]
    leads_total: int
    shares: list[Share]
    speeds: list[Speed]
    unanswered: int
    messages: list[Series]  # the AI's and the salespeople's messages, per day
    activity: list[Count_]  # AI replies, human messages, pauses, hand-offs
    appointments: list[Count_]  # booked, done, no-show, cancelled
    appointments_by_person: list[tuple[str, list[int]]]


def _day_index(period: Period, day: date | None) -> int | None:
    if day is None:
        return None
    index = (day - period.first_day).days
    return index if 0 <= index < period.days else None


def leads_per_area_per_day(period: Period) -> tuple[list[Series], int]:
    """New leads per local day, split by the area of their current assignment (one query).
    reporting.leads_per_day counts one area per call; this is all of them at once."""
    zone = timezone.get_current_timezone()
    rows = (
        Lead.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
        .annotate(
            current=FilteredRelation("assignments", condition=Q(assignments__is_current=True)),
            day=TruncDate("created_at", tzinfo=zone),
        )
        .values("day", "current__area__name")
        .annotate(n=Count("pk"))
        .order_by()
    )
    no_area = gettext("No area")
    by_area: dict[str, list[int]] = {}
    total = 0
    for row in rows:
        index = _day_index(period, row["day"])
        if index is None:
            continue
        name = row["current__area__name"] or no_area
        by_area.setdefault(name, [0] * period.days)[index] += row["n"]
        total += row["n"]
    ordered = sorted(by_area.items(), key=lambda item: (item[0] == no_area, item[0].lower()))
    return [Series(name, values) for name, values in ordered], total


def messages_per_day(period: Period) -> list[Series]:
    """Messages the AI and the salespeople sent, per local day (one query)."""
    zone = timezone.get_current_timezone()
    ai = [0] * period.days
    human = [0] * period.days
    rows = (
        Message.objects.filter(
            sent_at__gte=period.start,
            sent_at__lt=period.end,
            direction=Message.Direction.OUTGOING,
        )
        .annotate(day=TruncDate("sent_at", tzinfo=zone))
        .values("day")
        .annotate(
            ai=Count("pk", filter=Q(author_kind=Message.AuthorKind.BOT)),
            human=Count("pk", filter=Q(author_kind=Message.AuthorKind.SALESPERSON)),
        )
        .order_by()
    )
    for row in rows:
        index = _day_index(period, row["day"])
        if index is not None:
            ai[index] += row["ai"]
            human[index] += row["human"]
    return [Series(gettext("AI messages"), ai), Series(gettext("Salespeople's messages"), human)]


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 60


def dashboard_data(period: Period) -> Dashboard:
    """The period's numbers: kommo_hub.reporting.selectors, plus two per-day splits."""
    start, end = period.first_day, period.last_day
    leads, leads_total = leads_per_area_per_day(period)
    shares = [
        Share(
            name=f"{row['salesperson']} · {row['area'] or gettext('No area')}",
            leads=row["assigned"],
            actual=row["share"],
            target=row["target_share"],
        )
        for row in reports.distribution(start=start, end=end)
    ]
    speed_rows = [
        row for row in reports.speed_to_lead(start=start, end=end) if row["group"] == "salesperson"
    ]
    speeds = [
        Speed(
            name=row["name"],
            assignments=row["assignments"],
            replied=row["replied"],
            median_minutes=_minutes(row["median_seconds"]),
            p90_minutes=_minutes(row["p90_seconds"]),
        )
        for row in speed_rows
    ]
    messages = messages_per_day(period)
    bot = reports.bot_activity(start=start, end=end)
    booked = reports.appointments_summary(start=start, end=end)
    return Dashboard(
        period=period,
        leads_per_area=leads,
        leads_total=leads_total,
        shares=shares,
        speeds=speeds,
        unanswered=sum(s.assignments - s.replied for s in speeds),
        messages=messages,
        activity=[
            Count_(gettext("AI replies"), bot["ai_replies"]),
            Count_(gettext("Human messages"), sum(messages[1].values)),
            Count_(gettext("Pauses"), sum(bot["pauses"].values())),
            Count_(gettext("Hand-offs to a person"), bot["handoffs"]),
        ],
        appointments=[
            Count_(str(AppointmentStatus.BOOKED.label), sum(r["booked"] for r in booked)),
            Count_(str(AppointmentStatus.DONE.label), sum(r["done"] for r in booked)),
            Count_(str(AppointmentStatus.NO_SHOW.label), sum(r["no_show"] for r in booked)),
            Count_(str(AppointmentStatus.CANCELLED.label), sum(r["cancelled"] for r in booked)),
        ],
        appointments_by_person=[
            (
                r["salesperson"] or gettext("Nobody"),
                [r["booked"], r["done"], r["no_show"], r["cancelled"], r["total"]],
            )
            for r in booked
        ],
    )


# --- Formatting --------------------------------------------------------------------------------


def number(value: float, decimals: int = 0) -> str:
    """Localized, rounded half away from zero (number_format alone cuts the extra digits)."""
    rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return str(formats.number_format(rounded, decimals, use_l10n=True, force_grouping=True))


def percent(fraction: float) -> str:
    return f"{number(fraction * 100, 1)}%"


def minutes_text(value: float) -> str:
    return gettext("%(minutes)s min") % {"minutes": number(value, 1)}


def day_label(day: date) -> str:
    return formats.date_format(day, "SHORT_DATE_FORMAT")


def day_tick(day: date) -> str:
    """Day and month only, in the order of the locale's short date (d/m in pt-BR)."""
    short = str(formats.get_format("SHORT_DATE_FORMAT"))
    return formats.date_format(day, "m/d" if short.lower().startswith("m") else "d/m")


# --- SVG ----------------------------------------------------------------------------------------

WIDTH = 640
ROW = 26


def _svg(title: str, height: int, body: SafeString, *, desc: str = "") -> SafeString:
    return format_html(
        '<svg class="hub-chart" viewBox="0 0 {w} {h}" width="100%" role="img" '
        'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
        "<title>{title}</title>{desc}{body}</svg>",
        w=WIDTH,
        h=height,
        title=title,
        desc=format_html("<desc>{}</desc>", desc) if desc else "",
        body=body,
    )


def _nice_max(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten at or above value."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _legend(names: Sequence[str], y: int) -> SafeString:
    x = 48
    items = []
    for index, name in enumerate(names):
        items.append(
            format_html(
                '<rect x="{}" y="{}" width="12" height="12" fill="{}"/>'
                '<text x="{}" y="{}" class="hub-legend">{}</text>',
                x,
                y,
                PALETTE[index % len(PALETTE)],
                x + 16,
                y + 10,
                name,
            )
        )
        x += 28 + 7 * len(name)
    return format_html_join("", "{}", ((item,) for item in items))


def _y_axis(top: float, left: int, plot_top: int, plot_bottom: int) -> SafeString:
    lines = []
    for fraction in (0, 0.5, 1):
        y = plot_bottom - (plot_bottom - plot_top) * fraction
        decimals = 0 if (top * fraction) == int(top * fraction) else 1
        lines.append(
            format_html(
                '<line x1="{}" x2="{}" y1="{y}" y2="{y}" class="hub-grid"/>'
                '<text x="{}" y="{}" text-anchor="end" class="hub-tick">{}</text>',
                left,
                WIDTH - 8,
                left - 4,
                round(y + 4, 1),
                number(top * fraction, decimals),
                y=round(y, 1),
            )
        )
    return format_html_join("", "{}", ((line,) for line in lines))


def _x_ticks(dates: Sequence[date], left: int, step: float, y: int) -> SafeString:
    every = max(1, math.ceil(len(dates) / 10))
    ticks = (
        format_html(
            '<text x="{}" y="{}" text-anchor="middle" class="hub-tick">{}</text>',
            round(left + step * (index + 0.5), 1),
            y,
            day_tick(day),
        )
        for index, day in enumerate(dates)
        if index % every == 0 or index == len(dates) - 1
    )
    return format_html_join("", "{}", ((tick,) for tick in ticks))


def stacked_bars_svg(title: str, dates: Sequence[date], series: Sequence[Series]) -> SafeString:
    """One bar per day, one stacked segment per series; each segment has its <title>."""
    left, top, bottom = 40, 10, 190
    height = bottom + 20 + 20 * math.ceil(len(series) / 4)
    step = (WIDTH - 8 - left) / max(len(dates), 1)
    totals = [sum(s.values[i] for s in series) for i in range(len(dates))]
    axis_top = _nice_max(max(totals, default=0))
    scale = (bottom - top) / axis_top
    parts = [_y_axis(axis_top, left, top, bottom)]
    for index, day in enumerate(dates):
        y = float(bottom)
        for color_index, item in enumerate(series):
            value = item.values[index]
            if not value:
                continue
            h = value * scale
            y -= h
            label = ngettext(
                "%(day)s, %(area)s: %(count)s lead",
                "%(day)s, %(area)s: %(count)s leads",
                value,
            ) % {"day": day_label(day), "area": item.name, "count": number(value)}
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>',
                    round(left + step * index + step * 0.1, 1),
                    round(y, 1),
                    round(step * 0.8, 1),
                    round(h, 1),
                    PALETTE[color_index % len(PALETTE)],
                    label,
                )
            )
    parts.append(_x_ticks(dates, left, step, bottom + 14))
    parts.append(_legend([s.name for s in series], bottom + 24))
    return _svg(title, height, format_html_join("", "{}", ((p,) for p in parts)))


def paired_bars_svg(
    title: str,
    rows: Sequence[tuple[str, Sequence[tuple[str, float, str]]]],
    axis_top: float,
    *,
    legend: bool = True,
) -> SafeString:
    """Horizontal bars, a group per row (e.g. a salesperson): each (label, value, text) of the
    group is one bar, coloured by its position in the group."""
    longest = max((len(name) for name, _bars in rows), default=0)
    label_width, top = min(max(longest * 6 + 16, 90), 260), 8
    per_bar = 12
    group = max((len(bars) for _name, bars in rows), default=1) * per_bar + 10
    names = [label for label, _value, _text in rows[0][1]] if rows else []
    height = top + group * max(len(rows), 1) + 30
    scale = (WIDTH - label_width - 70) / (axis_top or 1)
    parts = []
    for row_index, (name, bars) in enumerate(rows):
        y0 = top + row_index * group
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="end" class="hub-label">{}</text>',
                label_width - 6,
                y0 + group / 2,
                name,
            )
        )
        for bar_index, (label, value, text) in enumerate(bars):
            y = y0 + bar_index * per_bar
            width = max(value * scale, 0.5 if value else 0)
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{}</title></rect>"
                    '<text x="{}" y="{}" class="hub-value">{}</text>',
                    label_width,
                    y,
                    round(width, 1),
                    per_bar - 2,
                    PALETTE[bar_index % len(PALETTE)],
                    f"{name}, {label}: {text}",
                    round(label_width + width + 4, 1),
                    y + per_bar - 3,
                    text,
                )
            )
    if legend:
        parts.append(_legend(names, height - 18))
    else:
        height -= 24
    return _svg(title, height, format_html_join("", "{}", ((p,) for p in parts)))


def lines_svg(title: str, dates: Sequence[date], series: Sequence[Series]) -> SafeString:
    """A small line chart, one line per series, a point (with its <title>) per day."""
    left, top, bottom = 40, 10, 150
    height = bottom + 40
    step = (WIDTH - 8 - left) / max(len(dates), 1)
    axis_top = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    scale = (bottom - top) / axis_top
    parts = [_y_axis(axis_top, left, top, bottom)]
    for color_index, item in enumerate(series):
        color = PALETTE[color_index % len(PALETTE)]
        points = [
            (round(left + step * (i + 0.5), 1), round(bottom - v * scale, 1))
            for i, v in enumerate(item.values)
        ]
        parts.append(
            format_html(
                '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>',
                color,
                " ".join(f"{x},{y}" for x, y in points),
            )
        )
        for (x, y), day, value in zip(points, dates, item.values, strict=True):
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="3" fill="{}"><title>{}</title></circle>',
                    x,
                    y,
                    color,
                    f"{day_label(day)}, {item.name}: {number(value)}",
                )
            )
    parts.append(_x_ticks(dates, left, step, bottom + 14))
    parts.append(_legend([s.name for s in series], bottom + 24))
    return _svg(title, height, format_html_join("", "{}", ((p,) for p in parts)))


# --- The context the admin home renders ------------------------------------------------------


@dataclass
class Chart:
    key: str
    title: str
    description: str
    svg: SafeString
    table_head: list[str]
    table_rows: list[list[str]]
    summary: str = ""
    empty: bool = False  # nothing to draw: the page says so instead


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def charts(data: Dashboard) -> list[Chart]:
    dates = data.period.dates
    leads_title = gettext("Leads per day, by area")
    share_title = gettext("Distribution against target")
    speed_title = gettext("Speed to lead")
    activity_title = gettext("AI and people in the conversations")
    messages_title = gettext("Messages per day")
    appointments_title = gettext("Appointments")
    actual_label, target_label = gettext("Actual share"), gettext("Target share")
    median_label, p90_label = gettext("Median"), gettext("90th percentile")

    def share_text(value: float | None) -> str:
        return "—" if value is None else percent(value)

    def minutes_or_dash(value: float | None) -> str:
        return "—" if value is None else minutes_text(value)

    share_axis = _nice_max(
        max((max(s.actual, s.target or 0) for s in data.shares), default=0) * 100
    )
    answered = [s for s in data.speeds if s.median_minutes is not None]
    speed_axis = _nice_max(max((s.p90_minutes or 0 for s in answered), default=0))
    activity_axis = _nice_max(max((c.value for c in data.activity), default=0))
    appointments_axis = _nice_max(max((c.value for c in data.appointments), default=0))
    totals = [sum(row[1][i] for row in data.appointments_by_person) for i in range(5)]
    return [
        Chart(
            key="leads",
            title=leads_title,
            description=gettext("New leads each day, by the area of their current assignment."),
            summary=ngettext(
                "%(count)s lead in total.", "%(count)s leads in total.", data.leads_total
            )
            % {"count": number(data.leads_total)},
            svg=stacked_bars_svg(leads_title, dates, data.leads_per_area),
            empty=not data.leads_total,
            table_head=[gettext("Day"), *(s.name for s in data.leads_per_area)],
            table_rows=[
                [day_label(day), *(number(s.values[i]) for s in data.leads_per_area)]
                for i, day in enumerate(dates)
                if any(s.values[i] for s in data.leads_per_area)
            ],
        ),
        Chart(
            key="distribution",
            title=share_title,
            description=gettext(
                "Each salesperson's share of their area's assigned leads, and the share their "
                "weight in the area aims at."
            ),
            svg=paired_bars_svg(
                share_title,
                [
                    (
                        s.name,
                        [
                            (actual_label, s.actual * 100, percent(s.actual)),
                            (target_label, (s.target or 0) * 100, share_text(s.target)),
                        ],
                    )
                    for s in data.shares
                ],
                share_axis,
            ),
            empty=not data.shares,
            table_head=[
                gettext("Salesperson · area"),
                gettext("Leads"),
                actual_label,
                target_label,
            ],
            table_rows=[
                [s.name, number(s.leads), percent(s.actual), share_text(s.target)]
                for s in data.shares
            ],
        ),
        Chart(
            key="speed",
            title=speed_title,
            description=gettext(
                "Minutes from the assignment to the salesperson's first message to the lead "
                "(clock time)."
            ),
            summary=ngettext(
                "%(count)s assigned lead without a reply yet.",
                "%(count)s assigned leads without a reply yet.",
                data.unanswered,
            )
            % {"count": number(data.unanswered)},
            svg=paired_bars_svg(
                speed_title,
                [
                    (
                        s.name,
                        [
                            (
                                median_label,
                                s.median_minutes or 0,
                                minutes_or_dash(s.median_minutes),
                            ),
                            (p90_label, s.p90_minutes or 0, minutes_or_dash(s.p90_minutes)),
                        ],
                    )
                    for s in answered
                ],
                speed_axis,
            ),
            empty=not answered,
            table_head=[
                gettext("Salesperson"),
                gettext("Assigned"),
                gettext("Replied"),
                median_label,
                p90_label,
            ],
            table_rows=[
                [
                    s.name,
                    number(s.assignments),
                    number(s.replied),
                    minutes_or_dash(s.median_minutes),
                    minutes_or_dash(s.p90_minutes),
                ]
                for s in data.speeds
            ],
        ),
        Chart(
            key="activity",
            title=activity_title,
            description=gettext(
                "The AI's replies, the salespeople's messages, pauses of the AI and the "
                "hand-offs it asked for; below, the messages sent each day."
            ),
            svg=format_html(
                "{}{}",
                paired_bars_svg(
                    activity_title,
                    [
                        (c.label, [(gettext("Total"), c.value, number(c.value))])
                        for c in data.activity
                    ],
                    activity_axis,
                    legend=False,
                ),
                lines_svg(messages_title, dates, data.messages),
            ),
            table_head=[gettext("Activity"), gettext("Total")],
            table_rows=[[c.label, number(c.value)] for c in data.activity],
        ),
        Chart(
            key="appointments",
            title=appointments_title,
            description=gettext("Appointments starting in the period, by status."),
            svg=paired_bars_svg(
                appointments_title,
                [
                    (_cap(c.label), [(appointments_title, c.value, number(c.value))])
                    for c in data.appointments
                ],
                appointments_axis,
                legend=False,
            ),
            empty=not any(c.value for c in data.appointments),
            table_head=[
                gettext("Salesperson"),
                *(_cap(c.label) for c in data.appointments),
                gettext("Total"),
            ],
            table_rows=[
                [name, *(number(n) for n in counts)] for name, counts in data.appointments_by_person
            ]
            + (
                [[gettext("Total"), *(number(n) for n in totals)]]
                if data.appointments_by_person
                else []
            ),
        ),
    ]


def dashboard_context(request: HttpRequest) -> dict[str, Any] | None:
    """What templates/admin/index.html shows above the app list; None for non-managers."""
    if not is_manager(request.user):
        return None
    days = days_from_query(request.GET.get("days"))
    period = period_for(days)
    return {
        "days": days,
        "day_choices": DAY_CHOICES,
        "first_day": period.first_day,
        "last_day": period.last_day,
        "charts": charts(dashboard_data(period)),
    }
