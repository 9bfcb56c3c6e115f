"""Routing writes: assign a lead, drain the waiting queue, reassign on SLA, accept Kommo's owner.

Race-safe: the lead row is locked first, then the area row, so two workers routing into one
area take turns and every rotation step is counted once. These functions return assignments;
the coordinator (kommo_hub.flows) turns them into Kommo writes and n8n actions.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from kommo_hub.models import Alert, Lead
from routing.conditions import lead_facts
from routing.decide import Decision, Target, decide, target_for
from routing.models import (
    Area,
    AreaMembership,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    Salesperson,
    Strategy,
)
from routing.selectors import area_default, rules_compiled, waiting_assignments, waiting_targets

# Called inside the transaction that made the assignment, so its side effects (outbox rows)
# commit with it or not at all.
OnAssigned = Callable[[Assignment], None]


@dataclass
class RouteResult:
    assignment: Assignment
    created: bool
    # Leads that were waiting in the same queue and were assigned first (first in, first out).
    drained: list[Assignment] = field(default_factory=list)


def lead_route(*, lead_id: int, now: datetime | None = None) -> RouteResult:
    """Assign a new lead by the rules. Idempotent: a lead already routed keeps its assignment."""
    now = now or timezone.now()
    with transaction.atomic():
        # of=self: the contact is a nullable join, which Postgres cannot lock (FOR UPDATE).
        lead = (
            Lead.objects.select_for_update(of=("self",)).select_related("contact").get(pk=lead_id)
        )
        current = Assignment.objects.filter(lead=lead, is_current=True).first()
        if current is not None:
            return RouteResult(assignment=current, created=False)
        target, checked = target_for(
            facts=lead_facts(lead), rules=rules_compiled(), default=_locked_default_area
        )
        if target is None:
            assignment = _no_target(lead, checked, now)
            return RouteResult(assignment=assignment, created=True)
        target = _resolved_and_locked(target)
        drained = _drain_locked(target, now=now)
        decision = decide(target=target, lead=lead, at=now)
        decision.rules_checked = checked
        assignment = _persist(decision, lead=lead, kind=AssignmentKind.NEW, now=now)
        return RouteResult(assignment=assignment, created=True, drained=drained)


def _locked_default_area() -> Area | None:
    return Area.objects.select_for_update().filter(is_default=True, active=True).first()


def _resolved_and_locked(target: Target) -> Target:
    """The rule's target, its area row locked (read once)."""
    rule = target.rule
    if rule is None:
        return target  # the default area, already read with its lock
    if rule.target_area_id is not None:
        area = Area.objects.select_for_update().get(pk=rule.target_area_id)
        return Target(area=area, salesperson_id=None, rule=rule)
    target = Target(area=None, salesperson_id=rule.target_salesperson_id, rule=rule)
    _lock(target)
    return target


def _lock(target: Target) -> None:
    """Serialize every decision that moves one area's rotation (or one person's queue)."""
    if target.area is not None:
        target.area = Area.objects.select_for_update().get(pk=target.area.pk)
    elif target.salesperson_id is not None:
        Salesperson.objects.select_for_update().filter(pk=target.salesperson_id).first()


def _no_target(lead: Lead, checked: list[dict[str, object]], now: datetime) -> Assignment:
    step = _("No rule matched and there is no default area: the lead waits.")
    if not Alert.objects.filter(active=True, kind=Alert.Kind.ROUTING_WAITING).exists():
        Alert.objects.create(
            kind=Alert.Kind.ROUTING_WAITING,
            message=_("Lead #%(id)s matched no rule and there is no default area.")
            % {"id": lead.pk},
        )
    return Assignment.objects.create(
        lead=lead,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.WAITING,
        deciding_step=step,
        explanation={"rules_checked": checked, "steps": [step], "deciding_step": step},
        decided_at=now,
    )


def _persist(
    decision: Decision,
    *,
    lead: Lead,
    kind: str,
    now: datetime,
    previous: Assignment | None = None,
) -> Assignment:
    area = decision.target.area
    if previous is not None:
        Assignment.objects.filter(pk=previous.pk).update(is_current=False, ended_at=now)
    if decision.turn is not None and area is not None:
        Area.objects.filter(pk=area.pk).update(rotation_seq=decision.turn)
        area.rotation_seq = decision.turn
        # F() updates: two statements whatever the size of the area (not a row per member).
        weighted = decision.strategy == Strategy.WEIGHTED
        tier = [c.membership_id for c in decision.rotated if c.membership_id is not None]
        chosen = next(c for c in decision.rotated if c.salesperson_id == decision.salesperson_id)
        if weighted:
            AreaMembership.objects.filter(pk__in=tier).update(
                current_weight=F("current_weight") + F("weight")
            )
        total = sum(c.weight for c in decision.rotated) if weighted else 0
        AreaMembership.objects.filter(pk=chosen.membership_id or 0).update(
            last_turn=chosen.last_turn, current_weight=F("current_weight") - total
        )
    sla_due = None
    if decision.salesperson_id is not None:
        Salesperson.objects.filter(pk=decision.salesperson_id).update(last_assigned_at=now)
        if area is not None and area.reply_sla_minutes and decision.calendar is not None:
            sla_due = decision.calendar.add_working_minutes(now, area.reply_sla_minutes)
    else:
        if area is not None or decision.target.salesperson_id is not None:
            _alert_waiting(lead, decision)
    rule = decision.target.rule
    return Assignment.objects.create(
        lead=lead,
        salesperson_id=decision.salesperson_id,
        area=area,
        target_salesperson_id=decision.target.salesperson_id,
        rule_id=rule.id if rule else None,
        rule_name=rule.name if rule else "",
        kind=kind,
        status=AssignmentStatus.ASSIGNED if decision.salesperson_id else AssignmentStatus.WAITING,
        strategy=decision.strategy,
        deciding_step=decision.deciding_step[:200],
        explanation=decision.explanation(),
        decided_at=now,
        sla_due_at=sla_due,
    )


def _alert_waiting(lead: Lead, decision: Decision) -> None:
    if Alert.objects.filter(active=True, kind=Alert.Kind.ROUTING_WAITING).exists():
        return  # one open alert says "leads are waiting"; the queue itself is on the admin
    if decision.target.area is not None:
        message = _("Lead #%(id)s is waiting: nobody in %(area)s is available.") % {
            "id": lead.pk,
            "area": decision.target.area.name,
        }
    else:
        message = _("Lead #%(id)s is waiting: the salesperson its rule names is unavailable.") % {
            "id": lead.pk
        }
    Alert.objects.create(kind=Alert.Kind.ROUTING_WAITING, message=message)


def _drain_locked(target: Target, *, now: datetime, limit: int = 200) -> list[Assignment]:
    """Assign waiting leads of this target, oldest first, while someone can take them."""
    area_id = target.area.pk if target.area else None
    queue = list(
        waiting_assignments(area_id=area_id, salesperson_id=target.salesperson_id)
        .select_related("lead")
        .select_for_update(skip_locked=True, of=("self",))[:limit]
    )
    assigned: list[Assignment] = []
    for waiting in queue:
        decision = decide(
            target=Target(area=target.area, salesperson_id=target.salesperson_id, rule=None),
            lead=waiting.lead,
            at=now,
        )
        if decision.salesperson_id is None:
            break
        decision.rules_checked = waiting.explanation.get("rules_checked", [])
        decision.target.rule = None
        decision.steps.insert(
            0,
            _("Waited since %(at)s.")
            % {"at": timezone.localtime(waiting.decided_at).strftime("%d/%m %H:%M")},
        )
        new = _persist(
            decision, lead=waiting.lead, kind=AssignmentKind.BACKLOG, now=now, previous=waiting
        )
        new.rule_id, new.rule_name = waiting.rule_id, waiting.rule_name
        new.save(update_fields=["rule", "rule_name"])
        assigned.append(new)
    return assigned


def backlog_drain(
    *, now: datetime | None = None, then: OnAssigned | None = None
) -> list[Assignment]:
    """Give waiting leads to whoever became available (scheduler, admin edits, closed leads)."""
    now = now or timezone.now()
    assigned: list[Assignment] = []
    for area_id, salesperson_id in waiting_targets():
        if area_id is None and salesperson_id is None:
            assigned += _drain_unrouted(now=now, then=then)
            continue
        with transaction.atomic():
            area = Area.objects.filter(pk=area_id).first() if area_id else None
            target = Target(area=area, salesperson_id=salesperson_id, rule=None)
            if area_id and area is None:
                continue
            _lock(target)
            drained = _drain_locked(target, now=now)
            if then is not None:
                for assignment in drained:
                    then(assignment)
            assigned += drained
    if (
        assigned
        and not Assignment.objects.filter(is_current=True, status=AssignmentStatus.WAITING).exists()
    ):
        Alert.objects.filter(active=True, kind=Alert.Kind.ROUTING_WAITING).update(
            active=False, resolved_at=now
        )
    return assigned


def _drain_unrouted(*, now: datetime, then: OnAssigned | None) -> list[Assignment]:
    """Leads that matched nothing (no rule, no default area) are routed again: a manager may
    have added the missing rule or default area since."""
    rules, default = rules_compiled(), area_default()
    if not rules and default is None:
        return []
    assigned: list[Assignment] = []
    for waiting in waiting_assignments(area_id=None, salesperson_id=None).select_related("lead"):
        with transaction.atomic():
            lead = (
                Lead.objects.select_for_update(of=("self",))
                .select_related("contact")
                .get(pk=waiting.lead_id)
            )
            target, checked = target_for(
                facts=lead_facts(lead), rules=rules, default=_locked_default_area
            )
            if target is None:
                continue
            target = _resolved_and_locked(target)
            decision = decide(target=target, lead=lead, at=now)
            decision.rules_checked = checked
            new = _persist(
                decision, lead=lead, kind=AssignmentKind.BACKLOG, now=now, previous=waiting
            )
            if new.salesperson_id is not None:
                assigned.append(new)
                if then is not None:
                    then(new)
    return assigned


def sla_reassign_due(
    *, now: datetime | None = None, then: OnAssigned | None = None, limit: int = 100
) -> list[Assignment]:
    """Leads whose salesperson neither replied nor moved them within the area's SLA go to the
    next person by the same strategy. Returns the new assignments."""
    now = now or timezone.now()
    due_ids = list(
        Assignment.objects.filter(
            is_current=True,
            status=AssignmentStatus.ASSIGNED,
            sla_due_at__lte=now,
            responded_at__isnull=True,
        )
        .order_by("sla_due_at")
        .values_list("lead_id", flat=True)[:limit]
    )
    reassigned: list[Assignment] = []
    for lead_id in due_ids:
        with transaction.atomic():
            new = _sla_reassign_one(lead_id=lead_id, now=now)
            if new is not None:
                if then is not None:
                    then(new)
                reassigned.append(new)
    return reassigned


def _sla_reassign_one(*, lead_id: int, now: datetime) -> Assignment | None:
    with transaction.atomic():
        # of=self: the contact is a nullable join, which Postgres cannot lock (FOR UPDATE).
        lead = (
            Lead.objects.select_for_update(of=("self",)).select_related("contact").get(pk=lead_id)
        )
        current = (
            Assignment.objects.select_related("area")
            .filter(lead=lead, is_current=True, status=AssignmentStatus.ASSIGNED)
            .first()
        )
        if current is None or current.responded_at or not current.sla_due_at:
            return None
        if current.sla_due_at > now or current.area is None:
            return None
        target = Target(area=current.area, salesperson_id=None, rule=None)
        _lock(target)
        decision = decide(target=target, lead=None, at=now, exclude=[current.salesperson_id or 0])
        if decision.salesperson_id is None:
            # Nobody else can take it: it stays, the clock stops, and a manager is told.
            Assignment.objects.filter(pk=current.pk).update(sla_due_at=None)
            Alert.objects.create(
                kind=Alert.Kind.ROUTING,
                message=_(
                    "Lead #%(id)s missed the reply SLA but nobody else in %(area)s is available; "
                    "it stays with %(name)s."
                )
                % {"id": lead.pk, "area": current.area.name, "name": current.salesperson},
            )
            return None
        decision.steps.insert(
            0,
            _("%(name)s did not reply within %(min)d working minutes.")
            % {"name": current.salesperson, "min": current.area.reply_sla_minutes or 0},
        )
        new = _persist(decision, lead=lead, kind=AssignmentKind.SLA, now=now, previous=current)
        new.rule_id, new.rule_name = current.rule_id, current.rule_name
        new.save(update_fields=["rule", "rule_name"])
        return new


def assignment_mark_responded(*, lead_id: int, at: datetime) -> bool:
    """The salesperson replied or moved the lead: the SLA clock stops for this assignment."""
    return bool(
        Assignment.objects.filter(
            lead_id=lead_id,
            is_current=True,
            status=AssignmentStatus.ASSIGNED,
            responded_at__isnull=True,
            decided_at__lte=at,
        ).update(responded_at=at)
    )


def assignment_from_kommo_owner(
    *, lead_id: int, kommo_user_id: int, now: datetime | None = None
) -> Assignment | None:
    """Someone changed the responsible user in Kommo: that is the truth from now on.

    Returns the new assignment, or None when Kommo only repeats the owner we already have.
    """
    now = now or timezone.now()
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead_id)
        current = (
            Assignment.objects.select_related("salesperson")
            .filter(lead=lead, is_current=True)
            .first()
        )
        person = Salesperson.objects.filter(kommo_user_id=kommo_user_id).first()
        if current is not None and current.salesperson_id and current.salesperson == person:
            return None
        if current is None and person is None:
            return None  # not one of ours, and the hub has not routed it: nothing to record
        if person is not None:
            step = _("Changed in Kommo to %(name)s.") % {"name": person.name}
        else:
            step = _("Changed in Kommo to user %(id)d, who is not a salesperson here.") % {
                "id": kommo_user_id
            }
        if current is not None:
            Assignment.objects.filter(pk=current.pk).update(is_current=False, ended_at=now)
        if person is not None:
            Salesperson.objects.filter(pk=person.pk).update(last_assigned_at=now)
        return Assignment.objects.create(
            lead=lead,
            salesperson=person,
            area=current.area if current else None,
            rule=current.rule if current else None,
            rule_name=current.rule_name if current else "",
            kind=AssignmentKind.KOMMO,
            status=AssignmentStatus.ASSIGNED,
            deciding_step=step[:200],
            explanation={
                "steps": [step],
                "deciding_step": step,
                "kommo_user_id": kommo_user_id,
                "chosen": person.name if person else None,
            },
            decided_at=now,
            # The owner chose this lead themselves: no reply clock.
            responded_at=now,
        )
