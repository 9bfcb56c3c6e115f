"""Flow 4 coordination: bot pauses and resumes become Kommo writes and n8n handoffs (outbox rows
in the caller's transaction).

botcontrol/ decides (state, history, commands, when a pause ends); this module finds who asked,
applies the area's rules, and turns each BotChange into: the `bot-pausado` tag added or removed
on the Kommo lead, a note in the lead's history, and on a handoff an n8n `handoff` action (the
salesperson is told on their own WhatsApp) plus a Kommo task for them.

The Kommo tag and note writes of one lead form a chain (each waits for the previous one), so a
retried pause can never land after the resume that followed it.

The strings returned become the event's result: operational records, in English like every
handler's. The Kommo notes and tasks are literal pt-BR on purpose: they are written once into the
CRM, which every user of the account reads in the account's language, not in the language the
admin happens to be viewed in, so gettext (per viewer) does not apply.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from botcontrol.commands import PAUSE, Command, text_fold
from botcontrol.models import BotChange, BotMode, ChangeVia
from botcontrol.services import (
    bot_changes_due,
    command_parse,
    conversation_area_rules,
    conversation_expire,
    conversation_owner,
    conversation_pause,
    conversation_resume,
    human_activity,
)
from kommo_hub.flows.leads import area_block, salesperson_block
from kommo_hub.models import (
    ActionStatus,
    ActionTarget,
    Conversation,
    InboundEvent,
    Lead,
    LeadNote,
    Message,
    OutboundAction,
)
from kommo_hub.outbox.envelope import conversation_block, envelope_build
from kommo_hub.outbox.services import (
    action_enqueue,
    kommo_lead_update,
    kommo_note_add,
    kommo_task_add,
    lead_kommo_create_action,
)
from routing.models import Assignment, Salesperson

logger = logging.getLogger("kommo_hub.flows")

PAUSED_TAG = "bot-pausado"
# The hub's own notes (their webhook echo must never be read as a command).
HUB_NOTE_PREFIXES = ("Kommo Hub:", "Bot ")
BOT_WRITE_PREFIX = "kommo:bot:"
HANDOFF_TASK_DUE = timedelta(hours=1)


# --- Kommo sync of one change ---------------------------------------------------------------


def _clock(moment: datetime, reference: datetime) -> str:
    zone = timezone.get_default_timezone()
    local = moment.astimezone(zone)
    if local.date() == reference.astimezone(zone).date():
        return f"{local:%H:%M}"
    return f"{local:%d/%m} às {local:%H:%M}"


def bot_note(change: BotChange) -> str:
    """The pt-BR note that tells the CRM what happened (see the module docstring)."""
    by = change.by_name or "a equipe"
    via = change.via
    if change.mode == BotMode.ACTIVE:
        if via == ChangeVia.EXPIRY:
            return f"Bot retomado automaticamente após {change.reason}".rstrip()
        how = _how(change, default_word="#voltar")
        return f"Bot retomado por {by} {how}"
    until = f" até {_clock(change.until, change.at)}" if change.until else " (até #voltar)"
    if via == ChangeVia.TAKEOVER:
        return f"Bot pausado automaticamente: {change.reason}"
    if via == ChangeVia.HANDOFF:
        why = f". Motivo: {change.reason}" if change.reason else ""
        return f"Bot pausado{until}: a IA pediu atendimento humano{why}"
    return f"Bot pausado por {by} {_how(change, default_word='#pausar')}{until}"


def _how(change: BotChange, *, default_word: str) -> str:
    if change.via == ChangeVia.COMMAND:
        return f"via {change.reason or default_word}"
    if change.via == ChangeVia.NOTE:
        return f"via nota com {change.reason or default_word}"
    where = "via API" if change.via == ChangeVia.API else "pelo painel"
    return f"{where} ({change.reason})" if change.reason else where


def _pending_bot_write(lead: Lead) -> OutboundAction | None:
    """The lead's last bot tag/note write not delivered yet: the next one waits for it."""
    return (
        OutboundAction.objects.filter(
            lead=lead, target=ActionTarget.KOMMO, idempotency_key__startswith=BOT_WRITE_PREFIX
        )
        .exclude(status=ActionStatus.DONE)
        .order_by("-pk")
        .first()
    )


def bot_change_sync(*, change: BotChange, source_event: InboundEvent | None) -> None:
    """Kommo tag + pt-BR note for one change; a handoff also tells n8n and creates a task."""
    conversation = change.conversation
    if conversation.lead_id is None:
        return  # nothing in Kommo to tag yet
    lead = Lead.objects.select_related("contact").get(pk=conversation.lead_id)
    created = lead_kommo_create_action(lead=lead)
    tags = [{"name": PAUSED_TAG}]
    body = {"tags_to_add": tags} if change.mode == BotMode.PAUSED else {"tags_to_delete": tags}
    tag, _new = kommo_lead_update(
        lead=lead,
        body=body,
        idempotency_key=f"{BOT_WRITE_PREFIX}tag:{change.pk}",
        depends_on=_pending_bot_write(lead) or created,
        source_event=source_event,
    )
    kommo_note_add(
        lead=lead,
        text=bot_note(change),
        idempotency_key=f"{BOT_WRITE_PREFIX}note:{change.pk}",
        depends_on=tag,
        source_event=source_event,
    )
    if change.mode == BotMode.PAUSED and change.via == ChangeVia.HANDOFF:
        _handoff_sync(change=change, lead=lead, waits_for=created, source_event=source_event)


def _lead_name(lead: Lead) -> str:
    contact = lead.contact
    return (
        lead.name
        or (contact.name if contact else "")
        or lead.phone
        or (contact.phone if contact else "")
        or f"lead #{lead.pk}"
    )


def _handoff_sync(
    *,
    change: BotChange,
    lead: Lead,
    waits_for: OutboundAction | None,
    source_event: InboundEvent | None,
) -> None:
    conversation = change.conversation
    assignment = (
        Assignment.objects.filter(lead=lead, is_current=True)
        .select_related("area", "salesperson")
        .first()
    )
    person = assignment.salesperson if assignment else None
    key = f"n8n:handoff:bot:{change.pk}"
    action_enqueue(
        target=ActionTarget.N8N,
        action="handoff",
        idempotency_key=key,
        payload=envelope_build(
            action="handoff",
            idempotency_key=key,
            lead=lead,
            area=area_block(assignment.area if assignment else None),
            salesperson=salesperson_block(person),
            conversation=conversation_block(conversation, bot_active=False),
            handoff={"reason": "ai_handoff", "explanation": change.reason},
        ),
        lead=lead,
        source_event=source_event,
        depends_on=waits_for,
    )
    why = f" ({change.reason})" if change.reason else ""
    kommo_task_add(
        lead=lead,
        text=f"Atender {_lead_name(lead)}: a IA pediu atendimento humano{why}",
        complete_till=int((change.at + HANDOFF_TASK_DUE).timestamp()),
        responsible_user_id=person.kommo_user_id if person else None,
        idempotency_key=f"kommo:task:handoff:{change.pk}",
        depends_on=waits_for,
        source_event=source_event,
    )


# --- Who wrote ------------------------------------------------------------------------------


def _salesperson_by_kommo_id(value: object) -> Salesperson | None:
    text = str(value or "").strip()
    if not text.isdigit():
        return None
    return Salesperson.objects.filter(kommo_user_id=int(text)).first()


def _first_name(name: str) -> str:
    words = text_fold(name).split()
    return words[0] if words else ""


def _message_author(message: Message, conversation: Conversation) -> tuple[Salesperson | None, str]:
    """(salesperson, name) of a person's outgoing message: the salesperson whose Kommo user id is
    the author id, else the conversation's owner (unless the author's name says it was someone
    else), else just the author's name."""
    person = _salesperson_by_kommo_id(message.author_id)
    if person is not None:
        return person, person.name
    owner = conversation_owner(conversation)
    if owner is not None and (
        not message.author_name or _first_name(message.author_name) == _first_name(owner.name)
    ):
        return owner, owner.name
    return None, message.author_name


def _default_until(conversation: Conversation, start: datetime) -> datetime | None:
    hours = conversation_area_rules(conversation).max_pause_hours
    return start + timedelta(hours=hours) if hours else None


# --- Commands -------------------------------------------------------------------------------


def _apply(
    command: Command,
    *,
    conversation: Conversation,
    via: str,
    by_name: str,
    by_salesperson: Salesperson | None,
    source_ref: str,
    written_at: datetime,
    source_event: InboundEvent | None,
) -> str:
    now = timezone.now()
    change: BotChange | None
    if command.kind == PAUSE:
        until = command.until or _default_until(conversation, written_at)
        if until is not None and until <= now:
            return f"{command.word}: that pause was already over; nothing changed"
        change = conversation_pause(
            conversation=conversation,
            via=via,
            by_name=by_name,
            by_salesperson=by_salesperson,
            reason=command.word,
            until=until,
            source_ref=source_ref,
            at=now,
        )
        if change is None:
            return f"{command.word}: bot already paused (or command already applied)"
        bot_change_sync(change=change, source_event=source_event)
        ends = f"until {until.isoformat()}" if until else "until #voltar"
        return f"bot paused by {command.word} {ends}"
    change = conversation_resume(
        conversation=conversation,
        via=via,
        by_name=by_name,
        by_salesperson=by_salesperson,
        reason=command.word,
        source_ref=source_ref,
        at=now,
    )
    if change is None:
        return f"{command.word}: bot was not paused (or command already applied)"
    bot_change_sync(change=change, source_event=source_event)
    return f"bot resumed by {command.word}"


def bot_command_from_message(*, message: Message, source_event: InboundEvent | None) -> str | None:
    """A person's outgoing message with #pausar / #voltar pauses or resumes its conversation.
    None when the message holds no command (or is not a person's outgoing message)."""
    if message.direction != Message.Direction.OUTGOING or message.author_kind in (
        Message.AuthorKind.BOT,
        Message.AuthorKind.CUSTOMER,
    ):
        return None
    written_at = message.sent_at or timezone.now()
    command = command_parse(message.text, now=written_at)
    if command is None:
        return None
    conversation = message.conversation
    human_activity(conversation=conversation, at=written_at)
    person, name = _message_author(message, conversation)
    return _apply(
        command,
        conversation=conversation,
        via=ChangeVia.COMMAND,
        by_name=name,
        by_salesperson=person,
        source_ref=f"message:{message.external_id}",
        written_at=written_at,
        source_event=source_event,
    )


def bot_command_from_note(*, note: LeadNote, source_event: InboundEvent | None) -> str | None:
    """#pausar / #voltar in a lead note acts on the lead's most recent conversation. None when
    the note holds no command or is one of the hub's own notes."""
    if note.text.strip().startswith(HUB_NOTE_PREFIXES):
        return None
    written_at = note.written_at or timezone.now()
    command = command_parse(note.text, now=written_at)
    if command is None:
        return None
    # The lead's chat the customer wrote in last (as n8n's envelope picks it).
    conversation = (
        Conversation.objects.filter(lead_id=note.lead_id)
        .order_by(F("last_incoming_at").desc(nulls_last=True), "-pk")
        .first()
        if note.lead_id
        else None
    )
    if conversation is None:
        return f"{command.word} in a note, but the lead has no conversation yet: nothing changed"
    person = _salesperson_by_kommo_id(note.author_kommo_user_id) or conversation_owner(conversation)
    name = person.name if person else f"usuário Kommo {note.author_kommo_user_id or '?'}"
    return _apply(
        command,
        conversation=conversation,
        via=ChangeVia.NOTE,
        by_name=name,
        by_salesperson=person,
        source_ref=f"note:{note.kommo_note_id}",
        written_at=written_at,
        source_event=source_event,
    )


# --- Automatic changes ----------------------------------------------------------------------


def bot_takeover(
    *, conversation: Conversation, message: Message, source_event: InboundEvent | None
) -> str:
    """A person's outgoing message the hub did not ask for (Kommo or the phone): the bot pauses
    if the area allows it, and the silence clock starts again either way."""
    written_at = message.sent_at or timezone.now()
    human_activity(conversation=conversation, at=written_at)
    if command_parse(message.text, now=written_at) is not None:
        return "a person's message with a command: the command decides, no takeover"
    rules = conversation_area_rules(conversation)
    if not rules.auto_takeover:
        return "a person wrote; automatic takeover is off for this area"
    person, name = _message_author(message, conversation)
    change = conversation_pause(
        conversation=conversation,
        via=ChangeVia.TAKEOVER,
        by_name=name,
        by_salesperson=person,
        reason=f"{name or 'a equipe'} respondeu pelo WhatsApp",
        resume_after_silence=rules.takeover_resume_hours > 0,
        source_ref=f"message:{message.external_id}",
    )
    if change is None:
        return "a person wrote; bot already paused, silence clock moved on"
    bot_change_sync(change=change, source_event=source_event)
    if rules.takeover_resume_hours > 0:
        return f"a person took over: bot paused until {rules.takeover_resume_hours} h of silence"
    return "a person took over: bot paused until #voltar"


def bot_handoff(
    *,
    conversation: Conversation,
    reason: str,
    source_event: InboundEvent | None,
    source_ref: str = "",
) -> str:
    """The AI asked for a person: pause (until the area's longest pause, or #voltar), tell the
    salesperson through n8n, and give them a Kommo task."""
    now = timezone.now()
    change = conversation_pause(
        conversation=conversation,
        via=ChangeVia.HANDOFF,
        by_name="IA",
        reason=reason,
        until=_default_until(conversation, now),
        source_ref=source_ref,
        at=now,
    )
    if change is None:
        return "handoff: bot already paused, nothing sent"
    bot_change_sync(change=change, source_event=source_event)
    return "handoff: bot paused, salesperson told and given a Kommo task"


def bot_manual_pause(
    *,
    conversation: Conversation,
    via: str,
    by_name: str,
    by_salesperson: Salesperson | None = None,
    hours: float | None = None,
    reason: str = "",
) -> BotChange | None:
    """A pause from the admin or the API: for `hours`, else the area's longest pause."""
    now = timezone.now()
    until = now + timedelta(hours=hours) if hours else _default_until(conversation, now)
    with transaction.atomic():
        change = conversation_pause(
            conversation=conversation,
            via=via,
            by_name=by_name,
            by_salesperson=by_salesperson,
            reason=reason,
            until=until,
            at=now,
        )
        if change is not None:
            bot_change_sync(change=change, source_event=None)
    return change


def bot_manual_resume(
    *,
    conversation: Conversation,
    via: str,
    by_name: str,
    by_salesperson: Salesperson | None = None,
    reason: str = "",
) -> BotChange | None:
    with transaction.atomic():
        change = conversation_resume(
            conversation=conversation,
            via=via,
            by_name=by_name,
            by_salesperson=by_salesperson,
            reason=reason,
        )
        if change is not None:
            bot_change_sync(change=change, source_event=None)
    return change


def bot_tick(*, now: datetime | None = None) -> int:
    """Scheduler: record the end of every pause that is over, with its Kommo sync."""
    now = now or timezone.now()
    resumed = 0
    for conversation, _reason in bot_changes_due(now=now):
        try:
            with transaction.atomic():
                change = conversation_expire(conversation=conversation, now=now)
                if change is not None:
                    bot_change_sync(change=change, source_event=None)
                    resumed += 1
        except Exception:
            logger.exception("bot pause expiry failed", extra={"conversation": conversation.pk})
    return resumed
