"""Reads for routing. Every function issues a fixed number of queries, whatever the number of
rules, areas or salespeople (bench/routing.py holds us to it)."""

from datetime import datetime

from django.db import connection
from django.db.models import Count, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from kommo_hub.models import Lead
from routing.conditions import CompiledRule, compile_rules
from routing.models import (
    Area,
    AreaMembership,
    Assignment,
    AssignmentStatus,
    RoutingRule,
    Salesperson,
)
from routing.strategies import Candidate

# Kommo's system stages: 142 won, 143 lost. A lead there no longer counts as open work.
CLOSED_STATUSES = (142, 143)


_compiled: dict[str, tuple[tuple[object, ...], list[CompiledRule]]] = {}


def forget_compiled_rules() -> None:
    _compiled.clear()


def rules_compiled() -> list[CompiledRule]:
    """The active rules, compiled once per change: each call costs one small aggregate query,
    and every process sees a manager's edit on its next lead."""
    version = tuple(
        RoutingRule.objects.aggregate(
            n_rules=Count("pk", distinct=True),
            changed=Max("updated_at"),
            n_conditions=Count("conditions"),
            last_condition=Max("conditions__pk"),
        ).values()
    )
    key = connection.alias
    cached = _compiled.get(key)
    if cached is not None and cached[0] == version:
        return cached[1]
    rules = RoutingRule.objects.filter(active=True).prefetch_related("conditions")
    compiled = compile_rules(rules.order_by("position", "pk"))
    _compiled[key] = (version, compiled)
    return compiled


def area_default() -> Area | None:
    return Area.objects.filter(is_default=True, active=True).first()


def open_leads_q(prefix: str = "") -> Q:
    """Current, assigned, still open in Kommo."""
    return (
        Q(**{f"{prefix}is_current": True, f"{prefix}status": AssignmentStatus.ASSIGNED})
        & ~Q(**{f"{prefix}lead__kommo_status_id__in": CLOSED_STATUSES})
        & Q(**{f"{prefix}lead__deleted_in_kommo": False})
    )


def _count(queryset: QuerySet[Assignment]) -> Coalesce:
    counted = queryset.order_by().values("salesperson").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _loads(outer: str, day_start: datetime) -> dict[str, Coalesce]:
    mine = Assignment.objects.filter(salesperson=OuterRef(outer))
    return {
        "open_leads": _count(mine.filter(open_leads_q())),
        "new_today": _count(mine.filter(decided_at__gte=day_start)),
    }


def area_candidates(*, area: Area, day_start: datetime) -> list[Candidate]:
    """Active members of the area with their loads and rotation state (one query)."""
    memberships = (
        AreaMembership.objects.filter(area=area, active=True)
        .select_related("salesperson")
        .annotate(**_loads("salesperson_id", day_start))
        .order_by("priority", "salesperson_id")
    )
    return [_candidate(m.salesperson, membership=m, loads=m) for m in memberships]


def salespeople_candidates(
    *, ids: list[int], include_duty: bool, day_start: datetime
) -> dict[int, Candidate]:
    """Specific people (a rule's target, an area's fallback) and the duty person (one query)."""
    query = Q(pk__in=[i for i in ids if i])
    if include_duty:
        query |= Q(is_duty=True)
    people = Salesperson.objects.filter(query).annotate(**_loads("pk", day_start))
    return {p.pk: _candidate(p, membership=None, loads=p) for p in people}


def _candidate(
    person: Salesperson, *, membership: AreaMembership | None, loads: object
) -> Candidate:
    candidate = Candidate(
        salesperson_id=person.pk,
        name=person.name,
        open_leads=int(getattr(loads, "open_leads", 0)),
        new_today=int(getattr(loads, "new_today", 0)),
        max_open_leads=person.max_open_leads,
        max_new_leads_per_day=person.max_new_leads_per_day,
        last_assigned_at=person.last_assigned_at,
        kommo_user_id=person.kommo_user_id,
        is_duty=person.is_duty,
    )
    if not person.active:
        candidate.dropped = _("inactive")
    if membership is not None:
        candidate.membership_id = membership.pk
        candidate.weight = membership.weight
        candidate.priority = membership.priority
        candidate.last_turn = membership.last_turn
        candidate.current_weight = membership.current_weight
    return candidate


def returning_owner_id(*, lead: Lead) -> tuple[int | None, str]:
    """The salesperson who owns this person already: by contact, phone or e-mail (one query),
    else the Kommo responsible user of the lead itself. Returns (salesperson id, how we know)."""
    same_person = Q()
    if lead.contact_id:
        same_person |= Q(lead__contact_id=lead.contact_id)
    if lead.phone:
        same_person |= Q(lead__phone=lead.phone)
    if lead.email:
        same_person |= Q(lead__email=lead.email)
    if same_person:
        owner = (
            Assignment.objects.filter(same_person, salesperson__isnull=False)
            .exclude(lead_id=lead.pk)
            .order_by("-is_current", "-decided_at", "-pk")
            .values_list("salesperson_id", flat=True)
            .first()
        )
        if owner:
            return owner, "contact"
    if lead.kommo_responsible_user_id:
        owner = (
            Salesperson.objects.filter(kommo_user_id=lead.kommo_responsible_user_id)
            .values_list("pk", flat=True)
            .first()
        )
        if owner:
            return owner, "kommo"
    return None, ""


def waiting_assignments(*, area_id: int | None, salesperson_id: int | None) -> QuerySet[Assignment]:
    """The queue of one target, oldest first."""
    same_target = Q(area__isnull=True) if area_id is None else Q(area_id=area_id)
    same_target &= (
        Q(target_salesperson__isnull=True)
        if salesperson_id is None
        else Q(target_salesperson_id=salesperson_id)
    )
    return Assignment.objects.filter(
        same_target, is_current=True, status=AssignmentStatus.WAITING
    ).order_by("decided_at", "pk")


def waiting_targets() -> list[tuple[int | None, int | None]]:
    rows = (
        Assignment.objects.filter(is_current=True, status=AssignmentStatus.WAITING)
        .values_list("area_id", "target_salesperson_id")
        .distinct()
    )
    return [(a, s) for a, s in rows]
