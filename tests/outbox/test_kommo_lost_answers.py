"""A lead create or a note whose answer was lost (a timeout, a gateway error) is looked for in
Kommo before it is sent again, so neither is created twice (kommo_hub/outbox/kommo_lost.py).
Kommo is answered at the HTTP boundary only, in its documented formats."""

import json
import time
from typing import Any

import httpx
import pytest
import respx

from kommo_hub.models import ActionStatus, Lead, LeadNote
from kommo_hub.outbox.kommo_ops import CREATE_SENT_AT
from kommo_hub.outbox.services import kommo_note_add
from tests.outbox.support import KOMMO_API, committed
from tests.outbox.test_kommo_operations import (
    COMPLEX,
    CONTACTS,
    KOMMO_CONTACT,
    KOMMO_LEAD,
    PIPELINE,
    STAGE,
    complex_body,
    complex_created,
    contacts_found,
    create_in_kommo,
    kommo_contact,
    make_due,
    make_lead,
    new_contact_body,
    sent,
    sweep,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("kommo_on")]

PHONE = "+5511987654321"
LEADS = f"{KOMMO_API}/api/v4/leads"


def kommo_lead(lead_id: int, *, name: str = "Maria Souza", created_at: float | None = None) -> Any:
    """GET /api/v4/leads/{id} (kommo.md §3.2)."""
    return {
        "id": lead_id,
        "name": name,
        "price": 0,
        "responsible_user_id": 9876543,
        "status_id": STAGE,
        "pipeline_id": PIPELINE,
        "created_at": int(created_at if created_at is not None else time.time()),
        "updated_at": int(time.time()),
        "is_deleted": False,
        "_embedded": {"tags": [], "companies": []},
    }


def with_leads(contact: dict[str, Any], *lead_ids: int) -> dict[str, Any]:
    return {**contact, "_embedded": {"leads": [{"id": i} for i in lead_ids]}}


def retry(action: Any) -> None:
    make_due(action)
    assert sweep() == 1
    action.refresh_from_db()


def lost_first_create(http_mock: respx.MockRouter, lead: Lead, **answer: Any) -> respx.Route:
    """The first create goes out and its answer is lost; a second one would succeed."""
    lost = httpx.Response(**answer) if answer else httpx.ReadTimeout("read")
    create = http_mock.post(COMPLEX)
    create.side_effect = [lost, complex_created(lead)]
    return create


def test_a_create_that_timed_out_is_found_in_kommo_and_never_sent_again(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    search = http_mock.get(CONTACTS)
    search.side_effect = [
        httpx.Response(204),  # before the first create: nobody with this phone,
        httpx.Response(204),  # nor this e-mail
        # the retry looks again: the lost create made the contact and its lead
        contacts_found(with_leads(kommo_contact(KOMMO_CONTACT, phone=PHONE), KOMMO_LEAD)),
        httpx.Response(204),
    ]
    create = lost_first_create(http_mock, lead)
    read = http_mock.get(f"{LEADS}/{KOMMO_LEAD}").respond(200, json=kommo_lead(KOMMO_LEAD))

    action = create_in_kommo(lead)

    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, None)
    assert CREATE_SENT_AT in action.payload["state"]

    retry(action)

    assert create.call_count == 1
    assert read.call_count == 1
    assert sent(http_mock.calls)[3:] == [
        ("GET", "/api/v4/contacts", {"query": "5511987654321", "with": "leads"}, None),
        ("GET", "/api/v4/contacts", {"query": "maria.souza@example.com", "with": "leads"}, None),
        ("GET", f"/api/v4/leads/{KOMMO_LEAD}", {}, None),
    ]
    assert (action.status, action.attempts) == (ActionStatus.DONE, 2)
    assert action.last_response == (
        f"found in Kommo as {KOMMO_LEAD}, created by an attempt whose answer was lost"
    )
    assert action.payload["state"] == {
        "contact_id": None,
        "kommo_lead_id": KOMMO_LEAD,
        "kommo_contact_id": KOMMO_CONTACT,
    }
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD
    assert lead.contact is not None
    assert lead.contact.kommo_contact_id == KOMMO_CONTACT


def test_a_gateway_timeout_on_a_known_contact_is_looked_up_by_the_contact_id(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).mock(
        return_value=contacts_found(kommo_contact(KOMMO_CONTACT, phone=PHONE))
    )
    create = lost_first_create(http_mock, lead, status_code=504, text="Gateway Time-out")
    contact = http_mock.get(f"{CONTACTS}/{KOMMO_CONTACT}").respond(
        200, json=with_leads(kommo_contact(KOMMO_CONTACT, phone=PHONE), 100, KOMMO_LEAD)
    )
    http_mock.get(f"{LEADS}/{KOMMO_LEAD}").respond(200, json=kommo_lead(KOMMO_LEAD))

    action = create_in_kommo(lead)
    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, 504)
    retry(action)

    assert create.call_count == 1
    assert dict(contact.calls.last.request.url.params) == {"with": "leads"}
    assert action.status == ActionStatus.DONE
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD


def test_a_lost_create_that_made_nothing_is_sent_again_once(http_mock: respx.MockRouter) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).mock(
        return_value=contacts_found(kommo_contact(KOMMO_CONTACT, phone=PHONE))
    )
    create = lost_first_create(http_mock, lead, status_code=502, text="Bad Gateway")
    http_mock.get(f"{CONTACTS}/{KOMMO_CONTACT}").respond(
        200, json=with_leads(kommo_contact(KOMMO_CONTACT, phone=PHONE), 100, 101, 102)
    )
    # The person's other leads: one from last year, one named otherwise, one in another pipeline.
    http_mock.get(f"{LEADS}/102").respond(
        200, json=kommo_lead(102, created_at=time.time() - 365 * 86400)
    )
    http_mock.get(f"{LEADS}/101").respond(200, json=kommo_lead(101, name="Maria - indicação"))
    http_mock.get(f"{LEADS}/100").respond(200, json={**kommo_lead(100), "pipeline_id": 1})

    action = create_in_kommo(lead)
    retry(action)

    assert create.call_count == 2
    assert json.loads(create.calls.last.request.content) == complex_body(
        lead, {"id": KOMMO_CONTACT}
    )
    assert action.status == ActionStatus.DONE
    assert CREATE_SENT_AT not in action.payload["state"]
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD


def test_while_kommo_cannot_be_read_a_lost_create_is_not_sent_again(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).mock(
        return_value=contacts_found(kommo_contact(KOMMO_CONTACT, phone=PHONE))
    )
    create = lost_first_create(http_mock, lead)
    http_mock.get(f"{CONTACTS}/{KOMMO_CONTACT}").respond(502, text="Bad Gateway")

    action = create_in_kommo(lead)
    retry(action)

    assert create.call_count == 1
    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, 502)
    assert CREATE_SENT_AT in action.payload["state"]
    lead.refresh_from_db()
    assert lead.kommo_lead_id is None


@pytest.mark.parametrize(
    "refusal",
    [
        httpx.Response(429, json={"title": "Too Many Requests"}),
        httpx.Response(503, text="Service Unavailable"),
        httpx.ConnectError("refused"),
    ],
    ids=["429", "503", "connect-error"],
)
def test_a_create_kommo_refused_or_never_got_is_sent_again_without_looking(
    http_mock: respx.MockRouter, refusal: Any
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).respond(204)
    create = http_mock.post(COMPLEX)
    create.side_effect = [refusal, complex_created(lead)]

    action = create_in_kommo(lead)
    assert action.payload["state"] == {"contact_id": None}
    retry(action)

    assert create.call_count == 2
    assert [m for m, *_ in sent(http_mock.calls)] == ["GET", "GET", "POST", "POST"]
    assert json.loads(create.calls.last.request.content) == complex_body(lead, new_contact_body())
    assert action.status == ActionStatus.DONE


def test_a_lead_with_nothing_to_look_by_is_sent_again(http_mock: respx.MockRouter) -> None:
    lead = make_lead(phone="", email="")
    lead.contact.phone = lead.contact.email = ""
    lead.contact.save()
    create = lost_first_create(http_mock, lead)

    action = create_in_kommo(lead)
    retry(action)

    assert create.call_count == 2
    assert [m for m, *_ in sent(http_mock.calls)] == ["POST", "POST"]
    assert action.status == ActionStatus.DONE


# --- notes --------------------------------------------------------------------------------------

NOTES = f"{KOMMO_API}/api/v4/leads/notes"
LEAD_NOTES = f"{KOMMO_API}/api/v4/leads/{KOMMO_LEAD}/notes"
TEXT = "Kommo Hub: lead atribuído a Ana."


def kommo_note(note_id: int, text: str, *, created_at: float | None = None) -> dict[str, Any]:
    return {
        "id": note_id,
        "entity_id": KOMMO_LEAD,
        "created_by": 0,
        "created_at": int(created_at if created_at is not None else time.time()),
        "note_type": "common",
        "params": {"text": text},
    }


def note_posted(note_id: int) -> httpx.Response:
    return httpx.Response(
        200, json={"_embedded": {"notes": [{"id": note_id, "entity_id": KOMMO_LEAD}]}}
    )


def add_note() -> Any:
    with committed():
        action, _ = kommo_note_add(
            lead=Lead.objects.get(kommo_lead_id=KOMMO_LEAD), text=TEXT, idempotency_key="note:7"
        )
    action.refresh_from_db()
    return action


def test_a_note_whose_answer_was_lost_is_found_among_the_leads_notes_and_not_written_twice(
    http_mock: respx.MockRouter,
) -> None:
    make_lead(kommo_lead_id=KOMMO_LEAD)
    post = http_mock.post(NOTES)
    post.side_effect = [httpx.ReadTimeout("read"), note_posted(555)]
    listed = http_mock.get(LEAD_NOTES).respond(
        200,
        json={
            "_embedded": {
                "notes": [
                    kommo_note(556, "Outra nota"),
                    kommo_note(555, TEXT),
                    kommo_note(401, TEXT, created_at=time.time() - 86400),
                ]
            }
        },
    )

    action = add_note()
    assert (action.status, CREATE_SENT_AT in action.payload["state"]) == (ActionStatus.FAILED, True)
    retry(action)

    assert post.call_count == 1
    assert dict(listed.calls.last.request.url.params) == {
        "filter[note_type]": "common",
        "order[id]": "desc",
        "limit": "50",
    }
    assert action.status == ActionStatus.DONE
    assert action.last_response == (
        "found in Kommo as note 555, written by an attempt whose answer was lost"
    )
    assert action.payload["state"] == {}
    assert list(LeadNote.objects.values_list("kommo_note_id", "text")) == [(555, TEXT)]


@pytest.mark.parametrize("listing", [httpx.Response(204), httpx.Response(400, json={})])
def test_a_lost_note_not_found_or_not_listable_is_written_again(
    http_mock: respx.MockRouter, listing: httpx.Response
) -> None:
    make_lead(kommo_lead_id=KOMMO_LEAD)
    post = http_mock.post(NOTES)
    post.side_effect = [httpx.Response(502, text="Bad Gateway"), note_posted(557)]
    http_mock.get(LEAD_NOTES).mock(return_value=listing)

    action = add_note()
    retry(action)

    assert post.call_count == 2
    assert action.status == ActionStatus.DONE
    assert list(LeadNote.objects.values_list("kommo_note_id", flat=True)) == [557]


def test_a_lost_note_waits_while_kommo_cannot_list_the_notes(http_mock: respx.MockRouter) -> None:
    make_lead(kommo_lead_id=KOMMO_LEAD)
    post = http_mock.post(NOTES)
    post.side_effect = [httpx.Response(504), note_posted(558)]
    http_mock.get(LEAD_NOTES).respond(503, text="Service Unavailable")

    action = add_note()
    retry(action)

    assert post.call_count == 1
    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, 503)
    assert not LeadNote.objects.exists()
