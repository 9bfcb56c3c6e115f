"""Flow 2 coordination: customer messages become AI replies; n8n reports back; people take over.

- A customer's message (`message[add]`, incoming) finds its lead (by the chat's lead, else by the
  Kommo contact; a person nobody knows becomes a new lead, routed without a proactive message:
  they wrote first). If the bot is active in the conversation, the message joins the
  conversation's open *burst*: one pending `reply` action per burst, due REPLY_COALESCE_SECONDS
  after the burst's latest message (at most 4 windows after its first). Customers send several
  short messages in a row; they get one reply. A message after the burst's reply went out starts
  the next burst. The envelope is built when the reply is sent (outbox.delivery), and a reply
  whose conversation was paused by then is skipped, never sent.
- n8n's callback (ARCHITECTURE §4.3) records what was sent on the action and as a bot message in
  the conversation; `failed` raises an alert; `handoff` hands the conversation to a person.
- An outgoing message is the bot's (Kommo says so, or it is the echo of what n8n reported
  sending), may be the bot's (an n8n send whose callback has not arrived yet: decided later), or
  a person's: a #pausar/#voltar command, else a takeover; and it stops the reply SLA.

Serialization: every message of a chat locks the chat's Conversation row first (message_record →
conversation_upsert), so two workers processing two messages of one burst take turns and find
one action; its unique idempotency key backs that up. The burst's action row is locked too while
a message joins it, so delivery's claim (one conditional UPDATE) either happens before (the
message starts a new burst) or re-reads the pushed due time after (and does not claim yet).

The strings returned become the event's result: operational records, in English.
"""

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from django.conf import settings
from django.db.models import Q
from django.tasks import task_backends
from django.utils import timezone
from django.utils.translation import gettext as _
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from kommo_hub.crm import services as crm
from kommo_hub.flows import leads as leads_flow
from kommo_hub.intake.kommo import BigInt, KommoLead, KommoMessage, KommoUnsorted, kommo_datetime
from kommo_hub.models import (
    ActionStatus,
    ActionTarget,
    Alert,
    ClaimState,
    Conversation,
    InboundEvent,
    Lead,
    Message,
    OutboundAction,
)
from kommo_hub.outbox import claims
from kommo_hub.outbox.envelope import (
    conversation_block,
    iso,
    lead_conversation,
)
from kommo_hub.outbox.services import N8N_ACTIONS, dependents_release
from routing.models import Area, AreaMembership, Assignment, Salesperson
from routing.selectors import area_default

logger = logging.getLogger("kommo_hub.conversations")

REPLY = "reply"
SCHEDULE = "schedule"
# A burst's reply waits at most this many windows after the burst's first message.
BURST_CAP_WINDOWS = 4
# Clock skew between Kommo and the hub when comparing a message's time with a send.
ECHO_SKEW = timedelta(seconds=5)
# How far back an outgoing message is compared with what n8n reported sending.
ECHO_MATCH_AGE = timedelta(hours=24)
# While an echo may still be the bot's, its event is retried this often (no attempt used).
ECHO_RECHECK_SECONDS = 10.0
HUB_MESSAGE_PREFIX = "hub:action:"
WHATSAPP_ORIGINS = ("waba", "whatsapp", "amocrmwa", ".wa")


class EchoPending(Exception):
    """An outgoing message may be the bot's own: decide when n8n's callback arrives."""

    def __init__(self, reason: str, seconds: float) -> None:
        super().__init__(reason)
        self.seconds = seconds


@dataclass(frozen=True)
class Handled:
    result: str
    lead: Lead | None


def chat_source(origin: str | None) -> str:
    """A lead's `source` for a chat channel: "whatsapp" for every WhatsApp flavour."""
    text = (origin or "").lower()
    if any(mark in text for mark in WHATSAPP_ORIGINS):
        return "whatsapp"
    return text[:32] or "chat"


# --- message[add] ---------------------------------------------------------------------------------


def message_added(*, item: KommoMessage, source_event: InboundEvent | None) -> Handled:
    conversation = crm.message_conversation(item=item)  # locked until this event commits
    if Message.objects.filter(external_id=item.id).exists():
        return Handled("message already stored", conversation.lead)
    kind = crm.message_author_kind(item)
    if kind == Message.AuthorKind.CUSTOMER:
        return _incoming(conversation, item, source_event)
    if kind == Message.AuthorKind.UNKNOWN and (item.type or "").lower() != "outgoing":
        crm.message_record(item=item, conversation=conversation, author_kind=kind, known_new=True)
        return Handled("message stored; author unknown", conversation.lead)
    return _outgoing(conversation, item, kind, source_event)


def _incoming(
    conversation: Conversation, item: KommoMessage, source_event: InboundEvent | None
) -> Handled:
    from botcontrol.services import bot_is_active

    lead, created = _lead_for_chat(conversation, item)
    message, _created = crm.message_record(
        item=item,
        conversation=conversation,
        author_kind=Message.AuthorKind.CUSTOMER,
        known_new=True,
    )
    parts = ["message stored"]
    if created:
        parts.append("new lead")
    routed = _route_if_new(lead, source_event)
    if routed:
        parts.append(routed)
    if not bot_is_active(conversation_id=conversation.pk):
        parts.append("bot paused: no reply")
        return Handled("; ".join(parts), lead)
    action, joined = reply_schedule(
        conversation=conversation, lead=lead, message=message, source_event=source_event
    )
    parts.append(f"joined reply #{action.pk}" if joined else f"reply #{action.pk} scheduled")
    return Handled("; ".join(parts), lead)


def _lead_for_chat(conversation: Conversation, item: KommoMessage) -> tuple[Lead, bool]:
    """The chat's lead (Kommo named it), else the contact's open lead, else a new one."""
    lead = conversation.lead
    created = False
    contact = None
    if item.contact_id and (lead is None or lead.contact_id is None):
        contact = crm.contact_for_kommo_id(kommo_contact_id=item.contact_id, name=item.author.name)
    if lead is None:
        lead = crm.lead_open_for_contact(contact=contact) if contact is not None else None
        if lead is None:
            lead = crm.lead_create_from_chat(
                contact=contact, name=item.author.name, source=chat_source(item.origin)
            )
            created = True
        conversation.lead = lead
        conversation.save(update_fields=["lead", "updated_at"])
    if lead.contact_id is None and contact is not None:
        lead.contact = contact
        lead.save(update_fields=["contact", "updated_at"])
    return lead, created


def _route_if_new(lead: Lead, source_event: InboundEvent | None) -> str:
    """A lead the hub has not routed yet: Kommo's owner if they are one of ours, else routing.
    No proactive message: the customer wrote first and the reply is the first message."""
    if Assignment.objects.filter(lead=lead, is_current=True).exists():
        return ""
    if lead.kommo_responsible_user_id:
        owner = Salesperson.objects.filter(
            kommo_user_id=lead.kommo_responsible_user_id, active=True
        ).first()
        if owner is not None:
            from routing.services import assignment_from_kommo_owner

            assignment_from_kommo_owner(
                lead_id=lead.pk, kommo_user_id=lead.kommo_responsible_user_id
            )
            return f"owner set in Kommo: {owner.name}"
    return leads_flow.lead_route_and_sync(lead=lead, source_event=source_event, proactive=False)


# --- coalescing: one reply per burst --------------------------------------------------------------


def reply_schedule(
    *,
    conversation: Conversation,
    lead: Lead | None,
    message: Message,
    source_event: InboundEvent | None,
    now: datetime | None = None,
) -> tuple[OutboundAction, bool]:
    """Add `message` to the conversation's open burst, or open one; returns (action, joined).

    Call with the conversation row locked (message_record does). Open: a `reply` not sent yet
    (pending, or held because n8n is not configured). Its due time moves to a window after this
    message, capped at BURST_CAP_WINDOWS windows after the burst began.
    """
    now = now or timezone.now()
    window = timedelta(seconds=settings.REPLY_COALESCE_SECONDS)
    burst = (
        OutboundAction.objects.select_for_update()
        .filter(
            conversation=conversation,
            target=ActionTarget.N8N,
            action=REPLY,
            status__in=[ActionStatus.PENDING, ActionStatus.HELD],
        )
        .order_by("-pk")
        .first()
    )
    if burst is not None:
        info = dict(burst.payload.get("burst") or {})
        info["messages"] = [*info.get("messages", []), message.pk]
        burst.payload = {**burst.payload, "burst": info}
        fields: dict[str, Any] = {"payload": burst.payload}
        if burst.status == ActionStatus.PENDING:
            due = min(now + window, burst.created_at + window * BURST_CAP_WINDOWS)
            fields["next_attempt_at"] = due
            _deliver_at(burst.pk, due=due, now=now)
        OutboundAction.objects.filter(pk=burst.pk).update(**fields)
        return burst, True
    # A new message opens it, so the key is new: under the conversation's lock a plain insert
    # (the unique key still turns a broken lock into an error and a retry, never two replies).
    key = f"n8n:{REPLY}:{conversation.pk}:{message.pk}"
    due = now + window
    action = OutboundAction.objects.create(
        idempotency_key=key,
        target=ActionTarget.N8N,
        action=REPLY,
        # The rest of the envelope is built when it is sent (reply_envelope).
        payload={"action": REPLY, "idempotency_key": key, "burst": {"messages": [message.pk]}},
        lead=lead,
        conversation=conversation,
        source_event=source_event,
        next_attempt_at=due,
    )
    _deliver_at(action.pk, due=due, now=now)
    return action, False


def _deliver_at(action_id: int, *, due: datetime, now: datetime) -> None:
    """Queue the delivery for `due`. A queue that cannot defer (the immediate backend) runs it now:
    the claim then waits for `next_attempt_at`, and the scheduler's sweep sends it when due."""
    from kommo_hub.queue import enqueue_on_commit
    from kommo_hub.tasks import deliver_outbound_action

    task = deliver_outbound_action
    if due > now and task_backends["default"].supports_defer:
        task = task.using(run_after=due)
    enqueue_on_commit(task, action_id)


def reply_skip_reason(action: OutboundAction) -> str:
    """Why a reply must not be sent now (read from the database, never a cache): "" to send."""
    if action.action != REPLY or action.conversation_id is None:
        return ""
    from botcontrol.services import bot_is_active_db

    if bot_is_active_db(conversation_id=action.conversation_id):
        return ""
    return "skipped: bot paused"


def reply_envelope(action: OutboundAction, *, lead: Lead | None) -> dict[str, Any]:
    """A reply's envelope as sent now: the lead, its area and salesperson, the conversation (the
    burst's messages and the last ones before them) and `message`, the customer's latest."""
    from kommo_hub.outbox.envelope import envelope_for_attempt

    payload = {k: v for k, v in action.payload.items() if k != "burst"}
    conversation = (
        Conversation.objects.filter(pk=action.conversation_id).first()
        if action.conversation_id is not None
        else None
    )
    ids = list((action.payload.get("burst") or {}).get("messages") or [])
    burst = list(Message.objects.filter(pk__in=ids).order_by("sent_at", "pk")) if ids else []
    envelope = envelope_for_attempt(payload, lead=lead, conversation=conversation)
    area, person = lead_area_and_salesperson(lead)
    if area is not None:
        envelope["area"] = leads_flow.area_block(area)
    if person is not None:
        envelope["salesperson"] = leads_flow.salesperson_block(person)
    if conversation is not None:
        envelope["conversation"] = conversation_block(
            conversation, bot_active=True, upto_incoming_pk=max(ids) if ids else None
        )
    if burst:
        latest = burst[-1]
        block: dict[str, Any] = {
            "id": latest.external_id,
            "text": latest.text,
            "at": iso(latest.sent_at or latest.created_at),
            "type": latest.message_type,
        }
        if latest.attachment:
            block["attachment"] = latest.attachment
        block["burst"] = [_burst_entry(m) for m in burst]
        envelope["message"] = block
        if lead is not None:
            _schedule_if_asked(envelope, conversation, lead, burst)
    if "callback_url" in envelope:  # keep it last, as for every other action
        envelope["callback_url"] = envelope.pop("callback_url")
    return envelope


def _schedule_if_asked(
    envelope: dict[str, Any],
    conversation: Conversation | None,
    lead: Lead,
    burst: list[Message],
) -> None:
    """Flow 3: a burst that asks for a meeting gets `schedule` with real free slots instead of
    a plain `reply`, so the AI never invents a time."""
    from kommo_hub.flows.schedule_intent import schedule_action_for

    latest = burst[-1]
    scheduling = schedule_action_for(
        conversation=conversation,
        lead=lead,
        messages_text="\n".join(m.text for m in burst if m.text),
        at=latest.sent_at or latest.created_at,
    )
    if scheduling is None:
        return
    # The row stays a `reply` (its burst and retries are the same); what n8n gets says schedule.
    envelope["action"] = SCHEDULE
    envelope["scheduling"] = scheduling


def _burst_entry(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": message.external_id,
        "text": message.text,
        "at": iso(message.sent_at or message.created_at),
        "type": message.message_type,
    }
    if message.attachment:
        entry["attachment"] = message.attachment
    return entry


def lead_area_and_salesperson(lead: Lead | None) -> tuple[Area | None, Salesperson | None]:
    """The lead's current area and salesperson; without an area on the assignment (an owner set
    in Kommo), the salesperson's first area, else the default area."""
    if lead is None:
        return None, None
    current = (
        Assignment.objects.select_related("area", "salesperson")
        .filter(lead=lead, is_current=True)
        .first()
    )
    person = current.salesperson if current else None
    area = current.area if current else None
    if area is None and person is not None:
        membership = (
            AreaMembership.objects.select_related("area")
            .filter(salesperson=person, active=True, area__active=True)
            .order_by("priority", "pk")
            .first()
        )
        area = membership.area if membership else None
    return area or area_default(), person


def conversation_for_action(action: OutboundAction, lead: Lead | None) -> Conversation | None:
    if action.conversation_id is not None:
        return Conversation.objects.filter(pk=action.conversation_id).first()
    return lead_conversation(lead) if lead is not None else None


# --- outgoing messages: the bot's, or a person's --------------------------------------------------


def _outgoing(
    conversation: Conversation, item: KommoMessage, kind: str, source_event: InboundEvent | None
) -> Handled:
    lead = conversation.lead
    now = timezone.now()
    sent = _echo_of(conversation, item, now=now)
    if sent is not None:
        _echo_adopt(sent, conversation, item)
        return Handled(f"bot message (n8n action #{sent.pk})", lead)
    if kind == Message.AuthorKind.BOT:
        crm.message_record(item=item, conversation=conversation, author_kind=kind, known_new=True)
        return Handled("bot message stored", lead)
    pending = _callback_pending(conversation, item, now=now)
    if pending is not None:
        assert pending.delivered_at is not None
        left = pending.delivered_at + _echo_window() - now
        raise EchoPending(
            f"may be the echo of n8n action #{pending.pk}: waiting for its callback",
            seconds=max(1.0, min(ECHO_RECHECK_SECONDS, left.total_seconds())),
        )
    message, _created = crm.message_record(
        item=item,
        conversation=conversation,
        author_kind=Message.AuthorKind.SALESPERSON,
        known_new=True,
    )
    leads_flow.salesperson_replied(lead=lead, at=message.sent_at)
    from kommo_hub.flows.bot import bot_command_from_message, bot_takeover

    command = bot_command_from_message(message=message, source_event=source_event)
    if command is not None:
        return Handled(f"message stored; {command}", lead)
    takeover = bot_takeover(conversation=conversation, message=message, source_event=source_event)
    return Handled(f"message stored; {takeover}", lead)


def _echo_window() -> timedelta:
    return timedelta(seconds=settings.BOT_ECHO_WINDOW_SECONDS)


def _sends_for(conversation: Conversation) -> Any:
    """n8n actions about this conversation (a reply's own, or any for its lead)."""
    scope = Q(conversation=conversation)
    if conversation.lead_id is not None:
        scope |= Q(lead_id=conversation.lead_id)
    return OutboundAction.objects.filter(scope, target=ActionTarget.N8N)


_SPACES = re.compile(r"\s+")


def _same_text(a: str, b: str) -> bool:
    return _SPACES.sub(" ", a).strip() == _SPACES.sub(" ", b).strip()


def _echo_of(
    conversation: Conversation, item: KommoMessage, *, now: datetime
) -> OutboundAction | None:
    """The n8n action whose reported message this is: by its id, else by its text."""
    candidates = list(
        _sends_for(conversation)
        .filter(callback_at__gte=now - ECHO_MATCH_AGE)
        .exclude(result__has_key="echo_message_id")
        .order_by("callback_at", "pk")[:50]
    )
    for action in candidates:
        if action.result.get("whatsapp_message_id") == item.id:
            return action
    text = item.text or ""
    if not text.strip():
        return None
    for action in candidates:
        reported = action.result.get("reply_text")
        if isinstance(reported, str) and _same_text(reported, text):
            return action
    return None


def _echo_adopt(action: OutboundAction, conversation: Conversation, item: KommoMessage) -> Message:
    """The echo and the message recorded from the callback are one message: keep one row, under
    Kommo's id (a later delivery of the echo is then a plain duplicate)."""
    message = action.sent_message
    if message is not None and message.external_id.startswith(HUB_MESSAGE_PREFIX):
        message.external_id = item.id
        message.conversation = conversation
        message.author_id = item.author.id or message.author_id
        message.author_name = item.author.name[:255] or message.author_name
        message.sent_at = kommo_datetime(item.created_at) or message.sent_at
        message.save(
            update_fields=["external_id", "conversation", "author_id", "author_name", "sent_at"]
        )
    else:
        message, _created = crm.message_record(
            item=item, conversation=conversation, author_kind=Message.AuthorKind.BOT
        )
    OutboundAction.objects.filter(pk=action.pk).update(
        sent_message=message, result={**action.result, "echo_message_id": item.id}
    )
    return message


def _callback_pending(
    conversation: Conversation, item: KommoMessage, *, now: datetime
) -> OutboundAction | None:
    """An n8n send whose callback has not arrived, that went out at most the echo window before
    this message was written (and not after it: a message older than the send cannot be its
    echo), while that window is still open now."""
    written = kommo_datetime(item.created_at) or now
    return (
        _sends_for(conversation)
        .filter(
            status=ActionStatus.DONE,
            action__in=N8N_ACTIONS,
            callback_at__isnull=True,
            delivered_at__gte=max(now, written) - _echo_window(),
            delivered_at__lte=written + ECHO_SKEW,
        )
        .order_by("delivered_at")
        .first()
    )


# --- unsorted[add]: a new chat in Kommo's incoming leads ------------------------------------------


def chat_lead_added(
    *, item: KommoUnsorted, lead_ids: list[int], source_event: InboundEvent | None
) -> Handled:
    """Kommo opened an incoming lead (a chat with someone new): mirror it with what the hook says
    about the person, and route it. A chat gets no proactive message (the customer wrote first)."""
    is_chat = (item.category or "").lower() == "chats"
    source_data = item.source_data if isinstance(item.source_data, dict) else {}
    origin = str(source_data.get("origin") or getattr(item, "source", "") or "")
    client = source_data.get("client")
    name = str(client.get("name") or "") if isinstance(client, dict) else ""
    phone = str(source_data.get("from") or "") if is_chat else ""
    contact = _unsorted_contact(item, name=name, phone=phone)
    lead = None
    results = []
    for lead_id in lead_ids:
        existed = Lead.objects.filter(kommo_lead_id=lead_id).exists()
        lead, _changed = crm.lead_upsert_from_kommo(item=KommoLead(id=lead_id))
        if not existed:
            _fill_new_chat_lead(lead, contact=contact, name=name, source=chat_source(origin))
        routed = _route_chat_lead(lead, source_event, proactive=not is_chat)
        results.append(routed)
    return Handled("; ".join(["incoming lead recorded", *[r for r in results if r]]), lead)


def _unsorted_contact(item: KommoUnsorted, *, name: str, phone: str) -> Any:
    contacts = item.data.get("contacts") if isinstance(item.data, dict) else None
    first = next(iter(contacts.values()), None) if isinstance(contacts, dict) else None
    if not isinstance(first, dict) or not str(first.get("id", "")).isdigit():
        return None
    return crm.contact_for_kommo_id(
        kommo_contact_id=int(first["id"]), name=name or str(first.get("name") or ""), phone=phone
    )


def _fill_new_chat_lead(lead: Lead, *, contact: Any, name: str, source: str) -> None:
    lead.source = source[:32]
    lead.name = lead.name or name or (contact.name if contact else "")
    if contact is not None:
        lead.contact = contact
        lead.phone, lead.phone_raw = contact.phone, contact.phone_raw
    lead.save()


def _route_chat_lead(lead: Lead, source_event: InboundEvent | None, *, proactive: bool) -> str:
    if Assignment.objects.filter(lead=lead, is_current=True).exists():
        return ""
    return leads_flow.lead_route_and_sync(lead=lead, source_event=source_event, proactive=proactive)


# --- n8n's callback -------------------------------------------------------------------------------


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _blank_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


_TRUE, _FALSE = {"true", "1", "yes", "sim"}, {"false", "0", "no", "nao", "não", ""}


def _flag(value: Any) -> Any:
    """A lenient boolean: n8n expressions often send "true" / "false" as text; anything else is
    "not said" rather than a rejected report (the failure itself must still be recorded)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _text_id(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _blank_none(value.strip()) if isinstance(value, str) else value


class N8nCallback(BaseModel):
    """ARCHITECTURE §4.3. Unknown keys are kept on the event, not used."""

    model_config = ConfigDict(extra="allow")

    idempotency_key: str = Field(min_length=1, max_length=255)
    status: Annotated[Literal["done", "failed", "handoff"], BeforeValidator(_lower)]
    whatsapp_message_id: Annotated[str | None, BeforeValidator(_blank_none)] = Field(
        default=None, max_length=255
    )
    kommo_note_id: Annotated[BigInt | None, BeforeValidator(_blank_none)] = None
    appointment: dict[str, Any] | None = None
    reply_text: str | None = None
    error: str | None = None
    # With `failed`: n8n says trying again may work (a timeout, a 5xx): the hub redelivers.
    retryable: Annotated[bool | None, BeforeValidator(_flag)] = None
    # n8n's `$execution.id`: tells a retried execution's reports from the first one's.
    execution_id: Annotated[str | None, BeforeValidator(_text_id)] = Field(
        default=None, max_length=64
    )


def callback_received(*, callback: N8nCallback, source_event: InboundEvent | None) -> Handled:
    """Record what n8n reports; idempotent per (idempotency_key, status), and per execution for
    `failed` (a redelivered action may fail again).

    done and handoff win over failed, in either order: a late done ends a scheduled redelivery
    (or a dead letter), and a failed after done changes nothing but the history. A retryable
    failure of the execution that holds the claim redelivers the action with the outbox's backoff
    until ACTION_MAX_ATTEMPTS, then dead-letters it with an alert; any other failure alerts.
    """
    action = (
        OutboundAction.objects.select_for_update()
        .filter(idempotency_key=callback.idempotency_key, target=ActionTarget.N8N)
        .first()
    )
    if action is None:
        return Handled("unknown action", None)
    lead = Lead.objects.filter(pk=action.lead_id).first() if action.lead_id else None
    if _callback_recorded(action, callback):
        return Handled(f"callback {callback.status} already recorded", lead)
    now = timezone.now()
    claim = claims.claim_for(idempotency_key=action.idempotency_key)
    # Another execution holds the claim now (this one outlived the TTL): its report decides.
    superseded = (
        claim is not None
        and claim.state == ClaimState.STARTED
        and not claims.claim_held_by(claim, callback.execution_id)
    )
    claims.claim_settle(
        action=action, status=callback.status, execution_id=callback.execution_id, now=now
    )
    finished = action.callback_status in claims.FINISHED
    conversation = conversation_for_action(action, lead)
    parts = [f"callback {callback.status} recorded"]
    message = action.sent_message
    text = (callback.reply_text or "").strip()
    if callback.status != "failed" and text and conversation is not None and message is None:
        message = _bot_message_record(action, conversation, callback, now=now)
        parts.append(f"bot message #{message.pk} stored")
    result = dict(action.result)
    for field in ("whatsapp_message_id", "kommo_note_id", "reply_text", "appointment", "error"):
        value = getattr(callback, field)
        if value is not None:
            result[field] = value
    event_id = source_event.pk if source_event is not None else None
    entry: dict[str, Any] = {"status": callback.status, "at": iso(now), "event": event_id}
    if callback.execution_id is not None:
        entry["execution_id"] = callback.execution_id
    if callback.retryable is not None:
        entry["retryable"] = callback.retryable
    result["callbacks"] = [*action.result.get("callbacks", []), entry]
    fields: dict[str, Any] = {"result": result, "sent_message": message}
    if callback.status == "failed" and (finished or superseded):
        # Done already (done wins), or an earlier execution's report: history only.
        OutboundAction.objects.filter(pk=action.pk).update(**fields)
        parts.append("already done: ignored" if finished else "from an earlier execution: ignored")
        return Handled("; ".join(parts), lead)
    fields.update(callback_status=callback.status, callback_at=now)
    if callback.status == "failed":
        fields["last_error"] = f"n8n: {callback.error or 'failed'}"[:4000]
        if callback.retryable:
            parts.extend(_redeliver(action, fields, now=now))
            return Handled("; ".join(parts), lead)
        OutboundAction.objects.filter(pk=action.pk).update(**fields)
        _failed_alert(action, callback)
        parts.append("alert raised")
        return Handled("; ".join(parts), lead)
    if action.status != ActionStatus.DONE:
        # A late done (or handoff) after a failed: the action was carried out after all.
        parts.append(f"action done after all (was {action.status})")
        fields.update(
            status=ActionStatus.DONE, next_attempt_at=None, locked_until=None, claim_token=""
        )
    OutboundAction.objects.filter(pk=action.pk).update(**fields)
    if action.status != ActionStatus.DONE:
        dependents_release(action=action)
    if callback.status == "handoff":
        if conversation is None:
            parts.append("handoff asked but the lead has no conversation")
        else:
            from kommo_hub.flows.bot import bot_handoff

            reason = callback.error or callback.reply_text or "n8n asked for a person"
            parts.append(
                bot_handoff(
                    conversation=conversation,
                    reason=reason,
                    source_event=source_event,
                    source_ref=f"n8n:{callback.idempotency_key}",
                )
            )
    return Handled("; ".join(parts), lead)


def _callback_recorded(action: OutboundAction, callback: N8nCallback) -> bool:
    """done and handoff count once per action; failed once per execution."""
    for entry in action.result.get("callbacks", []):
        if entry.get("status") != callback.status:
            continue
        if callback.status != "failed" or entry.get("execution_id") == callback.execution_id:
            return True
    return False


def _redeliver(action: OutboundAction, fields: dict[str, Any], *, now: datetime) -> list[str]:
    """A retryable failure: the same action (same key) goes to n8n again after the backoff, or,
    with its attempts used up, becomes a dead letter with an alert. A delivery of it still in
    flight loses its claim, so its outcome cannot overwrite this."""
    from kommo_hub.leasing import backoff_delay

    fields.update(locked_until=None, claim_token="")
    if action.attempts >= settings.ACTION_MAX_ATTEMPTS:
        fields.update(status=ActionStatus.DEAD, next_attempt_at=None)
        OutboundAction.objects.filter(pk=action.pk).update(**fields)
        Alert.objects.create(
            kind=Alert.Kind.N8N_FAILED,
            message=_(
                "n8n could not carry out %(action)s #%(id)s (lead #%(lead)s) after %(attempts)s "
                "attempts; it is a dead letter now: %(error)s"
            )
            % {
                "action": action.action,
                "id": action.pk,
                "lead": action.lead_id or "-",
                "attempts": action.attempts,
                "error": str(fields["last_error"])[5:505],
            },
        )
        return [f"dead after {action.attempts} attempt(s)", "alert raised"]
    due = now + backoff_delay(action.attempts)
    fields.update(status=ActionStatus.FAILED, next_attempt_at=due)
    OutboundAction.objects.filter(pk=action.pk).update(**fields)
    _deliver_at(action.pk, due=due, now=now)
    return [
        f"redelivery {action.attempts + 1} of {settings.ACTION_MAX_ATTEMPTS} "
        f"scheduled for {iso(due.replace(microsecond=0))}"
    ]


def _failed_alert(action: OutboundAction, callback: N8nCallback) -> None:
    Alert.objects.create(
        kind=Alert.Kind.N8N_FAILED,
        message=_("n8n could not carry out %(action)s #%(id)s (lead #%(lead)s): %(error)s")
        % {
            "action": action.action,
            "id": action.pk,
            "lead": action.lead_id or "-",
            "error": (callback.error or "")[:500],
        },
    )


def _bot_message_record(
    action: OutboundAction, conversation: Conversation, callback: N8nCallback, *, now: datetime
) -> Message:
    """What n8n sent, as a bot message of the conversation. If its echo was already stored under
    the id n8n reports, that row is the message (and it is the bot's)."""
    if callback.whatsapp_message_id:
        echo = Message.objects.filter(
            external_id=callback.whatsapp_message_id[:64], conversation=conversation
        ).first()
        if echo is not None:
            if echo.author_kind != Message.AuthorKind.BOT:
                echo.author_kind = Message.AuthorKind.BOT
                echo.save(update_fields=["author_kind"])
            return echo
    message, _created = Message.objects.get_or_create(
        external_id=f"{HUB_MESSAGE_PREFIX}{action.pk}",
        defaults={
            "conversation": conversation,
            "direction": Message.Direction.OUTGOING,
            "author_kind": Message.AuthorKind.BOT,
            "author_name": "n8n",
            "message_type": "text",
            "text": callback.reply_text or "",
            "sent_at": now,
        },
    )
    return message
