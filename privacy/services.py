"""LGPD erasure: anonymize (or delete) a lead's personal data, keeping every aggregate figure.

Anonymizing keeps each row and what the reports count (dates, directions, authors' kinds,
statuses, sources, areas, salespeople) and blanks what identifies the person: names, phones,
e-mails, free text, raw webhook bodies and headers, payloads sent or received. Deleting does the
same and then removes the rows no report reads (the contact, notes, Supabase interactions, the
lead's raw requests and events). Running either again changes nothing more.

Kommo and Supabase keep their own copies: the log lists their ids for the operator to erase
there (a later webhook or sync from them would otherwise bring the data back).
"""

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import Q, QuerySet

from botcontrol.models import BotChange, BotState
from kommo_hub.models import (
    ActionStatus,
    Alert,
    Contact,
    EventStatus,
    InboundEvent,
    InboundRequest,
    Lead,
    LeadNote,
    Message,
    OutboundAction,
)
from privacy.models import ErasureAction, ErasureLog, ErasureTrigger
from privacy.selectors import (
    TERMINAL_EVENTS,
    leads_due_for_retention,
    leads_with_last_activity,
    requests_due_for_clearing,
)
from routing.models import Assignment
from scheduling.models import Appointment, Interaction, Reminder

logger = logging.getLogger("kommo_hub.privacy")

REMOVED = "[removido]"
ERASED_RESULT = "erased under LGPD"
MIN_NEEDLE = 5  # shorter strings would match unrelated text
UNSENT = (ActionStatus.PENDING, ActionStatus.HELD, ActionStatus.FAILED)
WAITING_EVENTS = (EventStatus.RECEIVED, EventStatus.FAILED)
ACTION_BLANKS: dict[str, Any] = {"payload": {}, "result": {}, "last_response": ""}


def lead_pseudonym(lead_id: int) -> str:
    return f"Lead #{lead_id} (anonimizado)"


def contact_pseudonym(contact_id: int) -> str:
    return f"Contato #{contact_id} (anonimizado)"


@dataclass
class ErasureReport:
    lead_id: int
    action: str
    rows: dict[str, int] = field(default_factory=dict)
    external: dict[str, Any] = field(default_factory=dict)
    log_id: int | None = None

    @property
    def changed(self) -> bool:
        return any(self.rows.values())


@dataclass
class RetentionReport:
    cutoff: datetime
    leads: list[ErasureReport] = field(default_factory=list)
    skipped: int = 0  # became active again while waiting for its lock
    requests_cleared: int = 0


# --- Finding the person's strings -----------------------------------------------------------


def _needles(*people: Lead | Contact | None) -> list[str]:
    """The strings that identify the person, as stored and as senders encode them."""
    found: set[str] = set()
    for person in people:
        if person is None:
            continue
        for value in (person.name, person.phone, person.phone_raw, person.email, person.email_raw):
            value = (value or "").strip()
            if not value:
                continue
            found |= {value, quote_plus(value), quote(value)}
        if person.phone.startswith("+55"):
            found.add(person.phone[3:])  # national number, as forms and Kommo often send it
    pseudonyms = {lead_pseudonym(person.pk) for person in people if isinstance(person, Lead)}
    return sorted(
        (n for n in found if len(n) >= MIN_NEEDLE and n not in pseudonyms), key=len, reverse=True
    )


def _identifiers(needles: list[str]) -> list[str]:
    """Only phones and e-mails: names are too common to erase other rows by."""
    return [n for n in needles if "@" in n or "%40" in n or sum(c.isdigit() for c in n) >= 8]


def _any_contains(field_name: str, needles: Iterable[str]) -> Q:
    match = Q(pk__in=[])
    for needle in needles:
        match |= Q(**{f"{field_name}__icontains": needle})
    return match


def _redact(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(REMOVED, value)
    if isinstance(value, list):
        return [_redact(item, pattern) for item in value]
    if isinstance(value, dict):
        return {_redact(key, pattern): _redact(item, pattern) for key, item in value.items()}
    return value


# --- Writing --------------------------------------------------------------------------------


def _blank(queryset: QuerySet[Any], values: dict[str, Any]) -> int:
    """Set `values` on the rows where any of them differs; the number of rows changed."""
    ids = list(queryset.filter(_differs(values)).values_list("pk", flat=True))
    if ids:
        queryset.model.objects.filter(pk__in=ids).update(**values)
    return len(ids)


def _differs(values: dict[str, Any]) -> Q:
    differs = Q(pk__in=[])
    for name, value in values.items():
        differs |= Q(**{f"{name}__isnull": False}) if value is None else ~Q(**{name: value})
    return differs


def _has_text(*names: str) -> Q:
    has = Q(pk__in=[])
    for name in names:
        has |= ~Q(**{name: ""}) & ~Q(**{name: REMOVED})
    return has


def _replace_text(queryset: QuerySet[Any], names: Iterable[str]) -> int:
    """Free text becomes REMOVED (empty text stays empty)."""
    changed: set[int] = set()
    for name in names:
        ids = list(queryset.filter(_has_text(name)).values_list("pk", flat=True))
        if ids:
            queryset.model.objects.filter(pk__in=ids).update(**{name: REMOVED})
        changed |= set(ids)
    return len(changed)


def _redact_rows(
    queryset: QuerySet[Any], names: Iterable[str], pattern: re.Pattern[str] | None
) -> int:
    """Cut the person's strings out of text or JSON fields of rows that are not theirs alone."""
    if pattern is None:
        return 0
    changed = 0
    names = list(names)
    for row in queryset.only("pk", *names):
        updates = {}
        for name in names:
            value = getattr(row, name)
            redacted = _redact(value, pattern)
            if redacted != value:
                updates[name] = redacted
        if updates:
            queryset.model.objects.filter(pk=row.pk).update(**updates)
            changed += 1
    return changed


def _erase(lead: Lead) -> tuple[dict[str, int], dict[str, Any]]:
    contact = Contact.objects.filter(pk=lead.contact_id).first() if lead.contact_id else None
    needles = _needles(lead, contact)
    identifiers = _identifiers(needles)
    pattern = (
        re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE) if needles else None
    )
    external: dict[str, Any] = {
        "kommo_lead_id": lead.kommo_lead_id,
        "kommo_contact_id": contact.kommo_contact_id if contact else None,
        "supabase_appointments": [
            str(uid)
            for uid in Appointment.objects.filter(lead=lead, supabase_id__isnull=False)
            .order_by("pk")
            .values_list("supabase_id", flat=True)
        ],
        "supabase_interactions": [
            str(uid)
            for uid in Interaction.objects.filter(Q(lead=lead) | Q(appointment__lead=lead))
            .order_by("pk")
            .values_list("supabase_id", flat=True)
        ],
    }
    rows: dict[str, int] = {}
    rows["lead"] = _blank(
        Lead.objects.filter(pk=lead.pk),
        {
            "name": lead_pseudonym(lead.pk),
            "phone": "",
            "phone_raw": "",
            "email": "",
            "email_raw": "",
            "fields": {},
        },
    )
    rows["contact"] = (
        _blank(
            Contact.objects.filter(pk=contact.pk),
            {
                "name": contact_pseudonym(contact.pk),
                "phone": "",
                "phone_raw": "",
                "email": "",
                "email_raw": "",
            },
        )
        if contact
        else 0
    )

    conversations = lead.conversations.all()
    messages = Message.objects.filter(conversation__in=conversations)
    anonymous = [Message.AuthorKind.CUSTOMER, Message.AuthorKind.UNKNOWN]
    rows["message"] = messages.filter(
        _has_text("text") | ~Q(attachment={}) | (Q(author_kind__in=anonymous) & ~Q(author_name=""))
    ).count()
    _replace_text(messages, ["text"])
    _blank(messages, {"attachment": {}})
    _blank(messages.filter(author_kind__in=anonymous), {"author_name": ""})
    notes = LeadNote.objects.filter(
        Q(lead=lead) | Q(kommo_lead_id=lead.kommo_lead_id, kommo_lead_id__isnull=False)
    )
    rows["lead_note"] = _replace_text(notes, ["text"])
    rows["bot_state"] = _redact_rows(
        BotState.objects.filter(conversation__in=conversations), ["reason"], pattern
    )
    rows["bot_change"] = _redact_rows(
        BotChange.objects.filter(conversation__in=conversations), ["reason"], pattern
    )

    events = InboundEvent.objects.filter(
        Q(lead=lead) | _any_contains("payload", identifiers)
    ).exclude(status=EventStatus.PROCESSING)
    event_ids = list(events.values_list("pk", flat=True))
    requests = InboundRequest.objects.filter(
        Q(events__in=event_ids) | _any_contains("body", identifiers)
    ).distinct()
    rows["inbound_request"] = _blank(
        InboundRequest.objects.filter(pk__in=requests.values("pk")),
        {"body": "", "headers": {}, "remote_addr": None},
    )
    mine = InboundEvent.objects.filter(pk__in=event_ids)
    rows["inbound_event"] = mine.filter(
        ~Q(payload={}) | Q(status__in=WAITING_EVENTS) | _has_text("last_error")
    ).count()
    mine.filter(status__in=WAITING_EVENTS).update(
        status=EventStatus.IGNORED, result=ERASED_RESULT, next_attempt_at=None
    )
    _blank(mine, {"payload": {}})
    _replace_text(mine, ["last_error"])

    actions = OutboundAction.objects.filter(
        Q(lead=lead) | Q(conversation__in=conversations) | Q(source_event__in=event_ids)
    ).exclude(status=ActionStatus.DELIVERING)
    rows["outbound_action"] = actions.filter(
        Q(status__in=UNSENT) | _differs(ACTION_BLANKS) | _has_text("last_error")
    ).count()
    actions.filter(status__in=UNSENT).update(
        status=ActionStatus.SKIPPED, next_attempt_at=None, held_reason=""
    )
    _blank(actions, ACTION_BLANKS)
    _replace_text(actions, ["last_error"])

    appointments = Appointment.objects.filter(lead=lead)
    rows["appointment"] = _replace_text(appointments, ["title", "notes"])
    rows["reminder"] = _redact_rows(
        Reminder.objects.filter(appointment__in=appointments), ["detail"], pattern
    )
    interactions = Interaction.objects.filter(Q(lead=lead) | Q(appointment__in=appointments))
    rows["interaction"] = interactions.filter(_has_text("text") | ~Q(data={})).count()
    _replace_text(interactions, ["text"])
    _blank(interactions, {"data": {}})
    rows["assignment"] = _redact_rows(
        Assignment.objects.filter(lead=lead), ["explanation", "deciding_step"], pattern
    )
    rows["alert"] = _redact_rows(
        Alert.objects.filter(_any_contains("message", needles)), ["message"], pattern
    )
    rows["admin_log"] = _admin_log_erase(lead, contact)
    return rows, external


def _admin_log_erase(lead: Lead, contact: Contact | None) -> int:
    """The admin's history names each object by its str(): the person's name."""
    changed = 0
    targets: list[tuple[type[models.Model], int, str]] = [(Lead, lead.pk, lead_pseudonym(lead.pk))]
    if contact:
        targets.append((Contact, contact.pk, contact_pseudonym(contact.pk)))
    for model, pk, pseudonym in targets:
        changed += (
            LogEntry.objects.filter(
                content_type=ContentType.objects.get_for_model(model), object_id=str(pk)
            )
            .exclude(object_repr=pseudonym)
            .update(object_repr=pseudonym)
        )
    return changed


def _delete_rows(lead: Lead) -> dict[str, int]:
    """After anonymizing: remove the rows no report reads."""
    rows: dict[str, int] = {}
    rows["deleted_lead_note"] = LeadNote.objects.filter(
        Q(lead=lead) | Q(kommo_lead_id=lead.kommo_lead_id, kommo_lead_id__isnull=False)
    ).delete()[0]
    rows["deleted_interaction"] = Interaction.objects.filter(
        Q(lead=lead) | Q(appointment__lead=lead)
    ).delete()[0]
    events = InboundEvent.objects.filter(lead=lead).exclude(status=EventStatus.PROCESSING)
    request_ids = set(events.values_list("request_id", flat=True))
    rows["deleted_inbound_event"] = events.delete()[0]
    rows["deleted_inbound_request"] = InboundRequest.objects.filter(
        pk__in=request_ids, events__isnull=True
    ).delete()[0]
    rows["deleted_admin_log"] = 0
    targets: list[tuple[type[models.Model], int]] = [(Lead, lead.pk)]
    if lead.contact_id:
        targets.append((Contact, lead.contact_id))
    for model, pk in targets:
        rows["deleted_admin_log"] += LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id=str(pk)
        ).delete()[0]
    # Last: the leads that pointed to it keep their figures (their contact becomes empty).
    rows["deleted_contact"] = (
        Contact.objects.filter(pk=lead.contact_id).delete()[0] if lead.contact_id else 0
    )
    return rows


def _lead_erase(
    *,
    lead_id: int,
    action: str,
    reason: str,
    now: datetime,
    trigger: str,
    requested_by: str,
    dry_run: bool,
    retention_cutoff: datetime | None = None,
) -> ErasureReport | None:
    """One lead, in one transaction with the lead row locked (a worker handling it waits, or
    makes this wait). None: the retention period no longer applies (it became active)."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().filter(pk=lead_id).first()
        if lead is None:
            return ErasureReport(lead_id=lead_id, action=action)
        if (
            retention_cutoff is not None
            and not leads_due_for_retention(cutoff=retention_cutoff).filter(pk=lead_id).exists()
        ):
            return None
        rows, external = _erase(lead)
        if action == ErasureAction.DELETE:
            rows |= _delete_rows(lead)
        report = ErasureReport(lead_id=lead_id, action=action, rows=rows, external=external)
        if dry_run:
            transaction.set_rollback(True)
            return report
        if report.changed or trigger == ErasureTrigger.RETENTION:
            log = ErasureLog.objects.create(
                lead_id=lead_id,
                action=action,
                trigger=trigger,
                reason=reason[:255],
                requested_by=requested_by[:150],
                rows={name: n for name, n in rows.items() if n},
                external=external,
                erased_at=now,
            )
            report.log_id = log.pk
    logger.info("lead #%s %s under LGPD (%s)", lead_id, action, trigger)
    return report


def lead_anonymize(
    *,
    lead: Lead,
    reason: str,
    now: datetime,
    requested_by: str = "",
    trigger: str = ErasureTrigger.REQUEST,
    dry_run: bool = False,
) -> ErasureReport:
    """Blank the lead's personal data everywhere the hub keeps it; the rows and every figure
    the reports compute stay. Idempotent: a second run changes nothing and logs nothing."""
    report = _lead_erase(
        lead_id=lead.pk,
        action=ErasureAction.ANONYMIZE,
        reason=reason,
        now=now,
        trigger=trigger,
        requested_by=requested_by,
        dry_run=dry_run,
    )
    assert report is not None  # only the retention check answers None
    return report


def lead_delete(
    *, lead: Lead, reason: str, now: datetime, requested_by: str = "", dry_run: bool = False
) -> ErasureReport:
    """Anonymize, then delete the contact, notes, Supabase interactions and the lead's raw
    requests and events. The lead, its messages, actions, assignments and appointments stay
    (anonymized): the reports count them."""
    report = _lead_erase(
        lead_id=lead.pk,
        action=ErasureAction.DELETE,
        reason=reason,
        now=now,
        trigger=ErasureTrigger.REQUEST,
        requested_by=requested_by,
        dry_run=dry_run,
    )
    assert report is not None
    return report


def _chunks(ids: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def requests_clear(*, cutoff: datetime, dry_run: bool = False, batch: int = 500) -> int:
    """Old raw requests tied to no lead lose their body, headers and address; their finished
    events lose their payload. One transaction per chunk."""
    ids = list(requests_due_for_clearing(cutoff=cutoff).values_list("pk", flat=True))
    if dry_run:
        return len(ids)
    for chunk in _chunks(ids, batch):
        with transaction.atomic():
            InboundRequest.objects.filter(pk__in=chunk).update(
                body="", headers={}, remote_addr=None
            )
            events = InboundEvent.objects.filter(
                request__in=chunk, lead__isnull=True, status__in=TERMINAL_EVENTS
            )
            _blank(events, {"payload": {}})
            _replace_text(events, ["last_error"])
    return len(ids)


def retention_run(
    *, now: datetime, days: int, dry_run: bool = False, batch: int = 100
) -> RetentionReport:
    """Anonymize every lead without activity for `days` days (0: retention is off), then clear
    old raw requests tied to no lead. One transaction per chunk of leads."""
    report = RetentionReport(cutoff=now - timedelta(days=max(days, 0)))
    if days <= 0:
        return report
    ids = list(leads_due_for_retention(cutoff=report.cutoff).values_list("pk", flat=True))
    reason = f"no activity for {days} days"
    for chunk in _chunks(ids, batch):
        with transaction.atomic():
            for lead_id in chunk:
                erased = _lead_erase(
                    lead_id=lead_id,
                    action=ErasureAction.ANONYMIZE,
                    reason=reason,
                    now=now,
                    trigger=ErasureTrigger.RETENTION,
                    requested_by="",
                    dry_run=dry_run,
                    retention_cutoff=report.cutoff,
                )
                if erased is None:
                    report.skipped += 1
                else:
                    report.leads.append(erased)
    report.requests_cleared = requests_clear(cutoff=report.cutoff, dry_run=dry_run)
    return report


def last_activity(*, lead: Lead) -> datetime | None:
    return (
        leads_with_last_activity()
        .filter(pk=lead.pk)
        .values_list(*["last_activity"], flat=True)  # an annotation
        .first()
    )
