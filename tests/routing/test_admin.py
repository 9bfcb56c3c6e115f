"""The managers' routing admin: every page renders, bad rules are refused, "why did Ana get this
lead?" is readable and escaped, simulate and backtest write nothing, coverage gaps are listed,
and an edit that frees capacity assigns the waiting leads at once."""

from collections.abc import Iterator
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.forms import CheckboxInput
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from kommo_hub.models import Lead, OutboundAction
from routing.models import (
    Area,
    AreaMembership,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    ConditionField,
    ConditionOperator,
    RoutingRule,
    RuleCondition,
    Salesperson,
    WorkingHours,
)
from routing.services import lead_route
from tests.factories import LeadFactory
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


@pytest.fixture(autouse=True)
def english_on_a_wednesday(settings: Any) -> Iterator[None]:
    """Assertions read the English source strings; the clock is a Wednesday at 10:00."""
    settings.LANGUAGE_CODE = "en"
    with time_machine.travel(WEDNESDAY_10H, tick=False):
        yield


def member(area: Area, name: str, *, working: bool = True, **fields: Any) -> Salesperson:
    person = SalespersonFactory(name=name, **fields)
    if working:
        always_working(person)
    AreaMembershipFactory(area=area, salesperson=person)
    return person


def condition_rule(
    name: str, *, area: Area | None = None, person: Salesperson | None = None, **equals: str
) -> RoutingRule:
    rule = RoutingRule.objects.create(name=name, target_area=area, target_salesperson=person)
    for field, value in equals.items():
        RuleCondition.objects.create(
            rule=rule, field=field, operator=ConditionOperator.EQUALS, value=value
        )
    return rule


def route(lead: Lead) -> Assignment:
    return lead_route(lead_id=lead.pk).assignment


def rotation_state() -> tuple[list[Any], list[Any]]:
    return (
        list(Area.objects.order_by("pk").values_list("pk", "rotation_seq")),
        list(
            AreaMembership.objects.order_by("pk").values_list("pk", "last_turn", "current_weight")
        ),
    )


def form_data(response: Any) -> dict[str, str]:
    """The POST a browser would send back for an admin change form, unchanged."""
    data: dict[str, str] = {}

    def add(form: Any) -> None:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field.widget, CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = "" if value is None else str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def html(response: Any) -> str:
    return response.content.decode()


# --- Every page renders ------------------------------------------------------------------------


@pytest.fixture
def one_of_each() -> dict[str, int]:
    area = AreaFactory(name="Vendas", is_default=True)
    ana = member(area, "Ana")
    TimeOffFactory(salesperson=ana)
    holiday = CompanyHolidayFactory()
    rule = condition_rule("Google", area=area, utm_source="google")
    assignment = route(LeadFactory())
    return {
        "area": area.pk,
        "salesperson": ana.pk,
        "companyholiday": holiday.pk,
        "routingrule": rule.pk,
        "assignment": assignment.pk,
    }


@pytest.mark.parametrize(
    "model", ["area", "salesperson", "companyholiday", "routingrule", "assignment"]
)
def test_changelist_and_change_page_of_every_routing_model_render(
    admin_client: Client, one_of_each: dict[str, int], model: str
) -> None:
    changelist = admin_client.get(reverse(f"admin:routing_{model}_changelist"))
    change = admin_client.get(reverse(f"admin:routing_{model}_change", args=[one_of_each[model]]))
    assert (changelist.status_code, change.status_code) == (200, 200)


@pytest.mark.parametrize("model", ["area", "salesperson", "companyholiday", "routingrule"])
def test_add_page_of_every_editable_routing_model_renders(admin_client: Client, model: str) -> None:
    assert admin_client.get(reverse(f"admin:routing_{model}_add")).status_code == 200


def test_assignments_cannot_be_added_changed_or_deleted(
    admin_client: Client, one_of_each: dict[str, int]
) -> None:
    pk = one_of_each["assignment"]
    assert admin_client.get(reverse("admin:routing_assignment_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:routing_assignment_delete", args=[pk])).status_code == 403
    )
    assert Assignment.objects.filter(pk=pk).exists()


def test_salesperson_list_shows_caps_areas_and_open_leads(admin_client: Client) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    member(area, "Ana", max_open_leads=10, max_new_leads_per_day=3)
    route(LeadFactory())
    route(LeadFactory())

    response = admin_client.get(reverse("admin:routing_salesperson_changelist"))

    row = response.context["cl"].result_list[0]
    assert (row.name, row.open_leads_count) == ("Ana", 2)
    page = html(response)
    assert '<td class="field-caps">10 / 3</td>' in page
    assert '<td class="field-areas">Vendas</td>' in page
    assert '<td class="field-open_leads">2</td>' in page


def test_rule_list_shows_target_conditions_and_the_simulate_and_backtest_buttons(
    admin_client: Client,
) -> None:
    area = AreaFactory(name="Tributário")
    condition_rule("Google", area=area, utm_source="google", source="website")

    page = html(admin_client.get(reverse("admin:routing_routingrule_changelist")))

    assert '<td class="field-target">area: Tributário</td>' in page
    assert "utm_source equals “google” and source equals “website”" in page
    assert f'href="{reverse("admin:routing_routingrule_simulate")}">Simulate</a>' in page
    assert f'href="{reverse("admin:routing_routingrule_backtest")}">Backtest</a>' in page


# --- Rules are validated when saved ------------------------------------------------------------


def rule_post(area: Area | None, person: Salesperson | None, **condition: str) -> dict[str, str]:
    data = {
        "name": "Regra",
        "position": "1",
        "active": "on",
        "target_area": str(area.pk) if area else "",
        "target_salesperson": str(person.pk) if person else "",
        "conditions-TOTAL_FORMS": "1",
        "conditions-INITIAL_FORMS": "0",
        "conditions-MIN_NUM_FORMS": "0",
        "conditions-MAX_NUM_FORMS": "1000",
    }
    data |= {f"conditions-0-{key}": value for key, value in condition.items()}
    return data


def test_rule_with_a_valid_condition_is_saved(admin_client: Client) -> None:
    area = AreaFactory()
    response = admin_client.post(
        reverse("admin:routing_routingrule_add"),
        rule_post(area, None, field="utm_source", operator="regex", value="^goo", field_name=""),
    )
    assert response.status_code == 302
    rule = RoutingRule.objects.get()
    assert list(rule.conditions.values_list("field", "operator", "value")) == [
        ("utm_source", "regex", "^goo")
    ]


def test_rule_with_a_bad_regex_is_refused_with_the_reason_and_nothing_is_saved(
    admin_client: Client,
) -> None:
    area = AreaFactory()
    response = admin_client.post(
        reverse("admin:routing_routingrule_add"),
        rule_post(area, None, field="utm_source", operator="regex", value="(", field_name=""),
    )
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    message = "Invalid regular expression: missing ), unterminated subpattern at position 0"
    assert errors[0] == {"value": [message]}
    assert message in html(response)
    assert (RoutingRule.objects.count(), RuleCondition.objects.count()) == (0, 0)


def test_rule_on_a_lead_field_without_its_name_is_refused(admin_client: Client) -> None:
    area = AreaFactory()
    response = admin_client.post(
        reverse("admin:routing_routingrule_add"),
        rule_post(area, None, field="field", operator="equals", value="x", field_name=""),
    )
    assert response.status_code == 200
    assert response.context["inline_admin_formsets"][0].formset.errors[0] == {
        "field_name": ["Give the name of the lead field."]
    }
    assert RoutingRule.objects.count() == 0


def test_rule_with_two_targets_is_refused(admin_client: Client) -> None:
    area, person = AreaFactory(), SalespersonFactory()
    response = admin_client.post(
        reverse("admin:routing_routingrule_add"),
        rule_post(area, person, field="source", operator="equals", value="site", field_name=""),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "Choose exactly one target: an area or a salesperson."
    ]
    assert (RoutingRule.objects.count(), RuleCondition.objects.count()) == (0, 0)


def test_rule_with_no_target_is_refused(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:routing_routingrule_add"),
        rule_post(None, None, field="source", operator="equals", value="site", field_name=""),
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "Choose exactly one target: an area or a salesperson."
    ]
    assert RoutingRule.objects.count() == 0


# --- Why did Ana get this lead? ----------------------------------------------------------------


def test_assignment_page_explains_the_decision_with_every_value_escaped(
    admin_client: Client,
) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    member(area, "<script>alert('ana')</script>Ana")
    member(area, "Bruno", working=False)
    assignment = route(LeadFactory(name="<script>alert('lead')</script>"))

    page = html(admin_client.get(reverse("admin:routing_assignment_change", args=[assignment.pk])))

    assert "<script>alert(" not in page
    assert "Why did &lt;script&gt;alert(&#x27;ana&#x27;)&lt;/script&gt;Ana get this lead?" in page
    assert "&lt;script&gt;alert(&#x27;lead&#x27;)&lt;/script&gt;" in page
    assert "<li>No rule matched: default area “Vendas”.</li>" in page
    deciding = escape(assignment.deciding_step)
    assert f"<mark><strong>{deciding}</strong></mark>" in page
    assert f'<li class="routing-deciding-step"><mark>{deciding}</mark></li>' in page
    assert (
        '<tr class=""><td>Bruno</td><td>✘</td><td>off shift</td>'
        "<td>0</td><td>0</td><td>1</td><td>1</td></tr>"
    ) in page
    assert (
        '<tr class="routing-chosen"><td>&lt;script&gt;alert(&#x27;ana&#x27;)&lt;/script&gt;Ana'
        " <strong>← chosen</strong></td><td>✔</td><td>available</td>"
    ) in page
    assert f"?lead_id={assignment.lead_id}" in page


def test_assignment_page_lists_the_rules_checked_and_why(admin_client: Client) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    member(area, "Ana")
    condition_rule("Google", area=area, utm_source="google")
    assignment = route(LeadFactory(utm={"utm_source": "facebook"}))

    page = html(admin_client.get(reverse("admin:routing_assignment_change", args=[assignment.pk])))

    why = escape("; ".join(assignment.explanation["rules_checked"][0]["why"]))
    assert f"<li>✘ <strong>Google</strong>: did not match ({why})</li>" in page


def test_waiting_filter_lists_only_the_current_waiting_leads(admin_client: Client) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    member(area, "Ana", working=False)
    waiting = route(LeadFactory())
    member(AreaFactory(name="Outra"), "Bruno")

    response = admin_client.get(reverse("admin:routing_assignment_changelist") + "?queue=waiting")

    assert [a.pk for a in response.context["cl"].result_list] == [waiting.pk]
    assert "Why is this lead waiting?" in html(
        admin_client.get(reverse("admin:routing_assignment_change", args=[waiting.pk]))
    )


# --- Simulate ----------------------------------------------------------------------------------


@pytest.fixture
def sales_team() -> dict[str, Any]:
    area = AreaFactory(name="Vendas", is_default=True)
    ana, bruno = member(area, "Ana"), member(area, "Bruno")
    vip = SalespersonFactory(name="Vera")
    always_working(vip)
    rule = condition_rule("Google → Vera", person=vip, utm_source="google")
    first = LeadFactory(name="Primeiro")
    route(first)  # Ana: the rotation moved once
    return {"area": area, "ana": ana, "bruno": bruno, "vera": vip, "rule": rule, "first": first}


def test_simulate_shows_the_rule_the_chosen_salesperson_and_writes_nothing(
    admin_client: Client, sales_team: dict[str, Any]
) -> None:
    before = (Assignment.objects.count(), OutboundAction.objects.count(), rotation_state())
    url = reverse("admin:routing_routingrule_simulate")

    google = admin_client.get(url, {"utm_source": "google", "name": "Teste"})
    other = admin_client.get(url, {"utm_source": "facebook"})
    again = admin_client.get(url, {"utm_source": "facebook"})

    assert google.status_code == 200
    assert google.context["decision"].salesperson_name == "Vera"
    google_page = html(google)
    assert "<strong>Would go to Vera</strong>" in google_page
    assert "<li>✔ <strong>Google → Vera</strong>: matched" in google_page
    assert "The rule sends these leads to Vera." in google_page
    assert [
        other.context["decision"].salesperson_name,
        again.context["decision"].salesperson_name,
    ] == [
        "Bruno",
        "Bruno",
    ]
    assert "<li>✘ <strong>Google → Vera</strong>: did not match" in html(other)
    assert (Assignment.objects.count(), OutboundAction.objects.count(), rotation_state()) == before


def test_simulate_for_a_past_lead_uses_its_data(
    admin_client: Client, sales_team: dict[str, Any]
) -> None:
    past = LeadFactory(name="Do Google", utm={"utm_source": "google"})
    before = (Assignment.objects.count(), rotation_state())

    by_id = admin_client.get(reverse("admin:routing_routingrule_simulate"), {"lead_id": past.pk})
    by_pick = admin_client.get(reverse("admin:routing_routingrule_simulate"), {"lead": past.pk})

    assert by_id.context["lead"] == past
    assert by_id.context["decision"].salesperson_name == "Vera"
    assert by_pick.context["decision"].salesperson_name == "Vera"
    assert "Lead: Do Google" in html(by_id)
    assert (Assignment.objects.count(), rotation_state()) == before


def test_simulate_at_a_chosen_time_uses_that_time(
    admin_client: Client, sales_team: dict[str, Any]
) -> None:
    night = SalespersonFactory(name="Noturno")
    WorkingHoursFactory(salesperson=night, weekday=5, starts=time(20), ends=time(22))
    condition_rule("Noite", person=night, source="noite")
    url = reverse("admin:routing_routingrule_simulate")

    saturday = admin_client.get(url, {"source": "noite", "at": "2026-11-28T21:00"})
    now = admin_client.get(url, {"source": "noite"})

    assert saturday.context["decision"].salesperson_name == "Noturno"
    assert now.context["decision"].salesperson_id is None
    assert "<strong>Would wait: nobody available</strong>" in html(now)


def test_simulate_refuses_an_unknown_lead_and_bad_extra_fields(
    admin_client: Client, sales_team: dict[str, Any]
) -> None:
    response = admin_client.get(
        reverse("admin:routing_routingrule_simulate"),
        {"lead_id": 999999, "extra_fields": "interesse=trabalhista\nsem igual"},
    )
    assert response.context["form"].errors == {
        "extra_fields": ["Line 2 is not key=value: sem igual"],
        "lead_id": ["There is no lead #999999."],
    }
    assert "decision" not in response.context


def test_simulate_passes_extra_fields_to_the_rules(
    admin_client: Client, sales_team: dict[str, Any]
) -> None:
    labor = AreaFactory(name="Trabalhista")
    member(labor, "Tânia")
    RuleCondition.objects.create(
        rule=RoutingRule.objects.create(name="Interesse", target_area=labor, position=0),
        field=ConditionField.LEAD_FIELD,
        field_name="interesse",
        operator=ConditionOperator.EQUALS,
        value="trabalhista",
    )
    sales_team["rule"].position = 1
    sales_team["rule"].save()

    response = admin_client.get(
        reverse("admin:routing_routingrule_simulate"),
        {"extra_fields": "interesse = trabalhista\n\n", "tags": "a, b"},
    )

    assert response.context["decision"].salesperson_name == "Tânia"


# --- Backtest ----------------------------------------------------------------------------------


def test_backtest_compares_who_got_each_lead_with_todays_rules_and_writes_nothing(
    admin_client: Client,
) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    member(area, "Ana")
    carla = SalespersonFactory(name="Carla")
    always_working(carla)
    dora = SalespersonFactory(name="Dora")  # no working hours: her leads wait
    condition_rule("Kommo → Dora", person=dora, source="kommo")
    google = LeadFactory(utm={"utm_source": "google"})
    plain = LeadFactory()
    waiting = LeadFactory(source="kommo")
    for lead in (google, plain, waiting):
        route(lead)
    RoutingRule.objects.filter(name="Kommo → Dora").update(position=1)
    condition_rule("Google → Carla", person=carla, utm_source="google")
    before = (Assignment.objects.count(), OutboundAction.objects.count(), rotation_state())

    response = admin_client.get(reverse("admin:routing_routingrule_backtest"), {"last": 3})

    rows = [
        (line.row.lead.pk, line.row.actual_name, line.row.decision.salesperson_name, line.row.same)
        for line in response.context["rows"]
    ]
    assert rows == [
        (google.pk, "Ana", "Carla", False),
        (plain.pk, "Ana", "Ana", True),
        (waiting.pk, "", "", True),
    ]
    page = html(response)
    assert "Same: <strong>2</strong>" in page
    assert "Different: <strong>1</strong>" in page
    assert "Would wait: <strong>1</strong>" in page
    assert "≠ different" in page
    assert "<td>Google → Carla</td>" in page
    assert "<td>default area: Vendas</td>" in page
    assert (Assignment.objects.count(), OutboundAction.objects.count(), rotation_state()) == before


def test_backtest_tells_a_rotation_difference_from_a_rule_difference(
    admin_client: Client,
) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    member(area, "Ana")
    member(area, "Bruno")
    route(LeadFactory())  # Ana; replayed today, the rotation has moved on to Bruno

    response = admin_client.get(reverse("admin:routing_routingrule_backtest"), {"last": 1})

    line = response.context["rows"][0]
    assert (line.row.actual_name, line.row.decision.salesperson_name) == ("Ana", "Bruno")
    assert (line.row.same, line.same_target) == (False, True)
    page = html(response)
    assert "≈ same area, another person" in page
    assert "(1 in the same area: the rotation moved on)" in page


def test_backtest_defaults_to_the_last_50_and_caps_at_500(admin_client: Client) -> None:
    url = reverse("admin:routing_routingrule_backtest")
    default = admin_client.get(url)
    too_many = admin_client.get(url, {"last": 501})
    assert default.context["form"].cleaned_data["last"] == 50
    assert default.context["rows"] == []
    assert too_many.context["form"].errors == {
        "last": ["Ensure this value is less than or equal to 500."]
    }
    assert "rows" not in too_many.context


# --- Permissions -------------------------------------------------------------------------------


@pytest.fixture
def staff_client(client: Client) -> Client:
    user = User.objects.create_user("gerente", password="x", is_staff=True)
    client.force_login(user)
    return client


@pytest.mark.parametrize("view", ["simulate", "backtest"])
def test_simulate_and_backtest_need_the_permission_to_view_rules(
    staff_client: Client, view: str
) -> None:
    url = reverse(f"admin:routing_routingrule_{view}")
    refused = staff_client.get(url)
    User.objects.get(username="gerente").user_permissions.add(
        Permission.objects.get(codename="view_routingrule")
    )
    allowed = staff_client.get(url)
    assert (refused.status_code, allowed.status_code) == (403, 200)


# --- Coverage check ----------------------------------------------------------------------------


def test_area_page_lists_the_hours_nobody_covers_in_the_next_week(admin_client: Client) -> None:
    duty = SalespersonFactory(name="Plantão", is_duty=True)
    WorkingHoursFactory(salesperson=duty, weekday=5, starts=time(9), ends=time(12))
    area = AreaFactory(name="Trabalhista")
    ana = member(area, "Ana", working=False)
    for weekday in (0, 1, 2, 3, 4, 6):
        WorkingHoursFactory(salesperson=ana, weekday=weekday, starts=time(0), ends=time(0))
    WorkingHoursFactory(salesperson=ana, weekday=5, starts=time(12), ends=time(0))

    response = admin_client.get(reverse("admin:routing_area_change", args=[area.pk]))

    assert response.context["coverage"] == [
        "Saturday 28/11 00:00–09:00 — nobody on shift (no fallback covers it)",
        "Saturday 28/11 09:00–12:00 — nobody on shift (fallback covers)",
    ]
    assert "<li>Saturday 28/11 09:00–12:00 — nobody on shift (fallback covers)</li>" in html(
        response
    )


def test_area_page_says_so_when_there_are_no_gaps(admin_client: Client) -> None:
    area = AreaFactory(name="Vendas")
    member(area, "Ana")
    page = html(admin_client.get(reverse("admin:routing_area_change", args=[area.pk])))
    assert "No gaps in the next week." in page


def test_area_list_counts_active_members(admin_client: Client) -> None:
    area = AreaFactory(name="Vendas")
    member(area, "Ana")
    member(area, "Bruno", active=False)
    page = html(admin_client.get(reverse("admin:routing_area_changelist")))
    assert '<td class="field-members">1</td>' in page


# --- Edits that free capacity drain the waiting queue ------------------------------------------


def test_adding_working_hours_in_the_admin_assigns_the_waiting_lead(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    ana = member(area, "Ana", working=False)
    lead = LeadFactory()
    assert route(lead).status == AssignmentStatus.WAITING
    url = reverse("admin:routing_salesperson_change", args=[ana.pk])
    data = form_data(admin_client.get(url))
    data |= {
        "working_hours-TOTAL_FORMS": "1",
        "working_hours-0-weekday": "2",
        "working_hours-0-starts": "09:00",
        "working_hours-0-ends": "18:00",
    }

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, data)

    assert response.status_code == 302
    assert WorkingHours.objects.filter(salesperson=ana).count() == 1
    current = Assignment.objects.get(lead=lead, is_current=True)
    assert (current.salesperson, current.kind, current.status) == (
        ana,
        AssignmentKind.BACKLOG,
        AssignmentStatus.ASSIGNED,
    )
    assert OutboundAction.objects.filter(lead=lead, action="handoff").count() == 1


def test_working_hours_that_end_before_they_start_are_refused(admin_client: Client) -> None:
    ana = SalespersonFactory(name="Ana")
    url = reverse("admin:routing_salesperson_change", args=[ana.pk])
    data = form_data(admin_client.get(url))
    data |= {
        "working_hours-TOTAL_FORMS": "1",
        "working_hours-0-weekday": "2",
        "working_hours-0-starts": "18:00",
        "working_hours-0-ends": "09:00",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "The interval must end after it starts." in html(response)
    assert WorkingHours.objects.count() == 0


def test_standard_week_action_sets_split_shifts_and_assigns_the_waiting_lead(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    area = AreaFactory(name="Vendas", is_default=True)
    ana = member(area, "Ana", working=False)
    lead = LeadFactory()
    route(lead)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:routing_salesperson_changelist"),
            {"action": "standard_week", "_selected_action": [ana.pk]},
        )

    assert response.status_code == 302
    hours = WorkingHours.objects.filter(salesperson=ana).order_by("weekday", "starts")
    assert [(h.weekday, h.starts, h.ends) for h in hours][:2] == [
        (0, time(9), time(12)),
        (0, time(13), time(18)),
    ]
    assert hours.count() == 10
    assert Assignment.objects.get(lead=lead, is_current=True).salesperson == ana
