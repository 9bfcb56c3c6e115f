"""Event type → handler. Adding a handler is one line in HANDLERS.

A handler runs inside the processing transaction and returns an Outcome; it raises
PermanentError when retrying can never help (the payload itself is wrong).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kommo_hub.crm import services as crm
from kommo_hub.flows import conversations
from kommo_hub.flows import leads as leads_flow
from kommo_hub.intake.kommo import (
    KommoContact,
    KommoLead,
    KommoMessage,
    KommoNote,
    KommoTalk,
    KommoUnsorted,
)
from kommo_hub.intake.leads import LeadIntake, form_lead, rd_converted_lead, rd_legacy_lead
from kommo_hub.models import InboundEvent, Lead
from scheduling.sync import SUPABASE_EVENT_TYPES, supabase_event_apply


class PermanentError(Exception):
    """Retrying will not help: the event is dead-lettered at once, with this reason."""


@dataclass(frozen=True)
class Outcome:
    result: str
    lead: Lead | None = None
    ignored: bool = False


def _typed[M: BaseModel](model: type[M], payload: dict[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise PermanentError(f"invalid {model.__name__}: {problems}") from exc


class Deferred(Exception):
    """Not now: the event is retried after `seconds` without using up an attempt."""

    def __init__(self, reason: str, seconds: float = 30.0) -> None:
        super().__init__(reason)
        self.seconds = seconds


def lead_changed(event: InboundEvent) -> Outcome:
    item = _typed(KommoLead, event.payload)
    existed = Lead.objects.filter(kommo_lead_id=item.id).exists()
    lead, changed = crm.lead_upsert_from_kommo(item=item)
    result = "lead updated" if changed else "older than what we have; kept ours"
    action = event.event_type.rsplit(".", 1)[-1]
    if action == "add":
        try:
            routed = leads_flow.kommo_lead_added(
                lead=lead, item=item, created=not existed, source_event=event
            )
            result = f"{result}; {routed}"
        except leads_flow.KommoCreateInFlight as exc:
            raise Deferred(str(exc)) from exc
    elif action == "responsible" and changed:
        result = leads_flow.kommo_owner_changed(lead=lead, item=item)
    elif action in {"status", "update"} and changed:
        result = leads_flow.kommo_lead_moved(lead=lead, item=item, source_event=event)
    return Outcome(result, lead)


def lead_deleted(event: InboundEvent) -> Outcome:
    lead, _ = crm.lead_upsert_from_kommo(item=_typed(KommoLead, event.payload), deleted=True)
    return Outcome("lead marked deleted in Kommo", lead)


def contact_changed(event: InboundEvent) -> Outcome:
    item = _typed(KommoContact, event.payload)
    if (item.type or "contact") == "company":
        return Outcome("company events are not mirrored", ignored=True)
    contact, changed = crm.contact_upsert_from_kommo(item=item)
    return Outcome(f"contact {contact.pk} {'updated' if changed else 'unchanged (older event)'}")


def unsorted_added(event: InboundEvent) -> Outcome:
    item = _typed(KommoUnsorted, event.payload)
    lead_ids: list[int] = [item.lead_id] if item.lead_id else []
    leads_data = item.data.get("leads") if isinstance(item.data, dict) else None
    if isinstance(leads_data, dict):
        lead_ids += [int(v["id"]) for v in leads_data.values() if str(v.get("id", "")).isdigit()]
    if not lead_ids:
        return Outcome("incoming lead without a lead id yet", ignored=True)
    handled = conversations.chat_lead_added(
        item=item, lead_ids=list(dict.fromkeys(lead_ids)), source_event=event
    )
    return Outcome(handled.result, handled.lead)


def message_added(event: InboundEvent) -> Outcome:
    item = _typed(KommoMessage, event.payload)
    try:
        handled = conversations.message_added(item=item, source_event=event)
    except conversations.EchoPending as exc:
        raise Deferred(str(exc), exc.seconds) from exc
    return Outcome(handled.result, handled.lead)


def n8n_callback(event: InboundEvent) -> Outcome:
    callback = _typed(conversations.N8nCallback, event.payload)
    handled = conversations.callback_received(callback=callback, source_event=event)
    return Outcome(handled.result, handled.lead)


def talk_changed(event: InboundEvent) -> Outcome:
    conversation = crm.talk_upsert(item=_typed(KommoTalk, event.payload))
    if conversation is None:
        return Outcome("talk without chat id", ignored=True)
    return Outcome("conversation updated", conversation.lead)


def note_added(event: InboundEvent) -> Outcome:
    from kommo_hub.flows.bot import bot_command_from_note

    note, created = crm.note_record(item=_typed(KommoNote, event.payload))
    if not created:  # a replay, or the echo of a note the hub wrote itself: never a command
        return Outcome("note already stored", note.lead)
    command = bot_command_from_note(note=note, source_event=event)
    return Outcome(f"note stored; {command}" if command else "note stored", note.lead)


def _intake_lead(event: InboundEvent, intake: LeadIntake) -> Outcome:
    lead, created = crm.lead_create_from_intake(intake=intake)
    if not created:
        return Outcome("merged into a recent lead of the same person", lead)
    routed = leads_flow.lead_route_and_sync(lead=lead, source_event=event)
    return Outcome(f"lead created; {routed}", lead)


def rd_legacy_added(event: InboundEvent) -> Outcome:
    return _intake_lead(event, rd_legacy_lead(event.payload))


def rd_converted(event: InboundEvent) -> Outcome:
    return _intake_lead(event, rd_converted_lead(event.payload))


def form_submitted(event: InboundEvent) -> Outcome:
    return _intake_lead(event, form_lead(event.payload))


HANDLERS: dict[str, Callable[[InboundEvent], Outcome]] = {
    "kommo.leads.add": lead_changed,
    "kommo.leads.update": lead_changed,
    "kommo.leads.status": lead_changed,
    "kommo.leads.responsible": lead_changed,
    "kommo.leads.restore": lead_changed,
    "kommo.leads.delete": lead_deleted,
    "kommo.leads.note": note_added,
    "kommo.contacts.add": contact_changed,
    "kommo.contacts.update": contact_changed,
    "kommo.unsorted.add": unsorted_added,
    "kommo.message.add": message_added,
    "kommo.talk.add": talk_changed,
    "kommo.talk.update": talk_changed,
    "n8n.callback": n8n_callback,
    "rdstation.legacy_conversion": rd_legacy_added,
    "rdstation.converted": rd_converted,
    "forms.lead": form_submitted,
    **dict.fromkeys(SUPABASE_EVENT_TYPES, supabase_event_apply),
}
