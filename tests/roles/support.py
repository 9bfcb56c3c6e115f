"""Two salespeople (Carlos and Ana, in "Vendedores") and a manager (in "Gerentes"), each
salesperson with a lead, its WhatsApp conversation, a bot change and an appointment."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth.models import Group, User

from botcontrol.models import BotChange, BotMode, BotState, ChangeVia
from kommo_hub import roles
from kommo_hub.models import Conversation, Lead
from routing.models import Area, Assignment, AssignmentKind, AssignmentStatus, Salesperson
from scheduling.models import Appointment
from tests.factories import LeadFactory
from tests.routing.factories import AreaFactory, SalespersonFactory
from tests.scheduling.factories import AppointmentFactory

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 25, 13, 30, tzinfo=SP)  # a Wednesday
PASSWORD = "senha-de-teste-2026"


@dataclass
class Team:
    area: Area
    carlos: Salesperson
    ana: Salesperson
    manager: User
    lead: Lead
    ana_lead: Lead
    conversation: Conversation
    ana_conversation: Conversation
    appointment: Appointment
    ana_appointment: Appointment
    assignment: Assignment
    ana_assignment: Assignment


def user_in(username: str, group: str, **fields: object) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=group))
    return user


def assign(lead: Lead, person: Salesperson, area: Area, **fields: object) -> Assignment:
    return Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED,
        decided_at=NOW - timedelta(hours=1),
        **fields,
    )


def team_build() -> Team:
    area = AreaFactory(name="Vendas", slug="vendas")
    carlos = SalespersonFactory(name="Carlos", user=user_in("carlos", roles.SALESPEOPLE))
    ana = SalespersonFactory(name="Ana", user=user_in("ana", roles.SALESPEOPLE))
    manager = user_in("paula", roles.MANAGERS)
    lead = LeadFactory(name="Maria Souza", phone="+5511987654321")
    ana_lead = LeadFactory(name="João Pereira", phone="+5511912345678")
    assignment = assign(lead, carlos, area, sla_due_at=NOW - timedelta(minutes=10))
    ana_assignment = assign(ana_lead, ana, area, sla_due_at=NOW + timedelta(minutes=20))
    conversation = Conversation.objects.create(chat_id="chat-carlos", lead=lead)
    ana_conversation = Conversation.objects.create(chat_id="chat-ana", lead=ana_lead)
    for chat in (conversation, ana_conversation):
        BotState.objects.create(
            conversation=chat,
            mode=BotMode.PAUSED,
            via=ChangeVia.ADMIN,
            since=NOW - timedelta(minutes=30),
            until=NOW + timedelta(hours=20),
        )
        BotChange.objects.create(
            conversation=chat,
            mode=BotMode.PAUSED,
            via=ChangeVia.ADMIN,
            at=NOW - timedelta(minutes=30),
            until=NOW + timedelta(hours=20),
        )
    appointment = AppointmentFactory(
        salesperson=carlos, lead=lead, starts_at=datetime(2026, 11, 26, 15, 0, tzinfo=SP)
    )
    ana_appointment = AppointmentFactory(
        salesperson=ana, lead=ana_lead, starts_at=datetime(2026, 11, 26, 16, 0, tzinfo=SP)
    )
    return Team(
        area,
        carlos,
        ana,
        manager,
        lead,
        ana_lead,
        conversation,
        ana_conversation,
        appointment,
        ana_appointment,
        assignment,
        ana_assignment,
    )
