"""HTML for managers: why a lead went where it went, and where an area has no one on shift.

Everything shown comes from lead data or names typed by people: all of it is escaped.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from routing.calendar import CoverageGap, coverage_summary
from routing.decide import Decision, strategy_label
from routing.models import Weekday

YES, NO = "✔", "✘"

# --- "Why did Ana get this lead?" ----------------------------------------------------------------


def _mark(value: bool) -> str:
    return YES if value else NO


def _candidates_table(rows: Iterable[Mapping[str, Any]], chosen_id: int | None) -> SafeString:
    header = format_html_join(
        "",
        "<th>{}</th>",
        (
            (label,)
            for label in (
                gettext("Salesperson"),
                gettext("Available"),
                gettext("Reason"),
                gettext("Open leads"),
                gettext("Leads today"),
                gettext("Weight"),
                gettext("Tier"),
            )
        ),
    )
    body = format_html_join(
        "",
        '<tr class="{}"><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
        "<td>{}</td><td>{}</td></tr>",
        (
            (
                "routing-chosen" if chosen_id is not None and row.get("id") == chosen_id else "",
                row.get("name", ""),
                format_html(" <strong>← {}</strong>", gettext("chosen"))
                if chosen_id is not None and row.get("id") == chosen_id
                else "",
                _mark(bool(row.get("kept"))),
                row.get("reason", ""),
                row.get("open_leads", ""),
                row.get("new_today", ""),
                row.get("weight", ""),
                row.get("priority", ""),
            )
            for row in rows
        ),
    )
    return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, body)


def explanation_html(
    explanation: Mapping[str, Any], *, chosen_id: int | None = None, chosen_name: str = ""
) -> SafeString:
    """A stored or simulated decision, readable. Every value is escaped: lead data is untrusted."""
    chosen = explanation.get("chosen") or chosen_name
    deciding = explanation.get("deciding_step") or ""
    parts: list[SafeString] = []
    if chosen:
        title = gettext("Why did %(name)s get this lead?") % {"name": chosen}
    else:
        title = gettext("Why is this lead waiting?")
    parts.append(format_html('<h3 class="routing-why-title">{}</h3>', title))
    if deciding:
        parts.append(
            format_html(
                '<p class="routing-deciding">{} <mark><strong>{}</strong></mark></p>',
                gettext("Decided by:"),
                deciding,
            )
        )
    facts = []
    rule = explanation.get("rule")
    if isinstance(rule, Mapping):
        facts.append((gettext("Rule"), rule.get("name", "")))
    if explanation.get("area"):
        facts.append((gettext("Area"), explanation["area"]))
    if explanation.get("strategy"):
        facts.append((gettext("Strategy"), strategy_label(str(explanation["strategy"]))))
    if facts:
        parts.append(
            format_html("<p>{}</p>", format_html_join(" · ", "{}: <strong>{}</strong>", facts))
        )
    steps = explanation.get("steps") or []
    if steps:
        items = format_html_join(
            "",
            "{}",
            (
                (
                    format_html('<li class="routing-deciding-step"><mark>{}</mark></li>', step)
                    if step == deciding
                    else format_html("<li>{}</li>", step),
                )
                for step in steps
            ),
        )
        parts.append(format_html("<h4>{}</h4><ol>{}</ol>", gettext("Steps"), items))
    if "rules_checked" in explanation:
        checked = explanation.get("rules_checked") or []
        if checked:
            items = format_html_join(
                "",
                "<li>{} <strong>{}</strong>: {} {}</li>",
                (
                    (
                        _mark(bool(r.get("matched"))),
                        r.get("name", ""),
                        gettext("matched") if r.get("matched") else gettext("did not match"),
                        format_html("({})", "; ".join(str(w) for w in r.get("why") or []))
                        if r.get("why")
                        else "",
                    )
                    for r in checked
                ),
            )
            parts.append(format_html("<h4>{}</h4><ul>{}</ul>", gettext("Rules checked"), items))
        else:
            parts.append(
                format_html(
                    "<h4>{}</h4><p>{}</p>", gettext("Rules checked"), gettext("No active rules.")
                )
            )
    candidates = explanation.get("candidates") or []
    if candidates:
        parts.append(
            format_html(
                "<h4>{}</h4>{}", gettext("Candidates"), _candidates_table(candidates, chosen_id)
            )
        )
    fallbacks = explanation.get("fallbacks") or []
    if fallbacks:
        parts.append(
            format_html(
                "<h4>{}</h4>{}", gettext("Fallbacks"), _candidates_table(fallbacks, chosen_id)
            )
        )
    # Every part above came out of format_html: joining them keeps them escaped.
    return mark_safe('<div class="routing-why">' + "".join(parts) + "</div>")  # noqa: S308


def decision_html(decision: Decision) -> SafeString:
    return explanation_html(decision.explanation(), chosen_id=decision.salesperson_id)


# --- Areas -------------------------------------------------------------------------------------


def _hour(h: int) -> str:
    return f"{h:02d}:00"


def coverage_lines(gaps: list[CoverageGap]) -> list[str]:
    """'Saturday 28/11 09:00–12:00 — nobody on shift (fallback covers)', in time order."""
    rows = []
    for covers in (True, False):
        for day, weekday, reason, ranges in coverage_summary(
            [g for g in gaps if g.fallback_covers is covers]
        ):
            for start, end in ranges:
                rows.append((day, start, end, weekday, reason, covers))
    lines = []
    for day, start, end, weekday, reason, covers in sorted(rows, key=lambda r: (r[0], r[1])):
        lines.append(
            gettext("%(weekday)s %(date)s %(from)s–%(to)s — %(reason)s (%(backup)s)")
            % {
                "weekday": Weekday(weekday).label,
                "date": day.strftime("%d/%m"),
                "from": _hour(start),
                "to": _hour(end),
                "reason": reason,
                "backup": gettext("fallback covers")
                if covers
                else gettext("no fallback covers it"),
            }
        )
    return lines
