"""lead_route and friends against the database: rules, strategies, availability, sticky owners,
fallbacks, the waiting queue, the reply SLA and owners changed in Kommo."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from kommo_hub.models import Alert, Lead
from routing.models import (
    Area,
    AreaMembership,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    ConditionOperator,
    RoutingRule,
    RuleCondition,
    Strategy,
)
from routing.services import (
    assignment_from_kommo_owner,
    assignment_mark_responded,
    backlog_drain,
    lead_route,
    sla_reassign_due,
)
from tests.factories import ContactFactory, LeadFactory
from tests.routing.factories import (
    AreaFactory,
    AreaMembershipFactory,
    CompanyHolidayFactory,
    SalespersonFactory,
    TimeOffFactory,
    WorkingHoursFactory,
    always_working,
)

pytestmark = pytest.mark.django_db
SP = ZoneInfo("America/Sao_Paulo")
WEDNESDAY_10H = datetime(2026, 11, 25, 10, 0, tzinfo=SP)


def team(area: Area, *names: str, weights: tuple[int, ...] = ()) -> list:
    people = []
    for i, name in enumerate(names):
        person = SalespersonFactory(name=name)
        always_working(person)
        AreaMembershipFactory(area=area, salesperson=person, weight=weights[i] if weights else 1)
        people.append(person)
    return people


def rule(name: str, area: Area | None = None, person=None, position: int = 0, **conds: str):
    r = RoutingRule.objects.create(
        name=name, position=position, target_area=area, target_salesperson=person
    )
    for field, value in conds.items():
        RuleCondition.objects.create(
            rule=r, field=field, operator=ConditionOperator.EQUALS, value=value
        )
    return r


def route(lead: Lead, at: datetime = WEDNESDAY_10H) -> Assignment:
    return lead_route(lead_id=lead.pk, now=at).assignment


def test_round_robin_area_gives_each_member_a_lead_in_turn() -> None:
    area = AreaFactory(is_default=True, strategy=Strategy.ROUND_ROBIN)
    team(area, "Ana", "Bruno", "Carla")
    names = [route(LeadFactory()).salesperson.name for _ in range(6)]
    assert names == ["Ana", "Bruno", "Carla", "Ana", "Bruno", "Carla"]


def test_first_matching_rule_wins_and_the_default_area_catches_the_rest() -> None:
    tax = AreaFactory(name="Tributário")
    labor = AreaFactory(name="Trabalhista", is_default=True)
    team(tax, "Ana")
    team(labor, "Bruno")
    rule("Google → tributário", tax, position=1, utm_source="google")
    rule("Google também", labor, position=2, utm_source="google")
    google = route(LeadFactory(utm={"utm_source": "google"}))
    other = route(LeadFactory(utm={"utm_source": "facebook"}))
    assert (google.area, google.salesperson.name, google.rule_name) == (
        tax,
        "Ana",
        "Google → tributário",
    )
    assert (other.area, other.salesperson.name, other.rule_id) == (labor, "Bruno", None)
    assert [r["matched"] for r in other.explanation["rules_checked"]] == [False, False]
    assert other.explanation["steps"][0] == "No rule matched: default area “Trabalhista”."


def test_rule_can_send_leads_to_one_salesperson() -> None:
    area = AreaFactory(is_default=True)
    team(area, "Ana")
    vip = SalespersonFactory(name="Vera")
    always_working(vip)
    rule("VIP", person=vip, source="vip-form")
    assignment = route(LeadFactory(source="vip-form"))
    assert assignment.salesperson == vip
    assert assignment.area is None
    assert assignment.deciding_step == "The rule sends these leads to Vera."


def test_unavailable_people_are_dropped_with_the_reason() -> None:
    area = AreaFactory(is_default=True)
    ana, bruno, carla, davi, eva = team(area, "Ana", "Bruno", "Carla", "Davi", "Eva")
    bruno.active = False
    bruno.save()
    TimeOffFactory(salesperson=carla, first_day=date(2026, 11, 20), last_day=date(2026, 11, 30))
    davi.max_open_leads = 0
    davi.save()
    eva.working_hours.all().delete()
    WorkingHoursFactory(salesperson=eva, weekday=2, starts=time(13), ends=time(18))
    assignment = route(LeadFactory())
    reasons = {c["name"]: (c["kept"], c["reason"]) for c in assignment.explanation["candidates"]}
    assert assignment.salesperson == ana
    assert reasons["Ana"] == (True, "available")
    assert reasons["Bruno"] == (False, "inactive")
    assert reasons["Carla"][0] is False
    assert "30/11/2026" in reasons["Carla"][1]
    assert reasons["Davi"] == (False, "reached the cap of open leads (0/0)")
    assert reasons["Eva"][0] is False


def test_daily_cap_counts_todays_assignments() -> None:
    area = AreaFactory(is_default=True)
    ana, _bruno = team(area, "Ana", "Bruno")
    ana.max_new_leads_per_day = 1
    ana.save()
    names = [route(LeadFactory()).salesperson.name for _ in range(4)]
    assert names == ["Ana", "Bruno", "Bruno", "Bruno"]
    tomorrow = WEDNESDAY_10H + timedelta(days=1)
    assert route(LeadFactory(), at=tomorrow).salesperson == ana


def test_company_holiday_makes_everyone_unavailable() -> None:
    area = AreaFactory(is_default=True)
    team(area, "Ana")
    CompanyHolidayFactory(date=date(2026, 11, 25), name="Aniversário da empresa")
    assignment = route(LeadFactory())
    assert assignment.status == AssignmentStatus.WAITING
    assert "Aniversário da empresa" in assignment.explanation["candidates"][0]["reason"]


def test_weighted_area_follows_the_weights() -> None:
    area = AreaFactory(is_default=True, strategy=Strategy.WEIGHTED)
    team(area, "Ana", "Bruno", weights=(3, 1))
    names = [route(LeadFactory()).salesperson.name for _ in range(8)]
    assert names.count("Ana") == 6
    assert names.count("Bruno") == 2


def test_least_loaded_area_counts_only_open_leads() -> None:
    area = AreaFactory(is_default=True, strategy=Strategy.LEAST_LOADED)
    ana, bruno = team(area, "Ana", "Bruno")
    for _ in range(2):
        won = LeadFactory(kommo_status_id=142)
        Assignment.objects.create(
            lead=won,
            salesperson=ana,
            area=area,
            kind="new",
            status="assigned",
            decided_at=WEDNESDAY_10H - timedelta(days=3),
        )
    open_lead = LeadFactory()
    Assignment.objects.create(
        lead=open_lead,
        salesperson=bruno,
        area=area,
        kind="new",
        status="assigned",
        decided_at=WEDNESDAY_10H - timedelta(days=3),
    )
    assert route(LeadFactory()).salesperson == ana


def test_returning_contact_goes_back_to_their_salesperson() -> None:
    area = AreaFactory(is_default=True)
    team(area, "Ana", "Bruno", "Carla")
    contact = ContactFactory()
    first = route(LeadFactory(contact=contact))
    route(LeadFactory())
    again = route(LeadFactory(contact=ContactFactory(), phone=contact.phone))
    assert again.salesperson == first.salesperson
    assert (
        again.deciding_step
        == f"Returning contact: back to their salesperson {first.salesperson.name}."
    )


def test_returning_contact_whose_salesperson_is_away_follows_the_strategy() -> None:
    area = AreaFactory(is_default=True)
    ana, bruno = team(area, "Ana", "Bruno")
    contact = ContactFactory()
    assert route(LeadFactory(contact=contact)).salesperson == ana
    TimeOffFactory(salesperson=ana, first_day=date(2026, 11, 26), last_day=date(2026, 11, 27))
    again = route(LeadFactory(contact=contact), at=WEDNESDAY_10H + timedelta(days=1))
    assert again.salesperson == bruno
    assert any(
        "Returning contact's salesperson Ana is unavailable" in s
        for s in again.explanation["steps"]
    )


def test_lead_owned_in_kommo_goes_to_that_salesperson() -> None:
    area = AreaFactory(is_default=True)
    _, bruno = team(area, "Ana", "Bruno")
    bruno.kommo_user_id = 777
    bruno.save()
    assignment = route(LeadFactory(kommo_responsible_user_id=777))
    assert assignment.salesperson == bruno
    assert assignment.deciding_step == "Owned in Kommo by Bruno, who is available."


def test_sticky_can_be_switched_off_per_area() -> None:
    area = AreaFactory(is_default=True, sticky_owner=False)
    team(area, "Ana", "Bruno")
    contact = ContactFactory()
    route(LeadFactory(contact=contact))
    assert route(LeadFactory(contact=contact)).salesperson.name == "Bruno"


def test_nobody_available_goes_to_area_fallback_then_duty_then_waits() -> None:
    area = AreaFactory(is_default=True)
    (ana,) = team(area, "Ana")
    ana.working_hours.all().delete()
    fallback = SalespersonFactory(name="Fábio")
    always_working(fallback)
    area.fallback_salesperson = fallback
    area.save()
    assert route(LeadFactory()).salesperson == fallback
    fallback.active = False
    fallback.save()
    duty = SalespersonFactory(name="Plantão", is_duty=True)
    always_working(duty)
    assert route(LeadFactory()).deciding_step == "Global fallback (on duty): Plantão."
    duty.active = False
    duty.save()
    waiting = route(LeadFactory())
    assert waiting.status == AssignmentStatus.WAITING
    assert waiting.salesperson is None
    assert waiting.deciding_step == "Nobody available: the lead waits, first in first out."
    assert Alert.objects.filter(kind=Alert.Kind.ROUTING_WAITING, active=True).count() == 1


def test_waiting_leads_are_assigned_first_in_first_out_when_someone_is_back() -> None:
    area = AreaFactory(is_default=True)
    (ana,) = team(area, "Ana")
    ana.active = False
    ana.save()
    leads = [LeadFactory() for _ in range(3)]
    for n, lead in enumerate(leads):
        route(lead, at=WEDNESDAY_10H + timedelta(minutes=n))
    ana.active = True
    ana.max_open_leads = 2
    ana.save()
    drained = backlog_drain(now=WEDNESDAY_10H + timedelta(hours=1))
    assert [a.lead for a in drained] == leads[:2]
    assert all(a.kind == AssignmentKind.BACKLOG for a in drained)
    still = Assignment.objects.get(lead=leads[2], is_current=True)
    assert still.status == AssignmentStatus.WAITING
    assert Alert.objects.filter(kind=Alert.Kind.ROUTING_WAITING, active=True).count() == 1


def test_a_new_lead_does_not_jump_the_waiting_queue() -> None:
    area = AreaFactory(is_default=True)
    (ana,) = team(area, "Ana")
    ana.active = False
    ana.save()
    early = LeadFactory()
    route(early)
    ana.active = True
    ana.save()
    result = lead_route(lead_id=LeadFactory().pk, now=WEDNESDAY_10H + timedelta(minutes=5))
    assert [a.lead for a in result.drained] == [early]
    assert result.assignment.salesperson == ana


def test_no_rule_and_no_default_area_waits_with_one_alert_until_a_default_area_exists() -> None:
    leads = [LeadFactory(), LeadFactory()]
    assert [route(lead).status for lead in leads] == [AssignmentStatus.WAITING] * 2
    assert Alert.objects.filter(kind=Alert.Kind.ROUTING_WAITING, active=True).count() == 1
    assert backlog_drain(now=WEDNESDAY_10H) == []
    team(AreaFactory(is_default=True), "Ana", "Bruno")
    drained = backlog_drain(now=WEDNESDAY_10H + timedelta(minutes=1))
    assert [(a.lead, a.salesperson.name, a.kind) for a in drained] == [
        (leads[0], "Ana", AssignmentKind.BACKLOG),
        (leads[1], "Bruno", AssignmentKind.BACKLOG),
    ]
    assert not Alert.objects.filter(kind=Alert.Kind.ROUTING_WAITING, active=True).exists()


def test_routing_a_lead_twice_keeps_the_first_assignment() -> None:
    area = AreaFactory(is_default=True)
    team(area, "Ana", "Bruno")
    lead = LeadFactory()
    first = lead_route(lead_id=lead.pk, now=WEDNESDAY_10H)
    second = lead_route(lead_id=lead.pk, now=WEDNESDAY_10H)
    assert (first.created, second.created) == (True, False)
    assert second.assignment == first.assignment
    assert Assignment.objects.count() == 1
    assert AreaMembership.objects.get(salesperson__name="Bruno").last_turn == 0


def _office_hours(person) -> None:
    for day in range(5):
        WorkingHoursFactory(salesperson=person, weekday=day, starts=time(9), ends=time(12))
        WorkingHoursFactory(salesperson=person, weekday=day, starts=time(13), ends=time(18))


def test_sla_is_counted_in_working_time_and_reassigns_with_the_same_strategy() -> None:
    area = AreaFactory(is_default=True, reply_sla_minutes=30)
    ana, bruno = SalespersonFactory(name="Ana"), SalespersonFactory(name="Bruno")
    for person in (ana, bruno):
        _office_hours(person)
        AreaMembershipFactory(area=area, salesperson=person)
    at = datetime(2026, 11, 25, 11, 50, tzinfo=SP)
    assignment = route(LeadFactory(), at=at)
    assert assignment.salesperson == ana
    assert assignment.sla_due_at == datetime(2026, 11, 25, 13, 20, tzinfo=SP)  # lunch not counted
    assert sla_reassign_due(now=datetime(2026, 11, 25, 13, 19, tzinfo=SP)) == []
    with time_machine.travel(datetime(2026, 11, 25, 13, 21, tzinfo=SP), tick=False):
        reassigned = sla_reassign_due()
    assert len(reassigned) == 1
    new = reassigned[0]
    assert (new.salesperson, new.kind, new.is_current) == (bruno, AssignmentKind.SLA, True)
    assert new.explanation["steps"][0] == "Ana did not reply within 30 working minutes."
    reasons = {c["name"]: c["reason"] for c in new.explanation["candidates"]}
    assert reasons["Ana"] == "current owner: missed the reply SLA"
    assignment.refresh_from_db()
    assert (assignment.is_current, assignment.ended_at is not None) == (False, True)


def test_a_reply_stops_the_sla_clock() -> None:
    area = AreaFactory(is_default=True, reply_sla_minutes=30)
    team(area, "Ana", "Bruno")
    lead = LeadFactory()
    route(lead)
    assert assignment_mark_responded(lead_id=lead.pk, at=WEDNESDAY_10H + timedelta(minutes=10))
    assert sla_reassign_due(now=WEDNESDAY_10H + timedelta(hours=2)) == []


def test_sla_with_nobody_else_keeps_the_owner_and_alerts() -> None:
    area = AreaFactory(is_default=True, reply_sla_minutes=30)
    (ana,) = team(area, "Ana")
    lead = LeadFactory()
    route(lead)
    assert sla_reassign_due(now=WEDNESDAY_10H + timedelta(hours=1)) == []
    current = Assignment.objects.get(lead=lead, is_current=True)
    assert (current.salesperson, current.sla_due_at) == (ana, None)
    assert "missed the reply SLA" in Alert.objects.get(kind=Alert.Kind.ROUTING).message


def test_owner_changed_in_kommo_is_the_new_truth_and_sticky_follows_it() -> None:
    area = AreaFactory(is_default=True)
    ana, bruno = team(area, "Ana", "Bruno")
    bruno.kommo_user_id = 555
    bruno.save()
    contact = ContactFactory()
    lead = LeadFactory(contact=contact)
    assert route(lead).salesperson == ana
    later = WEDNESDAY_10H + timedelta(minutes=1)
    changed = assignment_from_kommo_owner(lead_id=lead.pk, kommo_user_id=555, now=later)
    assert (changed.salesperson, changed.kind) == (bruno, AssignmentKind.KOMMO)
    assert assignment_from_kommo_owner(lead_id=lead.pk, kommo_user_id=555) is None
    assert route(LeadFactory(contact=contact)).salesperson == bruno


def _queries_for_one_assignment(rules: int, people: int) -> int:
    area = AreaFactory(is_default=True, strategy=Strategy.WEIGHTED)
    for n in range(rules):
        rule(f"r{n}", area, position=n, source=f"nope-{n}")
    team(area, *[f"P{n}" for n in range(people)])
    lead = LeadFactory()
    with CaptureQueriesContext(connection) as queries:
        lead_route(lead_id=lead.pk, now=WEDNESDAY_10H)
    Assignment.objects.all().delete()
    AreaMembership.objects.all().delete()
    RoutingRule.objects.all().delete()
    Area.objects.all().delete()
    return len(queries)


def test_queries_per_assignment_do_not_grow_with_rules_or_people() -> None:
    small = _queries_for_one_assignment(rules=2, people=2)
    large = _queries_for_one_assignment(rules=60, people=40)
    assert small == large


@pytest.mark.parametrize("strategy", [Strategy.ROUND_ROBIN, Strategy.WEIGHTED])
def test_back_from_vacation_gets_the_normal_share_not_the_missed_leads(strategy: str) -> None:
    area = AreaFactory(is_default=True, strategy=strategy)
    ana, _, _ = team(area, "Ana", "Bruno", "Carla")
    TimeOffFactory(salesperson=ana, first_day=date(2026, 11, 25), last_day=date(2026, 11, 26))
    for n in range(20):
        route(LeadFactory(), at=WEDNESDAY_10H + timedelta(minutes=n))
    back = datetime(2026, 11, 27, 10, 0, tzinfo=SP)
    names = [
        route(LeadFactory(), at=back + timedelta(minutes=n)).salesperson.name for n in range(9)
    ]
    assert sorted(names) == ["Ana"] * 3 + ["Bruno"] * 3 + ["Carla"] * 3
    assert names[:3].count("Ana") == 1
