"""Flow 1 coordination: routing decisions become Kommo writes and n8n actions (all outbox rows).

routing/ decides who gets a lead; this module is the only place that turns those decisions into
side effects, so the domain app never talks HTTP and every side effect is retried and visible.
The strings returned become the event's result: operational records, in English like every
handler's. What people read (Kommo notes, explanations) is translated.
"""

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from kommo_hub.intake.kommo import KommoLead
from kommo_hub.models import ActionStatus, ActionTarget, InboundEvent, Lead, OutboundAction
from kommo_hub.outbox.envelope import envelope_build
from kommo_hub.outbox.services import (
    action_enqueue,
    kommo_lead_create,
    kommo_lead_update,
    kommo_note_add,
    lead_kommo_create_action,
)
from routing.models import Area, Assignment, AssignmentKind, Salesperson
from routing.selectors import CLOSED_STATUSES
from routing.services import (
    assignment_from_kommo_owner,
    assignment_mark_responded,
    backlog_drain,
    lead_route,
)

# How long after the hub's own write to Kommo an echo of it may still arrive (clock skew).
ECHO_SKEW = timedelta(seconds=5)


class KommoCreateInFlight(Exception):
    """A lead_create is on the wire: this Kommo lead may be ours, so wait for its id."""


def area_block(area: Area | None) -> dict[str, Any] | None:
    if area is None:
        return None
    return {
        "slug": area.slug,
        "name": area.name,
        "ai_instructions": area.ai_instructions,
        "first_message_hint": area.first_message_hint,
    }


def salesperson_block(person: Salesperson | None) -> dict[str, Any] | None:
    if person is None:
        return None
    return {
        "id": person.pk,
        "name": person.name,
        "kommo_user_id": person.kommo_user_id,
        "phone": person.phone,
    }


def lead_tags(lead: Lead, area: Area | None) -> list[str]:
    tags = [lead.source] if lead.source else []
    if area is not None:
        tags.append(area.slug)
    return tags


def lead_route_and_sync(
    *, lead: Lead, source_event: InboundEvent | None, proactive: bool = True
) -> str:
    """Route a new lead and schedule everything that follows. Idempotent.

    `proactive=False`: the customer wrote first (a lead created from a chat), so the AI's reply
    is the first message and no `proactive_message` is sent.
    """
    result = lead_route(lead_id=lead.pk)
    if not result.created:
        return "already routed"
    for drained in result.drained:
        assignment_sync(assignment=drained, source_event=source_event)
    assignment_sync(assignment=result.assignment, source_event=source_event, proactive=proactive)
    assignment = result.assignment
    if assignment.salesperson_id is None:
        return "routed: waiting for someone available"
    return f"routed to {assignment.salesperson}"


def assignment_sync(
    *, assignment: Assignment, source_event: InboundEvent | None, proactive: bool = True
) -> None:
    """The Kommo writes and n8n actions one assignment calls for."""
    lead = Lead.objects.select_related("contact").get(pk=assignment.lead_id)
    person = assignment.salesperson
    area = assignment.area
    responsible = person.kommo_user_id if person else None
    if assignment.kind == AssignmentKind.KOMMO:
        return  # Kommo already has it: it told us
    if assignment.kind == AssignmentKind.NEW:
        create = None
        if lead.kommo_lead_id is None:
            create, _created = kommo_lead_create(
                lead=lead,
                responsible_user_id=responsible,
                pipeline_id=area.kommo_pipeline_id if area else None,
                status_id=area.kommo_status_id if area else None,
                tags=lead_tags(lead, area),
                idempotency_key=f"kommo:lead_create:{lead.pk}",
                source_event=source_event,
            )
        elif responsible or area is not None:  # else there is nothing new to tell Kommo
            body: dict[str, Any] = {"tags_to_add": [{"name": t} for t in lead_tags(lead, area)]}
            if responsible:
                body["responsible_user_id"] = responsible
            if area is not None and area.kommo_pipeline_id and area.kommo_status_id:
                body |= {"pipeline_id": area.kommo_pipeline_id, "status_id": area.kommo_status_id}
            kommo_lead_update(
                lead=lead,
                body=body,
                idempotency_key=f"kommo:lead_assign:{assignment.pk}",
                source_event=source_event,
            )
        has_phone = bool(lead.phone or (lead.contact and lead.contact.phone))
        if proactive and has_phone and area is not None:
            key = f"n8n:proactive_message:lead:{lead.pk}"
            action_enqueue(
                target=ActionTarget.N8N,
                action="proactive_message",
                idempotency_key=key,
                payload=envelope_build(
                    action="proactive_message",
                    idempotency_key=key,
                    lead=lead,
                    area=area_block(area),
                    salesperson=salesperson_block(person),
                ),
                lead=lead,
                source_event=source_event,
                depends_on=create or lead_kommo_create_action(lead=lead),
            )
        return
    if person is None:
        return
    waits_for = lead_kommo_create_action(lead=lead)
    if responsible:
        kommo_lead_update(
            lead=lead,
            body={"responsible_user_id": responsible},
            idempotency_key=f"kommo:lead_assign:{assignment.pk}",
            depends_on=waits_for,
            source_event=source_event,
        )
    kommo_note_add(
        lead=lead,
        text=_handoff_note(assignment),
        idempotency_key=f"kommo:note:assignment:{assignment.pk}",
        depends_on=waits_for,
        source_event=source_event,
    )
    key = f"n8n:handoff:assignment:{assignment.pk}"
    action_enqueue(
        target=ActionTarget.N8N,
        action="handoff",
        idempotency_key=key,
        payload=envelope_build(
            action="handoff",
            idempotency_key=key,
            lead=lead,
            area=area_block(area),
            salesperson=salesperson_block(person),
            handoff={"reason": assignment.kind, "explanation": assignment.deciding_step},
        ),
        lead=lead,
        source_event=source_event,
        depends_on=waits_for,
    )


def _handoff_note(assignment: Assignment) -> str:
    steps = assignment.explanation.get("steps", [])
    headers: dict[str, str] = {
        AssignmentKind.SLA: _("Kommo Hub: lead reassigned to %(name)s (reply SLA expired)."),
        AssignmentKind.BACKLOG: _("Kommo Hub: lead assigned to %(name)s after waiting."),
    }
    header = headers.get(assignment.kind, _("Kommo Hub: lead assigned to %(name)s."))
    return "\n".join([header % {"name": assignment.salesperson}, *steps])


def kommo_lead_added(
    *, lead: Lead, item: KommoLead, created: bool, source_event: InboundEvent
) -> str:
    """A lead appeared in Kommo. Ours (created by the hub) → nothing; else it is routed, unless a
    salesperson already owns it there."""
    if Assignment.objects.filter(lead=lead, is_current=True).exists():
        return "already routed"
    if created and _create_in_flight():
        raise KommoCreateInFlight("the hub is creating a lead in Kommo; waiting for its id")
    owner = (
        Salesperson.objects.filter(kommo_user_id=item.responsible_user_id, active=True).first()
        if item.responsible_user_id
        else None
    )
    if owner is not None:
        assignment_from_kommo_owner(lead_id=lead.pk, kommo_user_id=owner.kommo_user_id or 0)
        return f"owner set in Kommo: {owner.name}"
    return lead_route_and_sync(lead=lead, source_event=source_event)


def _create_in_flight() -> bool:
    return OutboundAction.objects.filter(
        action="lead_create",
        target=ActionTarget.KOMMO,
        status__in=[ActionStatus.DELIVERING, ActionStatus.FAILED],
        attempts__gt=0,
    ).exists()


def kommo_owner_changed(*, lead: Lead, item: KommoLead) -> str:
    """`leads[responsible]`: a manual change in Kommo is the truth; our own write's echo is not."""
    new_owner = item.responsible_user_id
    if new_owner is None:
        return "no responsible user in the event"
    if item.modified_user_id == 0:
        return "echo of the hub's own write"
    if _is_echo(lead=lead, field="responsible_user_id", value=new_owner, version=item.version):
        return "echo of the hub's own write"
    new = assignment_from_kommo_owner(lead_id=lead.pk, kommo_user_id=new_owner)
    if new is None:
        return "owner unchanged"
    return "owner changed in Kommo"


def _is_echo(*, lead: Lead, field: str, value: int | None, version: Any) -> bool:
    """Kommo reporting a value the hub itself wrote (not newer than that write)?"""
    writes = list(
        OutboundAction.objects.filter(
            lead=lead,
            target=ActionTarget.KOMMO,
            action__in=["lead_create", "lead_update"],
            status=ActionStatus.DONE,
        )
        .order_by("-delivered_at")
        .values("payload", "delivered_at")[:20]
    )
    written = [
        w
        for w in writes
        if value is not None
        and value in (w["payload"].get(field), w["payload"].get("body", {}).get(field))
    ]
    if not written:
        return False
    latest = writes[0]["delivered_at"]
    if version is None or latest is None:
        return written[0] is writes[0]
    return bool(version <= latest + ECHO_SKEW)


def kommo_lead_moved(*, lead: Lead, item: KommoLead, source_event: InboundEvent) -> str:
    """A stage change by a person stops the SLA clock; a closed lead frees capacity."""
    moved = item.old_status_id is not None and item.old_status_id != item.status_id
    echo = item.modified_user_id == 0 or _is_echo(
        lead=lead, field="status_id", value=item.status_id, version=item.version
    )
    if moved and not echo:
        assignment_mark_responded(lead_id=lead.pk, at=item.version or timezone.now())
    if item.status_id in CLOSED_STATUSES:
        drained = backlog_drain(
            then=lambda a: assignment_sync(assignment=a, source_event=source_event)
        )
        if drained:
            return f"lead closed; waiting leads assigned: {len(drained)}"
    return "stage recorded"


def salesperson_replied(*, lead: Lead | None, at: Any) -> None:
    if lead is not None:
        assignment_mark_responded(lead_id=lead.pk, at=at or timezone.now())


def routing_tick() -> int:
    """Scheduler: drain the waiting queue and enforce reply SLAs."""
    from routing.services import sla_reassign_due

    def sync(assignment: Assignment) -> None:
        assignment_sync(assignment=assignment, source_event=None)

    return len(backlog_drain(then=sync)) + len(sla_reassign_due(then=sync))
