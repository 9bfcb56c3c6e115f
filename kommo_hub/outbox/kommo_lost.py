"""A create whose answer was lost: find what Kommo may have created before sending it again.

`POST /api/v4/leads/complex` is not idempotent (Kommo's duplicate control only runs for
integrations with an uploaded widget, ../shared/reference/kommo.md §3.2), so a create that timed
out, or got a gateway error, may have created the lead anyway; sending it again would make a
second one. lead_create marks the action before it sends and clears the mark when Kommo's answer
says nothing was created. A retry that finds the mark first reads the person's contacts with
their leads (`GET /api/v4/contacts?query=…&with=leads`, or the known contact by id) and adopts a
lead created since the mark with the same name and pipeline. It needs a phone, an e-mail or a
known contact to look; without one it sends again. Notes (`POST /api/v4/leads/notes`) are looked
for the same way among the lead's newest common notes, by their text.
"""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from kommo_hub.clients.http import HttpResult
from kommo_hub.clients.kommo import CONTACTS_PATH, kommo_request

LEADS_PATH = "/api/v4/leads"
# Kommo's clock and ours may disagree: a lead stamped this much before the mark still counts.
CLOCK_SKEW_SECONDS = 300
# Only the newest leads of the person are read: the one the lost create made is among them.
LEADS_READ_AT_MOST = 5
NOTES_READ_AT_MOST = 50
# Errors raised before the request left the hub: Kommo cannot have created anything.
_NOT_SENT = ("ConnectError", "ConnectTimeout", "PoolTimeout", "local rate limit")


def create_may_have_happened(result: HttpResult) -> bool:
    """Whether Kommo may have created the lead although the answer does not say so."""
    if result.status_code is None:
        return not result.error.startswith(_NOT_SENT)
    if 200 <= result.status_code < 300:  # a success whose body could not be read
        return True
    return result.status_code in (500, 502, 504)  # 429, 503 and other 4xx: refused


@dataclass(frozen=True)
class Found:
    kommo_lead_id: int
    kommo_contact_id: int | None


def lead_created_find(
    *, body: dict[str, Any], contact_id: int | None, phone: str, email: str, since: float
) -> tuple[Found | None, HttpResult | None]:
    """(the lead the lost create made, None), (None, None) when there is none, or (None, the
    failed Kommo result) when Kommo could not be read: then nothing may be sent yet."""
    contacts, failed = _contacts_with_leads(contact_id=contact_id, phone=phone, email=email)
    if failed is not None:
        return None, failed
    if contacts is None:  # nothing to look with
        return None, None
    owners: dict[int, int] = {}
    for contact in contacts:
        for lead in (contact.get("_embedded") or {}).get("leads") or []:
            if isinstance(lead, dict) and _is_id(lead.get("id")):
                owners.setdefault(int(lead["id"]), int(contact["id"]))
    for lead_id in sorted(owners, reverse=True)[:LEADS_READ_AT_MOST]:
        result = kommo_request(method="GET", path=f"{LEADS_PATH}/{lead_id}")
        if result.status_code in (204, 404):  # deleted meanwhile
            continue
        if not result.ok:
            return None, result
        if _same_lead(result.json(), body=body, since=since):
            return Found(kommo_lead_id=lead_id, kommo_contact_id=owners[lead_id]), None
    return None, None


def _contacts_with_leads(
    *, contact_id: int | None, phone: str, email: str
) -> tuple[list[dict[str, Any]] | None, HttpResult | None]:
    if contact_id:
        result = kommo_request(
            method="GET", path=f"{CONTACTS_PATH}/{contact_id}?{urlencode({'with': 'leads'})}"
        )
        if result.status_code in (204, 404):
            return [], None
        if not result.ok:
            return None, result
        contact = result.json()
        return ([contact] if isinstance(contact, dict) and _is_id(contact.get("id")) else []), None
    queries = [q for q in (phone.lstrip("+"), email) if q]
    if not queries:
        return None, None
    found: list[dict[str, Any]] = []
    for query in queries:
        path = f"{CONTACTS_PATH}?{urlencode({'query': query, 'with': 'leads'})}"
        result = kommo_request(method="GET", path=path)
        if result.status_code == 204:
            continue
        if not result.ok:
            return None, result
        page = result.json()
        contacts = (page.get("_embedded") or {}).get("contacts") if isinstance(page, dict) else []
        found += [c for c in contacts or [] if isinstance(c, dict) and _is_id(c.get("id"))]
    return found, None


def _same_lead(lead: Any, *, body: dict[str, Any], since: float) -> bool:
    if not isinstance(lead, dict):
        return False
    created_at = lead.get("created_at")
    if not isinstance(created_at, int | float) or created_at < since - CLOCK_SKEW_SECONDS:
        return False
    if lead.get("name") != body.get("name"):
        return False
    pipeline = body.get("pipeline_id")
    return pipeline is None or lead.get("pipeline_id") == pipeline


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def note_created_find(
    *, kommo_lead_id: int, text: str, since: float
) -> tuple[int | None, HttpResult | None]:
    """(the id of the note a lost POST made, None), (None, None) when there is none, or (None,
    the failed result) while Kommo cannot be read. A lookup Kommo refuses as a bad request says
    nothing was found: a note twice is better than a note never written."""
    query = urlencode(
        {"filter[note_type]": "common", "order[id]": "desc", "limit": NOTES_READ_AT_MOST}
    )
    result = kommo_request(method="GET", path=f"{LEADS_PATH}/{kommo_lead_id}/notes?{query}")
    if result.status_code in (204, 400, 404, 422):
        return None, None
    if not result.ok:
        return None, result
    page = result.json()
    notes = (page.get("_embedded") or {}).get("notes") if isinstance(page, dict) else None
    for note in notes or []:
        if not isinstance(note, dict) or not _is_id(note.get("id")):
            continue
        created_at = note.get("created_at")
        if not isinstance(created_at, int | float) or created_at < since - CLOCK_SKEW_SECONDS:
            continue
        if (note.get("params") or {}).get("text") == text:
            return int(note["id"]), None
    return None, None
