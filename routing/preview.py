"""Simulate and backtest: the routing decision without assigning anything."""

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from kommo_hub.models import Lead
from routing.conditions import LeadFacts, lead_facts
from routing.decide import Decision, Overlay, Target, decide, overlay_record, target_for
from routing.models import Area, Assignment
from routing.selectors import area_default, rules_compiled


def _decide_for(
    *, facts: LeadFacts, lead: Lead | None, at: datetime, overlay: Overlay | None
) -> Decision:
    target, checked = target_for(facts=facts, rules=rules_compiled(), default=area_default)
    if target is None:
        decision = Decision(target=Target(area=None, salesperson_id=None, rule=None))
        decision.rules_checked = checked
        decision.deciding_step = _("No rule matched and there is no default area: the lead waits.")
        decision.steps = [decision.deciding_step]
        return decision
    rule = target.rule
    if rule is not None and rule.target_area_id is not None:
        target = Target(
            area=Area.objects.get(pk=rule.target_area_id), salesperson_id=None, rule=rule
        )
    elif rule is not None:
        target = Target(area=None, salesperson_id=rule.target_salesperson_id, rule=rule)
    decision = decide(target=target, lead=lead, at=at, overlay=overlay)
    decision.rules_checked = checked
    return decision


def route_simulate(
    *, facts: LeadFacts, lead: Lead | None = None, at: datetime | None = None
) -> Decision:
    """What would happen to this lead now (or at `at`). Writes nothing."""
    return _decide_for(facts=facts, lead=lead, at=at or timezone.now(), overlay=None)


@dataclass
class BacktestRow:
    lead: Lead
    actual: Assignment | None
    decision: Decision

    @property
    def actual_name(self) -> str:
        first = self.actual
        return str(first.salesperson) if first and first.salesperson else ""

    @property
    def same(self) -> bool:
        actual = self.actual.salesperson_id if self.actual else None
        return actual == self.decision.salesperson_id


def routing_backtest(*, last: int) -> list[BacktestRow]:
    """Replay the last `last` leads, oldest first, against today's rules and people, each at the
    time it arrived. The rotation advances in memory only; loads are today's plus the replay's."""
    leads = list(
        Lead.objects.select_related("contact").order_by("-created_at", "-pk")[: max(0, last)]
    )
    leads.reverse()
    first_assignments = {
        a.lead_id: a
        for a in Assignment.objects.filter(lead__in=leads)
        .select_related("salesperson")
        .order_by("-decided_at", "-pk")
    }
    overlay = Overlay()
    rows = []
    for lead in leads:
        decision = _decide_for(
            facts=lead_facts(lead), lead=lead, at=lead.created_at, overlay=overlay
        )
        overlay_record(overlay, decision)
        rows.append(
            BacktestRow(lead=lead, actual=first_assignments.get(lead.pk), decision=decision)
        )
    return rows
