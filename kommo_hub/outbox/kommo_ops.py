"""Kommo operations: outbox writes whose requests are built when they are sent.

A plain Kommo action carries `{"method", "path", "json"}` and is sent as stored. An operation
(`{"operation": "lead_create" | "lead_update" | "note_add" | "task_add", ...}`) reads the hub's
rows at send time, makes one or more calls through `kommo_request` (so the shared rate limit
applies), and returns a `Sent`: the HTTP result delivery classifies (the last call's, or the
first failure), plus what to record in the database. `on_done` runs inside delivery's DONE
transaction, so the results and the DONE status commit together.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kommo_hub.clients.http import HttpResult
from kommo_hub.clients.kommo import CONTACTS_PATH, kommo_request
from kommo_hub.crm.services import lead_attach_kommo_id
from kommo_hub.intake.normalize import normalize_phone
from kommo_hub.models import ActionStatus, Lead, LeadNote, OutboundAction
from kommo_hub.outbox.kommo_lost import (
    create_may_have_happened,
    lead_created_find,
    note_created_find,
)
from kommo_hub.outbox.services import (
    LEAD_CREATE,
    LEAD_UPDATE,
    NOTE_ADD,
    TASK_ADD,
    actions_requeue,
)

logger = logging.getLogger("kommo_hub.outbox")

LEAD_NOT_IN_KOMMO = "waiting for the lead to exist in Kommo"
COMPLEX_PATH = "/api/v4/leads/complex"
NOTES_PATH = "/api/v4/leads/notes"
TASKS_PATH = "/api/v4/tasks"
# On a lead_create's or note_add's state while its POST may have reached Kommo unanswered
# (kommo_lost.py).
CREATE_SENT_AT = "create_sent_at"
# Lead fields a write may set, and the hub's mirror of each.
MIRRORED = {
    "responsible_user_id": "kommo_responsible_user_id",
    "pipeline_id": "kommo_pipeline_id",
    "status_id": "kommo_status_id",
}


@dataclass(frozen=True)
class Sent:
    """What sending an action produced.

    `failure`: "" (classify `result` by its status), "retry" or "dead" (whatever the status).
    `hold`: hold the action with this reason, without using an attempt; nothing was sent.
    """

    result: HttpResult
    on_done: Callable[[], None] | None = None
    hold: str = ""
    failure: str = ""


def operation_send(action: OutboundAction) -> Sent:
    operation = action.payload.get("operation")
    handler = OPERATIONS.get(str(operation))
    if handler is None:
        return _dead(f"unknown Kommo operation {operation!r}")
    lead = Lead.objects.select_related("contact").filter(pk=action.payload.get("lead_id")).first()
    if lead is None:
        return _dead(f"lead #{action.payload.get('lead_id')} no longer exists")
    return handler(action, lead)


def _dead(error: str) -> Sent:
    return Sent(HttpResult(status_code=None, error=error), failure="dead")


def _unreadable(result: HttpResult, what: str) -> Sent:
    error = f"Kommo answered {result.status_code} but {what} could not be read from the body"
    return Sent(
        HttpResult(status_code=result.status_code, excerpt=result.excerpt, error=error),
        failure="retry",
    )


def _save_state(action: OutboundAction, **values: Any) -> None:
    """Remember what a retry must not do again; committed at once, apart from the outcome."""
    state = {**(action.payload.get("state") or {}), **values}
    action.payload = {**action.payload, "state": state}
    OutboundAction.objects.filter(pk=action.pk).update(payload=action.payload)


def _forget_state(action: OutboundAction, name: str) -> None:
    state = {k: v for k, v in (action.payload.get("state") or {}).items() if k != name}
    action.payload = {**action.payload, "state": state}
    OutboundAction.objects.filter(pk=action.pk).update(payload=action.payload)


def _release_lead_waiters(lead_id: int) -> None:
    """Writes that were held because the lead had no Kommo id yet go out now."""
    actions_requeue(
        actions=OutboundAction.objects.filter(
            lead_id=lead_id, status=ActionStatus.HELD, held_reason=LEAD_NOT_IN_KOMMO
        ),
        reset_attempts=False,
    )


# --- lead_create ---------------------------------------------------------------------------------


def _person(lead: Lead) -> tuple[str, str, str]:
    contact = lead.contact
    name = lead.name or (contact.name if contact else "")
    phone = lead.phone or (contact.phone if contact else "")
    email = lead.email or (contact.email if contact else "")
    return name, phone, email


def _contact_matching(body: Any, *, phone: str, email: str) -> int | None:
    """The first contact whose phone (normalized) or e-mail is the lead's: `query` is full-text,
    so a hit on part of a number or address is not the same person."""
    if not isinstance(body, dict):
        return None
    contacts = (body.get("_embedded") or {}).get("contacts") or []
    for contact in contacts:
        if not isinstance(contact, dict) or not isinstance(contact.get("id"), int):
            continue
        for field in contact.get("custom_fields_values") or []:
            code = str(field.get("field_code") or "").upper()
            for item in field.get("values") or []:
                value = str(item.get("value") or "").strip()
                if code == "PHONE" and phone and normalize_phone(value).value == phone:
                    return int(contact["id"])
                if code == "EMAIL" and email and value.lower() == email.lower():
                    return int(contact["id"])
    return None


def _contact_search(lead: Lead) -> tuple[int | None, HttpResult | None]:
    """(Kommo contact id or None, None), or (None, the failed result)."""
    _name, phone, email = _person(lead)
    queries = [q for q in (phone.lstrip("+"), email) if q]
    for query in queries:
        result = kommo_request(method="GET", path=f"{CONTACTS_PATH}?{urlencode({'query': query})}")
        if result.status_code == 204:  # nothing found
            continue
        if not result.ok:
            return None, result
        body = result.json()
        if not isinstance(body, dict):
            error = f"Kommo answered {result.status_code} to the contact search with no JSON"
            return None, HttpResult(
                status_code=result.status_code, excerpt=result.excerpt, error=error
            )
        found = _contact_matching(body, phone=phone, email=email)
        if found is not None:
            return found, None
    return None, None


def _new_contact(lead: Lead) -> dict[str, Any]:
    name, phone, email = _person(lead)
    contact: dict[str, Any] = {}
    if name:
        contact["name"] = name
    fields = []
    if phone:
        fields.append({"field_code": "PHONE", "values": [{"value": phone, "enum_code": "MOB"}]})
    if email:
        fields.append({"field_code": "EMAIL", "values": [{"value": email, "enum_code": "WORK"}]})
    if fields:
        contact["custom_fields_values"] = fields
    return contact


def _lead_body(action: OutboundAction, lead: Lead, contact_id: int | None) -> dict[str, Any]:
    payload = action.payload
    name, phone, email = _person(lead)
    body: dict[str, Any] = {"name": name or f"Lead {phone or email or f'#{lead.pk}'}"}
    for field in ("responsible_user_id", "pipeline_id", "status_id"):
        if payload.get(field) is not None:
            body[field] = payload[field]
    embedded: dict[str, Any] = {}
    if payload.get("tags"):
        embedded["tags"] = [{"name": tag} for tag in payload["tags"]]
    contact = {"id": contact_id} if contact_id else _new_contact(lead)
    if contact:  # nothing known about the person: no empty contact in Kommo
        embedded["contacts"] = [contact]
    body["_embedded"] = embedded
    body["request_id"] = f"hub-lead-{lead.pk}"
    return body


def _created(body: Any) -> dict[str, Any] | None:
    """The created lead from a leads/complex answer: a plain array, or `_embedded.leads`."""
    if isinstance(body, dict):
        body = (body.get("_embedded") or {}).get("leads")
    if not isinstance(body, list) or not body or not isinstance(body[0], dict):
        return None
    first = body[0]
    if not isinstance(first.get("id"), int) or isinstance(first.get("id"), bool):
        return None
    return first


def lead_create(action: OutboundAction, lead: Lead) -> Sent:
    payload = action.payload
    if lead.kommo_lead_id:
        return Sent(
            HttpResult(status_code=200, excerpt=f"already in Kommo as {lead.kommo_lead_id}"),
            on_done=lambda: _release_lead_waiters(lead.pk),
        )
    state = payload.get("state") or {}
    if state.get("kommo_lead_id"):  # created on an earlier attempt whose outcome was not saved
        kommo_lead_id = int(state["kommo_lead_id"])
        result = HttpResult(status_code=200, excerpt=f"created in Kommo as {kommo_lead_id}")
        return Sent(result, on_done=_lead_created(action, lead, state))
    if "contact_id" in state:
        contact_id = state["contact_id"]
    elif lead.contact is not None and lead.contact.kommo_contact_id:
        contact_id = lead.contact.kommo_contact_id
    else:
        contact_id, failed = _contact_search(lead)
        if failed is not None:
            return Sent(failed)
        _save_state(action, contact_id=contact_id)
    body = _lead_body(action, lead, contact_id)
    if state.get(CREATE_SENT_AT) is not None:  # an earlier create's answer was lost
        _name, phone, email = _person(lead)
        found, failed = lead_created_find(
            body=body, contact_id=contact_id, phone=phone, email=email, since=state[CREATE_SENT_AT]
        )
        if failed is not None:
            return Sent(failed)
        if found is not None:
            state = {
                "contact_id": contact_id,
                "kommo_lead_id": found.kommo_lead_id,
                "kommo_contact_id": found.kommo_contact_id or contact_id,
            }
            _save_state(action, **state)
            _forget_state(action, CREATE_SENT_AT)
            result = HttpResult(
                status_code=200,
                excerpt=f"found in Kommo as {found.kommo_lead_id}, created by an attempt whose "
                "answer was lost",
            )
            return Sent(result, on_done=_lead_created(action, lead, state))
    _save_state(action, **{CREATE_SENT_AT: time.time()})
    result = kommo_request(method="POST", path=COMPLEX_PATH, json=[body])
    if not result.ok:
        if not create_may_have_happened(result):
            _forget_state(action, CREATE_SENT_AT)
        return Sent(result)
    created = _created(result.json())
    if created is None:
        return _unreadable(result, "the created lead")
    new_contact = created.get("contact_id")
    state = {
        "contact_id": contact_id,
        "kommo_lead_id": created["id"],
        "kommo_contact_id": new_contact if isinstance(new_contact, int) else contact_id,
    }
    _save_state(action, **state)
    _forget_state(action, CREATE_SENT_AT)
    return Sent(result, on_done=_lead_created(action, lead, state))


def _lead_created(action: OutboundAction, lead: Lead, state: dict[str, Any]) -> Callable[[], None]:
    payload = action.payload

    def record() -> None:
        attached = lead_attach_kommo_id(
            lead=lead,
            kommo_lead_id=int(state["kommo_lead_id"]),
            kommo_contact_id=state.get("kommo_contact_id"),
        )
        for field, mirror in MIRRORED.items():
            if payload.get(field) is not None:
                setattr(attached, mirror, payload[field])
        attached.tags = list(dict.fromkeys([*attached.tags, *map(str, payload.get("tags") or [])]))
        attached.save()
        _release_lead_waiters(attached.pk)

    return record


# --- lead_update and note_add ----------------------------------------------------------------


def lead_update(action: OutboundAction, lead: Lead) -> Sent:
    if not lead.kommo_lead_id:
        return Sent(HttpResult(status_code=None), hold=LEAD_NOT_IN_KOMMO)
    body = {**action.payload.get("body", {}), "updated_by": 0}
    result = kommo_request(method="PATCH", path=f"/api/v4/leads/{lead.kommo_lead_id}", json=body)
    if not result.ok:
        return Sent(result)

    def record() -> None:
        row = Lead.objects.select_for_update().get(pk=lead.pk)
        changed = []
        for field, mirror in MIRRORED.items():
            if body.get(field) is not None:
                setattr(row, mirror, body[field])
                changed.append(mirror)
        names = _tag_names(body.get("tags_to_add"))
        removed = set(_tag_names(body.get("tags_to_delete")))
        if names or removed:
            row.tags = [t for t in dict.fromkeys([*row.tags, *names]) if t not in removed]
            changed.append("tags")
        if changed:
            row.save(update_fields=[*changed, "updated_at"])

    return Sent(result, on_done=record)


def _tag_names(tags: Any) -> list[str]:
    if not isinstance(tags, list):
        return []
    return [str(t["name"]) for t in tags if isinstance(t, dict) and t.get("name")]


def note_add(action: OutboundAction, lead: Lead) -> Sent:
    if not lead.kommo_lead_id:
        return Sent(HttpResult(status_code=None), hold=LEAD_NOT_IN_KOMMO)
    kommo_lead_id = lead.kommo_lead_id
    text = str(action.payload.get("text") or "")
    since = (action.payload.get("state") or {}).get(CREATE_SENT_AT)
    if since is not None:  # an earlier POST's answer was lost
        found, failed = note_created_find(kommo_lead_id=kommo_lead_id, text=text, since=since)
        if failed is not None:
            return Sent(failed)
        if found is not None:
            _forget_state(action, CREATE_SENT_AT)
            result = HttpResult(
                status_code=200,
                excerpt=f"found in Kommo as note {found}, written by an attempt whose answer "
                "was lost",
            )
            return Sent(result, on_done=_note_recorded(lead, kommo_lead_id, text, found))
    note = {
        "entity_id": kommo_lead_id,
        "note_type": "common",
        "params": {"text": text},
        "request_id": action.idempotency_key,
    }
    _save_state(action, **{CREATE_SENT_AT: time.time()})
    result = kommo_request(method="POST", path=NOTES_PATH, json=[note])
    if not result.ok:
        if not create_may_have_happened(result):
            _forget_state(action, CREATE_SENT_AT)
        return Sent(result)
    _forget_state(action, CREATE_SENT_AT)
    body = result.json()
    notes = (body.get("_embedded") or {}).get("notes") if isinstance(body, dict) else None
    first = notes[0] if isinstance(notes, list) and notes else None
    note_id = first.get("id") if isinstance(first, dict) else None
    return Sent(result, on_done=_note_recorded(lead, kommo_lead_id, text, note_id))


def _note_recorded(lead: Lead, kommo_lead_id: int, text: str, note_id: Any) -> Callable[[], None]:
    def record() -> None:
        # Known by its Kommo id, the note's own webhook echo is not recorded twice.
        if isinstance(note_id, int):
            LeadNote.objects.get_or_create(
                kommo_note_id=note_id,
                defaults={
                    "lead": lead,
                    "kommo_lead_id": kommo_lead_id,
                    "note_type": "common",
                    "text": text,
                },
            )

    return record


def task_add(action: OutboundAction, lead: Lead) -> Sent:
    """A task for the salesperson on the lead (kommo.md §3.5); Kommo dedupes nothing, so the
    idempotency key goes along as `request_id` for whoever reads the task later."""
    if not lead.kommo_lead_id:
        return Sent(HttpResult(status_code=None), hold=LEAD_NOT_IN_KOMMO)
    payload = action.payload
    task: dict[str, Any] = {
        "text": str(payload.get("text") or ""),
        "complete_till": int(payload["complete_till"]),
        "entity_id": lead.kommo_lead_id,
        "entity_type": "leads",
        "task_type_id": int(payload.get("task_type_id") or 1),
        "request_id": action.idempotency_key,
    }
    if payload.get("responsible_user_id"):
        task["responsible_user_id"] = int(payload["responsible_user_id"])
    return Sent(kommo_request(method="POST", path=TASKS_PATH, json=[task]))


OPERATIONS: dict[str, Callable[[OutboundAction, Lead], Sent]] = {
    LEAD_CREATE: lead_create,
    LEAD_UPDATE: lead_update,
    NOTE_ADD: note_add,
    TASK_ADD: task_add,
}
