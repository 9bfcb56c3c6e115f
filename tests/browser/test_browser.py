"""In a real browser: a manager edits a routing rule, simulates a lead and reads the dashboard;
a salesperson lands on "Meus leads" and sees only their own leads."""

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone

from kommo_hub.models import Conversation, Lead, Message
from kommo_hub.roles import HUB_APPS, MANAGERS, SALESPEOPLE, SALESPERSON_PERMISSIONS
from routing.models import (
    Area,
    Assignment,
    AssignmentKind,
    AssignmentStatus,
    ConditionField,
    ConditionOperator,
    RoutingRule,
    RuleCondition,
    Salesperson,
)
from tests.factories import LeadFactory
from tests.routing.factories import (
    AreaFactory,
    AreaMembershipFactory,
    SalespersonFactory,
    always_working,
)
from tests.scheduling.factories import AppointmentFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
PASSWORD = "senha-de-teste-123"


def staff(username: str, group_name: str) -> User:
    """A staff login in the group (the roles migration made it; a flushed database may not have
    it any more, so its permissions are set here too)."""
    group, _created = Group.objects.get_or_create(name=group_name)
    if group_name == MANAGERS:
        group.permissions.add(*Permission.objects.filter(content_type__app_label__in=HUB_APPS))
    else:
        for app_label, codename in SALESPERSON_PERMISSIONS:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    user = User.objects.create_user(username=username, password=PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


def assigned(name: str, person: Salesperson, area: Area, *, replied_minutes: int) -> Lead:
    lead = LeadFactory(name=name)
    decided = timezone.now() - timedelta(hours=2)
    Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED,
        decided_at=decided,
        responded_at=decided + timedelta(minutes=replied_minutes),
    )
    return lead


def log_in(page: Any, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_load_state()


def test_a_manager_edits_a_rule_simulates_a_lead_and_reads_the_dashboard(
    live_server: Any, page: Any, screenshot: Any
) -> None:
    staff("gerente", MANAGERS)
    labour = AreaFactory(name="Trabalhista")
    ana = SalespersonFactory(name="Ana Souza")
    always_working(ana)
    AreaMembershipFactory(area=labour, salesperson=ana)
    rule = RoutingRule.objects.create(name="Site", target_area=labour)
    RuleCondition.objects.create(
        rule=rule,
        field=ConditionField.SOURCE,
        operator=ConditionOperator.EQUALS,
        value="website",
    )
    first = assigned("Cliente Um", ana, labour, replied_minutes=5)
    chat = Conversation.objects.create(chat_id="chat-browser", lead=first)
    Message.objects.create(
        conversation=chat,
        external_id="reply-1",
        direction=Message.Direction.OUTGOING,
        author_kind=Message.AuthorKind.SALESPERSON,
        sent_at=timezone.now() - timedelta(minutes=90),
    )
    assigned("Cliente Dois", ana, labour, replied_minutes=15)
    AppointmentFactory(salesperson=ana, lead=None, starts_at=timezone.now() - timedelta(days=1))

    log_in(page, live_server.url, "gerente")
    assert page.url == f"{live_server.url}/admin/"

    # Edit the rule: a new name and a new condition value.
    page.goto(f"{live_server.url}/admin/routing/routingrule/")
    page.click("#result_list a:text('Site')")
    page.fill("#id_name", "Formulário trabalhista")
    page.fill("#id_conditions-0-value", "landing-trabalhista")
    screenshot(page, "1-rule-edit")
    page.click("input[name=_save]")
    page.wait_for_load_state()
    assert page.url == f"{live_server.url}/admin/routing/routingrule/"
    assert page.locator("#result_list").inner_text().count("Formulário trabalhista") == 1
    assert "landing-trabalhista" in page.locator("#result_list").inner_text()
    rule.refresh_from_db()
    assert rule.name == "Formulário trabalhista"
    assert list(rule.conditions.values_list("value", flat=True)) == ["landing-trabalhista"]

    # The simulator, from the rules list's "Simular" button.
    page.click(".object-tools a[href$='/simulate/']")
    page.wait_for_load_state()
    assert page.url.startswith(f"{live_server.url}/admin/routing/routingrule/simulate/")
    page.fill("#id_source", "landing-trabalhista")
    page.fill("#id_name", "Lead de teste")
    page.click("#simulate_form input[type=submit]")
    page.wait_for_selector("#simulate-chosen")
    assert "Ana Souza" in page.locator("#simulate-chosen").inner_text()
    screenshot(page, "2-simulate")
    assert Lead.objects.filter(name="Lead de teste").count() == 0  # the simulator writes nothing

    # The dashboard on the admin home.
    page.goto(f"{live_server.url}/admin/?days=7")
    dashboard = page.locator("#hub-dashboard")
    assert dashboard.is_visible()
    titles = page.locator("#hub-dashboard svg.hub-chart > title").all_text_contents()
    assert titles == [
        "Leads por dia, por área",
        "Distribuição em relação à meta",
        "Velocidade de atendimento",
        "IA e pessoas nas conversas",
        "Mensagens por dia",
        "Agendamentos",
    ]
    bar = page.locator("#hub-chart-leads svg rect title").first.text_content() or ""
    assert bar.endswith(", Trabalhista: 2 leads")
    assert page.locator("nav.hub-period [aria-current=page]").inner_text() == "Últimos 7 dias"
    screenshot(page, "3-dashboard")


def test_a_salesperson_lands_on_their_leads_and_sees_nobody_elses(
    live_server: Any, page: Any, screenshot: Any
) -> None:
    area = AreaFactory(name="Previdência")
    ana = SalespersonFactory(name="Ana Souza", user=staff("ana", SALESPEOPLE))
    bruno = SalespersonFactory(name="Bruno Lima")
    assigned("Cliente da Ana", ana, area, replied_minutes=5)
    assigned("Cliente do Bruno", bruno, area, replied_minutes=5)

    log_in(page, live_server.url, "ana")

    assert page.url == f"{live_server.url}/meus-leads/"
    text = page.locator("body").inner_text()
    assert "Cliente da Ana" in text
    assert "Cliente do Bruno" not in text
    assert page.locator("#hub-dashboard").count() == 0
    screenshot(page, "1-meus-leads")

    # The admin's lead list is scoped the same way.
    page.goto(f"{live_server.url}/admin/kommo_hub/lead/")
    listing = page.locator("#result_list").inner_text()
    assert "Cliente da Ana" in listing
    assert "Cliente do Bruno" not in listing
    screenshot(page, "2-admin-leads")
