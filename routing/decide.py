"""The routing decision: rule → target → candidates → sticky owner / strategy → fallbacks.

It reads the database but never writes: lead_route persists a Decision, the admin's simulate
and backtest only show it. Every step that kept or dropped someone is recorded, so a manager
can see why a lead went where it went.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from kommo_hub.models import Lead
from routing.calendar import WorkCalendar, calendars_load
from routing.conditions import CompiledRule, LeadFacts
from routing.models import Area, Strategy
from routing.selectors import area_candidates, returning_owner_id, salespeople_candidates
from routing.strategies import Candidate, first_tier, pick

# Calendars are loaded this far ahead, for the SLA clock.
CALENDAR_DAYS = 14
# Non-matching rules explained in full on each assignment; the rest are counted.
RULES_EXPLAINED = 30


@dataclass
class Target:
    area: Area | None
    salesperson_id: int | None
    rule: CompiledRule | None


@dataclass
class Overlay:
    """In-memory rotation state, so a backtest can route many leads without writing."""

    turns: dict[int, int] = field(default_factory=dict)  # area id → rotation_seq
    memberships: dict[int, tuple[int, int]] = field(default_factory=dict)  # id → (turn, weight)


@dataclass
class Decision:
    target: Target
    salesperson_id: int | None = None
    salesperson_name: str = ""
    strategy: str = ""
    deciding_step: str = ""
    steps: list[str] = field(default_factory=list)
    rules_checked: list[dict[str, Any]] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    fallbacks: list[Candidate] = field(default_factory=list)
    rotated: list[Candidate] = field(default_factory=list)
    turn: int | None = None
    calendar: WorkCalendar | None = None

    def explanation(self) -> dict[str, Any]:
        rule = self.target.rule
        return {
            "rules_checked": self.rules_checked,
            "rule": {"id": rule.id, "name": rule.name} if rule else None,
            "area": self.target.area.name if self.target.area else None,
            "target_salesperson_id": self.target.salesperson_id,
            "strategy": self.strategy,
            "candidates": [_candidate_row(c) for c in self.candidates],
            "fallbacks": [_candidate_row(c) for c in self.fallbacks],
            "steps": self.steps,
            "deciding_step": self.deciding_step,
            "chosen": self.salesperson_name or None,
        }


def _candidate_row(c: Candidate) -> dict[str, Any]:
    return {
        "id": c.salesperson_id,
        "name": c.name,
        "kept": c.kept,
        "reason": c.dropped or _("available"),
        "open_leads": c.open_leads,
        "new_today": c.new_today,
        "weight": c.weight,
        "priority": c.priority,
    }


def local_day_start(now: datetime) -> datetime:
    local = timezone.localtime(now)
    return timezone.make_aware(datetime.combine(local.date(), time.min), local.tzinfo)


def target_for(
    *,
    facts: LeadFacts,
    rules: Sequence[CompiledRule],
    default: Callable[[], Area | None],
) -> tuple[Target | None, list[dict[str, Any]]]:
    """First matching rule wins; the default area (read only when needed) catches the rest."""
    checked: list[dict[str, Any]] = []
    skipped = 0
    for rule in rules:
        matched, why = rule.matches(facts)
        if matched:
            _note_skipped(checked, skipped)
            checked.append({"id": rule.id, "name": rule.name, "matched": True, "why": why})
            return Target(area=None, salesperson_id=None, rule=rule), checked
        if len(checked) < RULES_EXPLAINED:
            checked.append({"id": rule.id, "name": rule.name, "matched": False, "why": why})
        else:
            skipped += 1
    _note_skipped(checked, skipped)
    area = default()
    if area is not None:
        return Target(area=area, salesperson_id=None, rule=None), checked
    return None, checked


def _note_skipped(checked: list[dict[str, Any]], skipped: int) -> None:
    """Thousands of non-matching rules would make every assignment row huge: the first ones
    and a count are what a manager reads."""
    if skipped:
        checked.append(
            {
                "id": None,
                "name": _("… and %(n)d more rules that did not match") % {"n": skipped},
                "matched": False,
                "why": [],
            }
        )


def _evaluate(
    c: Candidate, *, at: datetime, calendars: dict[int, WorkCalendar], excluded: set[int]
) -> None:
    """Drop the candidate with the first reason that applies."""
    if c.dropped:
        return
    if c.salesperson_id in excluded:
        c.dropped = _("current owner: missed the reply SLA")
        return
    calendar = calendars.get(c.salesperson_id)
    unavailable = calendar.unavailable(at) if calendar else None
    if calendar is None:
        c.dropped = _("no working hours")
    elif unavailable is not None:
        c.dropped = unavailable.detail
    else:
        c.dropped = c.over_cap()


def _apply_overlay(candidates: list[Candidate], overlay: Overlay | None) -> None:
    if overlay is None:
        return
    for c in candidates:
        if c.membership_id in overlay.memberships:
            c.last_turn, c.current_weight = overlay.memberships[c.membership_id]


def decide(
    *,
    target: Target,
    lead: Lead | None,
    at: datetime,
    exclude: Sequence[int] = (),
    overlay: Overlay | None = None,
) -> Decision:
    """Who gets the lead at `at` among the target's people. Reads only."""
    decision = Decision(target=target)
    area = target.area
    day_start = local_day_start(at)
    excluded = set(exclude)
    members = area_candidates(area=area, day_start=day_start) if area else []
    extra_ids = [target.salesperson_id or 0, area.fallback_salesperson_id if area else 0]
    people = salespeople_candidates(
        ids=[i for i in extra_ids if i], include_duty=True, day_start=day_start
    )
    _apply_overlay(members, overlay)
    _apply_overlay(list(people.values()), overlay)
    everyone = {c.salesperson_id for c in members} | set(people)
    calendars = calendars_load(
        salesperson_ids=everyone,
        first=timezone.localdate(at),
        last=timezone.localdate(at) + timedelta(days=CALENDAR_DAYS),
    )
    for c in [*members, *people.values()]:
        _evaluate(c, at=at, calendars=calendars, excluded=excluded)

    def choose(c: Candidate, step: str) -> Decision:
        decision.salesperson_id = c.salesperson_id
        decision.salesperson_name = c.name
        decision.deciding_step = step
        decision.steps.append(step)
        decision.calendar = calendars.get(c.salesperson_id)
        return decision

    if target.rule is not None:
        decision.steps.append(_("Rule “%(rule)s” matched.") % {"rule": target.rule.name})
    elif area is not None:
        decision.steps.append(_("No rule matched: default area “%(area)s”.") % {"area": area.name})

    if target.salesperson_id is not None:
        person = people.get(target.salesperson_id)
        if person is not None:
            decision.candidates = [person]
            if person.kept:
                return choose(
                    person, _("The rule sends these leads to %(name)s.") % {"name": person.name}
                )
            decision.steps.append(
                _("%(name)s cannot take it: %(why)s.")
                % {"name": person.name, "why": person.dropped}
            )
    else:
        assert area is not None
        decision.candidates = members
        decision.strategy = area.strategy
        if area.sticky_owner and lead is not None:
            owner_id, how = returning_owner_id(lead=lead)
            if owner_id is not None:
                owner = next((c for c in members if c.salesperson_id == owner_id), None)
                if owner is not None and owner.kept:
                    step = (
                        _("Returning contact: back to their salesperson %(name)s.")
                        if how == "contact"
                        else _("Owned in Kommo by %(name)s, who is available.")
                    ) % {"name": owner.name}
                    return choose(owner, step)
                if owner is None:
                    decision.steps.append(
                        _("Returning contact's salesperson is not a member of this area.")
                    )
                else:
                    decision.steps.append(
                        _("Returning contact's salesperson %(name)s is unavailable: %(why)s.")
                        % {"name": owner.name, "why": owner.dropped}
                    )
        tier = first_tier(members)
        if tier:
            turn = overlay.turns.get(area.pk, area.rotation_seq) if overlay else area.rotation_seq
            decision.turn = turn + 1
            chosen, why = pick(area.strategy, tier, turn=turn + 1)
            decision.rotated = list(tier)
            return choose(chosen, why[:1].upper() + why[1:] + ".")
        decision.steps.append(_("Nobody in the area is available."))
        fallback = people.get(area.fallback_salesperson_id or 0)
        if fallback is not None:
            decision.fallbacks.append(fallback)
            if fallback.kept:
                return choose(fallback, _("Area fallback: %(name)s.") % {"name": fallback.name})
            decision.steps.append(
                _("Area fallback %(name)s cannot take it: %(why)s.")
                % {"name": fallback.name, "why": fallback.dropped}
            )
    duty = next((c for c in people.values() if c.is_duty), None)
    if duty is not None and duty not in decision.fallbacks and duty not in decision.candidates:
        decision.fallbacks.append(duty)
        if duty.kept:
            return choose(duty, _("Global fallback (on duty): %(name)s.") % {"name": duty.name})
        decision.steps.append(
            _("Global fallback %(name)s cannot take it: %(why)s.")
            % {"name": duty.name, "why": duty.dropped}
        )
    decision.deciding_step = _("Nobody available: the lead waits, first in first out.")
    decision.steps.append(decision.deciding_step)
    return decision


def overlay_record(overlay: Overlay, decision: Decision) -> None:
    """Advance the in-memory rotation as lead_route would in the database. Loads are not
    advanced: the replayed leads already count in today's loads."""
    area = decision.target.area
    if decision.turn is not None and area is not None:
        overlay.turns[area.pk] = decision.turn
        for c in decision.rotated:
            if c.membership_id is not None:
                overlay.memberships[c.membership_id] = (c.last_turn, c.current_weight)


def strategy_label(value: str) -> str:
    return str(Strategy(value).label) if value in Strategy.values else value
