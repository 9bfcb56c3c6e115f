"""A small sales team for the bot tests: one area, Carlos and Ana, a Kommo lead per person with
its WhatsApp conversation."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.contrib.auth.models import User

from kommo_hub.models import Conversation, Lead, Message
from routing.models import Area, Assignment, AssignmentKind, AssignmentStatus, Salesperson
from tests.factories import LeadFactory
from tests.routing.factories import AreaFactory, SalespersonFactory

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 25, 13, 30, tzinfo=SP)  # a Wednesday
CARLOS_KOMMO, ANA_KOMMO = 9876599, 9876501
KOMMO_LEAD, ANA_KOMMO_LEAD = 18754321, 18754322
CHAT = "a1b2c3d4-0000-4e5f-8a9b-112233445566"


@dataclass
class Team:
    area: Area
    carlos: Salesperson
    ana: Salesperson
    lead: Lead
    conversation: Conversation
    ana_lead: Lead
    ana_conversation: Conversation


def assign(lead: Lead, person: Salesperson, area: Area) -> Assignment:
    return Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED,
        decided_at=NOW,
    )


def team_build(**area_fields: object) -> Team:
    area = AreaFactory(name="Vendas", slug="vendas", ai_instructions="Seja cordial.", **area_fields)
    carlos = SalespersonFactory(
        name="Carlos",
        kommo_user_id=CARLOS_KOMMO,
        phone="+5511911112222",
        user=User.objects.create_user("carlos", is_staff=True),
    )
    ana = SalespersonFactory(
        name="Ana",
        kommo_user_id=ANA_KOMMO,
        phone="+5511933334444",
        user=User.objects.create_user("ana", is_staff=True),
    )
    lead = LeadFactory(
        name="Maria Souza",
        kommo_lead_id=KOMMO_LEAD,
        contact__name="Maria Souza",
        contact__phone="+5511987654321",
        contact__email="maria@example.com",
        contact__kommo_contact_id=22334455,
        source="kommo",
    )
    ana_lead = LeadFactory(name="João Pereira", kommo_lead_id=ANA_KOMMO_LEAD, source="kommo")
    assign(lead, carlos, area)
    assign(ana_lead, ana, area)
    conversation = Conversation.objects.create(
        chat_id=CHAT, talk_id=4821, lead=lead, kommo_contact_id=22334455, origin="waba"
    )
    ana_conversation = Conversation.objects.create(chat_id="chat-ana", talk_id=4822, lead=ana_lead)
    return Team(area, carlos, ana, lead, conversation, ana_lead, ana_conversation)


def outgoing(
    conversation: Conversation,
    text: str,
    *,
    at: datetime = NOW,
    author_id: str = "5e4d3c2b-aaaa-4bbb-8ccc-dddd0000eeee",
    author_name: str = "Carlos Lima",
) -> Message:
    """A person's outgoing message as Kommo reports it (author id: a chat UUID)."""
    return Message.objects.create(
        conversation=conversation,
        external_id=str(uuid.uuid4()),
        direction=Message.Direction.OUTGOING,
        author_kind=Message.AuthorKind.SALESPERSON,
        author_id=author_id,
        author_name=author_name,
        message_type="text",
        text=text,
        sent_at=at,
    )


def incoming(conversation: Conversation, text: str, *, at: datetime = NOW) -> Message:
    return Message.objects.create(
        conversation=conversation,
        external_id=str(uuid.uuid4()),
        direction=Message.Direction.INCOMING,
        author_kind=Message.AuthorKind.CUSTOMER,
        author_name="Maria Souza",
        text=text,
        sent_at=at,
    )
