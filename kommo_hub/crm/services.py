"""Keeping the hub's mirror of Kommo and its own leads. Every function is idempotent."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from kommo_hub.intake.kommo import (
    KommoContact,
    KommoLead,
    KommoMessage,
    KommoNote,
    KommoTalk,
    kommo_datetime,
)
from kommo_hub.intake.leads import UTM_KEYS, LeadIntake
from kommo_hub.intake.normalize import normalize_email, normalize_name, normalize_phone
from kommo_hub.models import Contact, Conversation, Lead, LeadNote, Message

logger = logging.getLogger("kommo_hub.crm")


def _is_stale(current: datetime | None, incoming: datetime | None) -> bool:
    """Kommo does not promise order: never let an older event overwrite a newer one."""
    return current is not None and incoming is not None and incoming < current


def lead_upsert_from_kommo(*, item: KommoLead, deleted: bool = False) -> tuple[Lead, bool]:
    """Mirror a Kommo lead; returns (lead, changed)."""
    lead, _ = Lead.objects.select_for_update().get_or_create(
        kommo_lead_id=item.id, defaults={"source": "kommo"}
    )
    if _is_stale(lead.kommo_updated_at, item.version):
        return lead, False
    if deleted:
        lead.deleted_in_kommo = True
        lead.save(update_fields=["deleted_in_kommo", "updated_at"])
        return lead, True
    if item.name:
        lead.name = normalize_name(item.name)
    for field, value in (
        ("kommo_status_id", item.status_id),
        ("kommo_pipeline_id", item.pipeline_id),
        ("kommo_responsible_user_id", item.responsible_user_id),
        ("price", item.price),
    ):
        if value is not None:
            setattr(lead, field, value)
    if item.tags:
        lead.tags = [t.name for t in item.tags if t.name]
    custom = {f.name or str(f.id): f.first_value() for f in item.custom_fields}
    utm = {k: v for k, v in custom.items() if k.lower() in UTM_KEYS and v}
    lead.utm = {**lead.utm, **{k.lower(): v for k, v in utm.items()}}
    lead.fields = {**lead.fields, **{k: v for k, v in custom.items() if k not in utm}}
    lead.deleted_in_kommo = False
    lead.kommo_updated_at = item.version or lead.kommo_updated_at
    lead.save()
    return lead, True


def contact_upsert_from_kommo(*, item: KommoContact) -> tuple[Contact, bool]:
    contact, _ = Contact.objects.select_for_update().get_or_create(kommo_contact_id=item.id)
    if _is_stale(contact.kommo_updated_at, item.version):
        return contact, False
    if item.name:
        contact.name = normalize_name(item.name)
    phone_raw = item.field_value("PHONE")
    if phone_raw:
        phone = normalize_phone(phone_raw)
        contact.phone, contact.phone_raw = phone.value, phone.raw
    email_raw = item.field_value("EMAIL")
    if email_raw:
        email = normalize_email(email_raw)
        contact.email, contact.email_raw = email.value, email.raw
    contact.kommo_updated_at = item.version or contact.kommo_updated_at
    contact.save()
    linked = item.linked_lead_ids()
    if linked:
        Lead.objects.filter(kommo_lead_id__in=linked).update(contact=contact)
        for lead in Lead.objects.filter(kommo_lead_id__in=linked, phone="", email=""):
            lead.phone, lead.phone_raw = contact.phone, contact.phone_raw
            lead.email, lead.email_raw = contact.email, contact.email_raw
            lead.save(update_fields=["phone", "phone_raw", "email", "email_raw", "updated_at"])
    return contact, True


def contact_find_or_create(*, phone: str, email: str, name: str) -> Contact:
    """One contact per person: matched by E.164 phone, else by e-mail."""
    query = Q()
    if phone:
        query |= Q(phone=phone)
    if email:
        query |= Q(email=email)
    contact = Contact.objects.filter(query).order_by("pk").first() if query else None
    if contact is None:
        return Contact.objects.create(name=name, phone=phone, email=email)
    changed = []
    for field, value in (("name", name), ("phone", phone), ("email", email)):
        if value and not getattr(contact, field):
            setattr(contact, field, value)
            changed.append(field)
    if changed:
        contact.save(update_fields=[*changed, "updated_at"])
    return contact


def lead_create_from_intake(
    *, intake: LeadIntake, now: datetime | None = None
) -> tuple[Lead, bool]:
    """A form or RD Station conversion becomes a hub lead.

    The same person converting again within LEAD_MERGE_WINDOW_MINUTES (from any source) updates
    that lead instead of opening a second one. Returns (lead, created).
    """
    now = now or timezone.now()
    phone = normalize_phone(intake.phone)
    email = normalize_email(intake.email)
    contact = None
    if phone.value or email.value:
        contact = contact_find_or_create(phone=phone.value, email=email.value, name=intake.name)
    window_start = now - timedelta(minutes=settings.LEAD_MERGE_WINDOW_MINUTES)
    recent = (
        Lead.objects.select_for_update()
        .filter(contact=contact, created_at__gte=window_start)
        .order_by("-created_at")
        .first()
        if contact
        else None
    )
    fields = dict(intake.fields)
    if intake.message:
        fields["message"] = intake.message
    if intake.area:
        fields["area"] = intake.area
    if recent is not None:
        recent.utm = {**intake.utm, **recent.utm}
        recent.fields = {**fields, **recent.fields}
        recent.tags = sorted(set(recent.tags) | set(intake.tags))
        # What the first conversion lacked (e.g. RD gave only an e-mail) the later one fills in.
        filled: dict[str, str] = {"name": intake.name} if intake.name and not recent.name else {}
        if phone.value and not recent.phone:
            filled |= {"phone": phone.value, "phone_raw": phone.raw}
        if email.value and not recent.email:
            filled |= {"email": email.value, "email_raw": email.raw}
        for field, value in filled.items():
            setattr(recent, field, value)
        recent.save(update_fields=["utm", "fields", "tags", "updated_at", *filled])
        return recent, False
    lead = Lead.objects.create(
        contact=contact,
        name=intake.name,
        phone=phone.value,
        phone_raw=phone.raw,
        email=email.value,
        email_raw=email.raw,
        source=intake.source[:32],  # the column's length; a form may send any text
        source_identifier=intake.identifier[:255],
        utm=intake.utm,
        fields=fields,
        tags=intake.tags,
    )
    return lead, True


def conversation_upsert(
    *,
    chat_id: str,
    talk_id: int | None,
    kommo_lead_id: int | None,
    kommo_contact_id: int | None,
    origin: str | None,
    is_in_work: bool | None = None,
) -> Conversation:
    conversation, _ = Conversation.objects.select_for_update().get_or_create(chat_id=chat_id)
    if kommo_lead_id:
        lead, _ = Lead.objects.get_or_create(
            kommo_lead_id=kommo_lead_id, defaults={"source": "kommo"}
        )
        conversation.lead = lead
    for field, value in (
        ("talk_id", talk_id),
        ("kommo_contact_id", kommo_contact_id),
        ("origin", origin),
        ("is_in_work", is_in_work),
    ):
        if value is not None:
            setattr(conversation, field, value)
    conversation.save()
    return conversation


def message_author_kind(item: KommoMessage) -> str:
    """Who wrote it, as far as the webhook says (outgoing ones are told apart further by
    kommo_hub.flows.conversations)."""
    author_type = (item.author.type or "").lower()
    if (item.type or "").lower() == "incoming" or author_type == "external":
        return Message.AuthorKind.CUSTOMER
    if author_type == "bot":
        return Message.AuthorKind.BOT
    if author_type == "user":
        return Message.AuthorKind.SALESPERSON
    return Message.AuthorKind.UNKNOWN


def message_conversation(*, item: KommoMessage) -> Conversation:
    """The message's conversation, created if new and locked for this transaction."""
    return conversation_upsert(
        chat_id=item.chat_id,
        talk_id=item.talk_id,
        kommo_lead_id=item.lead_id,
        kommo_contact_id=item.contact_id,
        origin=item.origin,
    )


def message_record(
    *,
    item: KommoMessage,
    conversation: Conversation | None = None,
    author_kind: str | None = None,
    known_new: bool = False,
) -> tuple[Message, bool]:
    """Store a chat message on its conversation; returns (message, created).

    `known_new`: the caller checked that the message is not stored yet, holding the lock of its
    conversation (every message of a chat takes that lock first): a plain insert.
    """
    if conversation is None:
        conversation = message_conversation(item=item)
    kind = author_kind or message_author_kind(item)
    incoming = kind == Message.AuthorKind.CUSTOMER
    sent_at = kommo_datetime(item.created_at)
    attachment = item.attachment.model_dump(exclude_none=True) if item.attachment else {}
    values = {
        "conversation": conversation,
        "direction": Message.Direction.INCOMING if incoming else Message.Direction.OUTGOING,
        "author_kind": kind,
        "author_id": item.author.id or "",
        "author_name": item.author.name[:255],
        "message_type": item.message_type or "",
        "text": item.text,
        "attachment": attachment,
        "sent_at": sent_at,
    }
    if known_new:
        message, created = Message.objects.create(external_id=item.id, **values), True
    else:
        message, created = Message.objects.get_or_create(external_id=item.id, defaults=values)
    if (
        created
        and incoming
        and sent_at
        and (conversation.last_incoming_at is None or sent_at > conversation.last_incoming_at)
    ):
        conversation.last_incoming_at = sent_at
        conversation.save(update_fields=["last_incoming_at", "updated_at"])
    return message, created


def contact_for_kommo_id(*, kommo_contact_id: int, name: str = "", phone: str = "") -> Contact:
    """The hub's contact for a Kommo contact id (created with what a chat tells about it)."""
    normalized = normalize_phone(phone) if phone else None
    contact, _created = Contact.objects.get_or_create(
        kommo_contact_id=kommo_contact_id,
        defaults={
            "name": normalize_name(name) if name else "",
            "phone": normalized.value if normalized else "",
            "phone_raw": normalized.raw if normalized else "",
        },
    )
    return contact


def lead_open_for_contact(*, contact: Contact) -> Lead | None:
    """The contact's newest lead that is still open (not deleted, not won or lost)."""
    closed = (142, 143)  # Kommo's system stages in every pipeline: won, lost
    return (
        Lead.objects.filter(contact=contact, deleted_in_kommo=False)
        .filter(Q(kommo_status_id__isnull=True) | ~Q(kommo_status_id__in=closed))
        .order_by("-created_at", "-pk")
        .first()
    )


def lead_create_from_chat(*, contact: Contact | None, name: str, source: str) -> Lead:
    """A person who wrote first on a chat and is not a lead yet. Chat hooks carry no phone: the
    lead has the contact's (if the hub knows it), and the Kommo contact id through `contact`."""
    return Lead.objects.create(
        contact=contact,
        name=normalize_name(name) if name else (contact.name if contact else ""),
        phone=contact.phone if contact else "",
        phone_raw=contact.phone_raw if contact else "",
        source=source[:32],
    )


def talk_upsert(*, item: KommoTalk) -> Conversation | None:
    if not item.chat_id:
        return None
    lead_id = item.entity_id if (item.entity_type or "").lower() in {"lead", "leads"} else None
    return conversation_upsert(
        chat_id=item.chat_id,
        talk_id=item.talk_id,
        kommo_lead_id=lead_id,
        kommo_contact_id=item.contact_id,
        origin=item.origin,
        is_in_work=item.is_in_work,
    )


def note_record(*, item: KommoNote) -> tuple[LeadNote, bool]:
    lead = None
    if item.element_type in (None, "2") and item.element_id:
        lead, _ = Lead.objects.get_or_create(
            kommo_lead_id=item.element_id, defaults={"source": "kommo"}
        )
    return LeadNote.objects.get_or_create(
        kommo_note_id=item.id,
        defaults={
            "lead": lead,
            "kommo_lead_id": item.element_id if lead else None,
            "note_type": item.note_type or "",
            "text": item.text,
            "author_kommo_user_id": item.created_by,
            "written_at": kommo_datetime(item.created_at or item.date_create),
        },
    )


# Mirrored from Kommo: on a merge the hub lead keeps its own values and takes the mirror's where
# it has none.
_KOMMO_FIELDS = (
    "kommo_pipeline_id",
    "kommo_status_id",
    "kommo_responsible_user_id",
    "kommo_updated_at",
    "price",
)


def lead_attach_kommo_id(*, lead: Lead, kommo_lead_id: int, kommo_contact_id: int | None) -> Lead:
    """The hub created `lead` in Kommo: record its Kommo ids on the hub's rows.

    A webhook may have mirrored the new Kommo lead first (its own Lead row with that id): the
    hub lead is kept (it has the routing), the mirror's conversations, notes, actions and events
    move to it, and the mirror row is deleted. The contact is the hub Contact holding
    `kommo_contact_id` if there is one, else the lead's contact (created if the lead has none).
    Idempotent; returns the updated lead.
    """
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        if lead.kommo_lead_id not in (None, kommo_lead_id):
            raise ValueError(
                f"lead #{lead.pk} is already Kommo lead {lead.kommo_lead_id}, not {kommo_lead_id}"
            )
        mirror = (
            Lead.objects.select_for_update()
            .filter(kommo_lead_id=kommo_lead_id)
            .exclude(pk=lead.pk)
            .first()
        )
        if mirror is not None:
            _lead_absorb(keep=lead, mirror=mirror)
        lead.kommo_lead_id = kommo_lead_id
        if kommo_contact_id:
            lead.contact = _contact_with_kommo_id(lead=lead, kommo_contact_id=kommo_contact_id)
        lead.save()
    return lead


def _lead_absorb(*, keep: Lead, mirror: Lead) -> None:
    """Move everything that points at `mirror` to `keep`, fill `keep`'s gaps, delete `mirror`."""
    for field in _KOMMO_FIELDS:
        if getattr(keep, field) is None:
            setattr(keep, field, getattr(mirror, field))
    if not keep.name:
        keep.name = mirror.name
    keep.tags = sorted(set(keep.tags) | set(mirror.tags))
    keep.utm = {**mirror.utm, **keep.utm}
    keep.fields = {**mirror.fields, **keep.fields}
    keep.deleted_in_kommo = keep.deleted_in_kommo or mirror.deleted_in_kommo
    if keep.contact_id is None and mirror.contact_id is not None:
        keep.contact = mirror.contact
    # Conversations, notes, actions, events — and whatever other apps hang on a lead.
    for relation in Lead._meta.related_objects:
        if not (relation.one_to_many or relation.one_to_one):
            continue
        name = relation.field.name
        manager = relation.related_model._base_manager
        try:
            with transaction.atomic():
                moved = manager.filter(**{name: mirror}).update(**{name: keep})
        except IntegrityError:
            # e.g. both leads have a current routing decision: the hub lead's one stands.
            logger.warning(
                "lead merge: %s rows of lead #%s could not move to lead #%s",
                relation.related_model.__name__,
                mirror.pk,
                keep.pk,
            )
            continue
        if moved:
            logger.info(
                "lead merge: %d %s row(s) moved from lead #%s to lead #%s",
                moved,
                relation.related_model.__name__,
                mirror.pk,
                keep.pk,
            )
    mirror.delete()


def _contact_with_kommo_id(*, lead: Lead, kommo_contact_id: int) -> Contact:
    holder = Contact.objects.filter(kommo_contact_id=kommo_contact_id).first()
    current = lead.contact
    if holder is None and current is not None and current.kommo_contact_id is None:
        current.kommo_contact_id = kommo_contact_id
        current.save(update_fields=["kommo_contact_id", "updated_at"])
        return current
    source = current or Contact(name=lead.name, phone=lead.phone, email=lead.email)
    if holder is None:
        return Contact.objects.create(
            kommo_contact_id=kommo_contact_id,
            name=source.name or lead.name,
            phone=source.phone or lead.phone,
            phone_raw=source.phone_raw or lead.phone_raw,
            email=source.email or lead.email,
            email_raw=source.email_raw or lead.email_raw,
        )
    filled = []
    for field in ("name", "phone", "phone_raw", "email", "email_raw"):
        value = getattr(source, field) or getattr(lead, field)
        if value and not getattr(holder, field):
            setattr(holder, field, value)
            filled.append(field)
    if filled:
        holder.save(update_fields=[*filled, "updated_at"])
    return holder
