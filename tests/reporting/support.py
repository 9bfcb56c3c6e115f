"""A small, hand-counted dataset for the reports (period: 2–4 Nov 2026, São Paulo days)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

from botcontrol.models import BotChange, BotMode, ChangeVia
from kommo_hub.models import ActionStatus, Conversation, Lead, Message
from routing.models import Area, Assignment, AssignmentKind, AssignmentStatus, Salesperson
from scheduling.models import AppointmentStatus
from tests.factories import LeadFactory, OutboundActionFactory
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.scheduling.factories import AppointmentFactory

SP = ZoneInfo("America/Sao_Paulo")
PERIOD = {"from": "2026-11-02", "to": "2026-11-04"}
_ids = count(1)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=SP)


@dataclass
class Dataset:
    a: Area
    b: Area
    ana: Salesperson  # area A, weight 3
    bruno: Salesperson  # area A, weight 1
    carla: Salesperson  # area B, weight 1
    l1: Lead
    l2: Lead
    l3: Lead
    l4: Lead
    l5: Lead


def lead_assigned(
    when: datetime, person: Salesperson | None, area: Area | None, source: str = "website"
) -> Lead:
    lead = LeadFactory(source=source, name=f"Lead {next(_ids)}")
    Lead.objects.filter(pk=lead.pk).update(created_at=when)
    lead.refresh_from_db()
    Assignment.objects.create(
        lead=lead,
        salesperson=person,
        area=area,
        kind=AssignmentKind.NEW,
        status=AssignmentStatus.ASSIGNED if person else AssignmentStatus.WAITING,
        strategy="weighted",
        deciding_step="rule: test",
        explanation={"steps": ["rule matched"]},
        decided_at=when,
    )
    return lead


def message(lead: Lead, when: datetime, author: str, direction: str = "out") -> Message:
    conversation, _ = Conversation.objects.get_or_create(
        chat_id=f"chat-{lead.pk}", defaults={"lead": lead}
    )
    return Message.objects.create(
        conversation=conversation,
        external_id=f"msg-{next(_ids)}",
        direction=direction,
        author_kind=author,
        sent_at=when,
        text="oi",
    )


def dataset_build() -> Dataset:
    a = AreaFactory(name="A")
    b = AreaFactory(name="B")
    ana = SalespersonFactory(name="Ana")
    bruno = SalespersonFactory(name="Bruno")
    carla = SalespersonFactory(name="Carla")
    AreaMembershipFactory(area=a, salesperson=ana, weight=3)
    AreaMembershipFactory(area=a, salesperson=bruno, weight=1)
    AreaMembershipFactory(area=b, salesperson=carla, weight=1)

    sp, bot, customer = "salesperson", "bot", "customer"
    l1 = lead_assigned(local(2, 10), ana, a)
    message(l1, local(2, 10, 0) + timedelta(seconds=30), customer, "in")
    message(l1, local(2, 10, 1), bot)  # the bot's reply: not a human reply
    message(l1, local(2, 10, 10), sp)  # 600 s
    message(l1, local(2, 10, 20), sp)
    l2 = lead_assigned(local(3, 10), ana, a, source="rdstation")
    message(l2, local(3, 9, 55), sp)  # before the assignment: does not count
    message(l2, local(3, 10, 30), sp)  # 1800 s
    l3 = lead_assigned(local(3, 23, 30), bruno, a)  # 02:30 UTC on the 4th: still the 3rd
    message(l3, local(3, 23, 31), bot)
    l4 = lead_assigned(local(4, 9), carla, b)
    message(l4, local(4, 9, 1), sp)  # 60 s
    l5 = lead_assigned(local(5, 9), ana, a)  # after the period
    message(l5, local(5, 9, 5), sp)

    AppointmentFactory(
        lead=l2, salesperson=ana, starts_at=local(4, 15), status=AppointmentStatus.DONE
    )
    AppointmentFactory(
        lead=l3, salesperson=bruno, starts_at=local(4, 16), status=AppointmentStatus.BOOKED
    )
    AppointmentFactory(
        lead=l4, salesperson=carla, starts_at=local(4, 11), status=AppointmentStatus.NO_SHOW
    )
    AppointmentFactory(
        lead=l4, salesperson=carla, starts_at=local(4, 12), status=AppointmentStatus.CANCELLED
    )
    AppointmentFactory(
        lead=l5, salesperson=ana, starts_at=local(6, 12), status=AppointmentStatus.DONE
    )

    def action(name: str, lead: Lead, status: str, delivered: datetime | None) -> None:
        OutboundActionFactory(action=name, lead=lead, status=status, delivered_at=delivered)

    action("reply", l1, ActionStatus.DONE, local(2, 10, 1))
    action("reply", l3, ActionStatus.DONE, local(3, 23, 31))
    action("schedule", l3, ActionStatus.DONE, local(3, 23, 40))
    action("reply", l4, ActionStatus.FAILED, None)
    action("reply", l5, ActionStatus.DONE, local(5, 9, 1))  # after the period
    action("proactive_message", l4, ActionStatus.DONE, local(4, 9))  # not an AI reply

    def change(lead: Lead, mode: str, via: str, at: datetime) -> None:
        conversation, _ = Conversation.objects.get_or_create(
            chat_id=f"chat-{lead.pk}", defaults={"lead": lead}
        )
        BotChange.objects.create(conversation=conversation, mode=mode, via=via, at=at)

    change(l1, BotMode.PAUSED, ChangeVia.TAKEOVER, local(2, 10, 10))
    change(l1, BotMode.ACTIVE, ChangeVia.EXPIRY, local(2, 12, 10))
    change(l2, BotMode.PAUSED, ChangeVia.TAKEOVER, local(3, 10, 30))
    change(l3, BotMode.PAUSED, ChangeVia.HANDOFF, local(3, 23, 45))
    change(l4, BotMode.PAUSED, ChangeVia.COMMAND, local(4, 9, 2))
    change(l4, BotMode.ACTIVE, ChangeVia.COMMAND, local(4, 9, 30))
    change(l5, BotMode.PAUSED, ChangeVia.TAKEOVER, local(5, 9, 5))  # after the period
    return Dataset(a=a, b=b, ana=ana, bruno=bruno, carla=carla, l1=l1, l2=l2, l3=l3, l4=l4, l5=l5)


__all__ = ["PERIOD", "UTC", "Dataset", "dataset_build", "local"]
