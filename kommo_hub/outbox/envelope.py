"""The n8n action envelope (ARCHITECTURE §4.2). Keys that do not apply are omitted.

Blocks that go stale are rebuilt at every attempt: the lead (its Kommo ids may arrive after the
action was stored) and, for any action whose lead has a conversation, the conversation block
(bot state, the WhatsApp 24-hour window, the last messages), so n8n can fall back to an approved
template when free text is no longer allowed.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from kommo_hub.models import Conversation, Lead, Message

# WhatsApp allows free text only this long after the customer's last message.
WHATSAPP_WINDOW = timedelta(hours=24)
LAST_MESSAGES = 20


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, like `sent_at`."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lead_block(lead: Lead, *, conversation: Conversation | None = None) -> dict[str, Any]:
    contact = lead.contact
    kommo_contact_id = contact.kommo_contact_id if contact else None
    if kommo_contact_id is None and conversation is not None:
        kommo_contact_id = conversation.kommo_contact_id  # the chat knows its contact
    return {
        "id": lead.pk,
        "kommo_lead_id": lead.kommo_lead_id,
        "kommo_contact_id": kommo_contact_id,
        "name": lead.name or (contact.name if contact else ""),
        "phone": lead.phone or (contact.phone if contact else ""),
        "email": lead.email or (contact.email if contact else ""),
        "source": lead.source,
        "utm": lead.utm,
        "fields": lead.fields,
    }


def callback_url() -> str | None:
    if not settings.N8N_CALLBACK_SECRET:
        return None
    path = reverse("webhook-n8n", kwargs={"secret": settings.N8N_CALLBACK_SECRET})
    return f"{settings.HUB_PUBLIC_URL}{path}"


def envelope_build(
    *, action: str, idempotency_key: str, lead: Lead | None, **blocks: dict[str, Any] | None
) -> dict[str, Any]:
    """The stored payload of an n8n action; `sent_at` and `callback_url` are set per attempt."""
    envelope: dict[str, Any] = {"action": action, "idempotency_key": idempotency_key}
    if lead is not None:
        envelope["lead"] = lead_block(lead)
    envelope.update({name: block for name, block in blocks.items() if block is not None})
    return envelope


# --- the conversation block ------------------------------------------------------------------


def lead_conversation(lead: Lead) -> Conversation | None:
    """The lead's chat: the one the customer wrote in last (a lead rarely has more than one)."""
    return (
        Conversation.objects.filter(lead_id=lead.pk)
        .order_by(F("last_incoming_at").desc(nulls_last=True), "-pk")
        .first()
    )


def whatsapp_window(
    conversation: Conversation, *, now: datetime | None = None
) -> tuple[bool, datetime | None]:
    """(free text allowed now, when that ends): 24 hours after the customer's last message."""
    if conversation.last_incoming_at is None:
        return False, None
    closes = conversation.last_incoming_at + WHATSAPP_WINDOW
    return closes > (now or timezone.now()), closes


def message_author(message: Message) -> str:
    if message.author_kind in (Message.AuthorKind.CUSTOMER, Message.AuthorKind.BOT):
        return str(message.author_kind)
    if message.author_kind == Message.AuthorKind.SALESPERSON:
        return "salesperson"
    return "customer" if message.direction == Message.Direction.INCOMING else "salesperson"


def message_entry(message: Message) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "direction": message.direction,
        "text": message.text,
        "at": iso(message.sent_at or message.created_at),
        "author": message_author(message),
    }
    if message.attachment:
        entry["attachment"] = message.attachment
    return entry


def last_messages(
    conversation: Conversation, *, upto_incoming_pk: int | None = None, limit: int = LAST_MESSAGES
) -> list[dict[str, Any]]:
    """The conversation's last `limit` messages, oldest first.

    With `upto_incoming_pk`, customer messages stored after that one are left out: they belong to
    the next reply's burst.
    """
    messages = Message.objects.filter(conversation=conversation)
    if upto_incoming_pk is not None:
        messages = messages.filter(
            Q(direction=Message.Direction.OUTGOING) | Q(pk__lte=upto_incoming_pk)
        )
    newest = messages.order_by(F("sent_at").desc(nulls_last=True), "-pk")[:limit]
    return [message_entry(m) for m in reversed(list(newest))]


def conversation_block(
    conversation: Conversation,
    *,
    bot_active: bool,
    upto_incoming_pk: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    window_open, closes = whatsapp_window(conversation, now=now)
    return {
        "chat_id": conversation.chat_id,
        "talk_id": conversation.talk_id,
        "bot_state": "active" if bot_active else "paused",
        "window_open": window_open,
        "window_closes_at": iso(closes),
        "last_messages": last_messages(conversation, upto_incoming_pk=upto_incoming_pk),
    }


def envelope_for_attempt(
    payload: dict[str, Any],
    *,
    lead: Lead | None = None,
    conversation: Conversation | None = None,
    bot_active: bool | None = None,
) -> dict[str, Any]:
    """The stored payload as sent now: `sent_at`, `callback_url`, and the blocks rebuilt from the
    current rows: the lead (e.g. the Kommo ids of a lead created in Kommo after the action was
    stored) and, given a conversation, its block (`bot_active` is the bot state read now)."""
    envelope = {**payload, "sent_at": iso(timezone.now())}
    if lead is not None:
        envelope["lead"] = lead_block(lead, conversation=conversation)
    if conversation is not None and bot_active is not None:
        envelope["conversation"] = conversation_block(conversation, bot_active=bot_active)
    url = callback_url()
    if url:
        envelope["callback_url"] = url
    return envelope
