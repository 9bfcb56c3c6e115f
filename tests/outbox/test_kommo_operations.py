"""Kommo operations (lead_create, lead_update, note_add), action dependencies, and the lead block
of n8n envelopes rebuilt at send time. Kommo and n8n are answered at the HTTP boundary only."""

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import respx
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kommo_hub.crm.services import lead_attach_kommo_id
from kommo_hub.models import (
    ActionStatus,
    Alert,
    Contact,
    Conversation,
    Lead,
    LeadNote,
    OutboundAction,
)
from kommo_hub.ops.jobs import release_held_actions, sweep_actions
from kommo_hub.outbox.delivery import action_deliver
from kommo_hub.outbox.envelope import envelope_build
from kommo_hub.outbox.services import (
    action_enqueue,
    actions_requeue,
    kommo_lead_create,
    kommo_lead_update,
    kommo_note_add,
    lead_kommo_create_action,
)
from tests.factories import InboundEventFactory
from tests.outbox.support import KOMMO_API, KOMMO_TOKEN, N8N_URL, Reply, committed

pytestmark = pytest.mark.django_db

PHONE = "+5511987654321"
EMAIL = "maria.souza@example.com"
KOMMO_LEAD = 18754321
KOMMO_CONTACT = 22334455
RESPONSIBLE = 9876543
PIPELINE = 7654321
STAGE = 61234501
CONTACTS = f"{KOMMO_API}/api/v4/contacts"
COMPLEX = f"{KOMMO_API}/api/v4/leads/complex"
NOTES = f"{KOMMO_API}/api/v4/leads/notes"


# --- helpers -----------------------------------------------------------------------------------


def make_lead(**fields: Any) -> Lead:
    contact = Contact.objects.create(name="Maria Souza", phone=PHONE, email=EMAIL)
    values = {
        "contact": contact,
        "name": "Maria Souza",
        "phone": PHONE,
        "email": EMAIL,
        "source": "website",
    }
    return Lead.objects.create(**{**values, **fields})


def create_in_kommo(lead: Lead, *, commit: bool = True, key: str | None = None) -> OutboundAction:
    def enqueue() -> OutboundAction:
        action, _ = kommo_lead_create(
            lead=lead,
            responsible_user_id=RESPONSIBLE,
            pipeline_id=PIPELINE,
            status_id=STAGE,
            tags=["website", "area-x"],
            idempotency_key=key or f"kommo:lead_create:{lead.pk}",
        )
        return action

    if not commit:  # recorded, but its transaction has not committed: nobody delivers it yet
        return enqueue()
    with committed():
        action = enqueue()
    action.refresh_from_db()
    return action


def kommo_contact(contact_id: int, *, phone: str = "", email: str = "") -> dict[str, Any]:
    fields = []
    if phone:
        fields.append(
            {
                "field_id": 3,
                "field_name": "Phone",
                "field_code": "PHONE",
                "field_type": "multitext",
                "values": [{"value": phone, "enum_id": 1, "enum_code": "MOB"}],
            }
        )
    if email:
        fields.append(
            {
                "field_id": 5,
                "field_name": "Email",
                "field_code": "EMAIL",
                "field_type": "multitext",
                "values": [{"value": email, "enum_id": 7, "enum_code": "WORK"}],
            }
        )
    return {"id": contact_id, "name": "Maria Souza", "custom_fields_values": fields or None}


def contacts_found(*contacts: dict[str, Any]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "_page": 1,
            "_links": {"self": {"href": f"{CONTACTS}?query=x"}},
            "_embedded": {"contacts": list(contacts)},
        },
    )


def complex_created(lead: Lead, *, contact_id: int = KOMMO_CONTACT) -> httpx.Response:
    return httpx.Response(
        200,
        json=[
            {
                "id": KOMMO_LEAD,
                "contact_id": contact_id,
                "company_id": None,
                "request_id": [f"hub-lead-{lead.pk}"],
                "merged": False,
            }
        ],
    )


def sent(calls: Any) -> list[tuple[str, str, dict[str, str], Any]]:
    """(method, path, query, JSON body) of every request, in order."""
    out = []
    for call in calls:
        request = call.request
        body = json.loads(request.content) if request.content else None
        out.append((request.method, request.url.path, dict(request.url.params), body))
    return out


def new_contact_body() -> dict[str, Any]:
    return {
        "name": "Maria Souza",
        "custom_fields_values": [
            {"field_code": "PHONE", "values": [{"value": PHONE, "enum_code": "MOB"}]},
            {"field_code": "EMAIL", "values": [{"value": EMAIL, "enum_code": "WORK"}]},
        ],
    }


def complex_body(lead: Lead, contact: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": "Maria Souza",
            "responsible_user_id": RESPONSIBLE,
            "pipeline_id": PIPELINE,
            "status_id": STAGE,
            "_embedded": {
                "tags": [{"name": "website"}, {"name": "area-x"}],
                "contacts": [contact],
            },
            "request_id": f"hub-lead-{lead.pk}",
        }
    ]


def make_due(action: OutboundAction) -> None:
    OutboundAction.objects.filter(pk=action.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def sweep() -> int:
    with committed():
        return sweep_actions()


def deliver(action: OutboundAction) -> str:
    with committed():
        return action_deliver(action_id=action.pk)


def proactive_message(lead: Lead, depends_on: OutboundAction | None) -> OutboundAction:
    key = f"n8n:proactive_message:lead:{lead.pk}"
    with committed():
        action, _ = action_enqueue(
            target="n8n",
            action="proactive_message",
            idempotency_key=key,
            payload=envelope_build(
                action="proactive_message",
                idempotency_key=key,
                lead=lead,
                area={"slug": "area-x", "name": "Area X"},
            ),
            lead=lead,
            depends_on=depends_on,
        )
    action.refresh_from_db()
    return action


# --- lead_create ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("kommo_on")
def test_lead_create_with_no_contact_in_kommo_sends_a_new_contact_and_records_the_kommo_ids(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    action = create_in_kommo(lead)

    assert sent(http_mock.calls) == [
        ("GET", "/api/v4/contacts", {"query": "5511987654321"}, None),
        ("GET", "/api/v4/contacts", {"query": EMAIL}, None),
        ("POST", "/api/v4/leads/complex", {}, complex_body(lead, new_contact_body())),
    ]
    for call in http_mock.calls:
        assert call.request.headers["Authorization"] == f"Bearer {KOMMO_TOKEN}"
        assert call.request.url.host == "acme.kommo.com"
    assert (action.status, action.attempts, action.last_status_code) == ("done", 1, 200)
    assert action.action == "lead_create"
    assert action.target == "kommo"
    assert action.payload["state"] == {
        "contact_id": None,
        "kommo_lead_id": KOMMO_LEAD,
        "kommo_contact_id": KOMMO_CONTACT,
    }
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD
    assert lead.kommo_responsible_user_id == RESPONSIBLE
    assert (lead.kommo_pipeline_id, lead.kommo_status_id) == (PIPELINE, STAGE)
    assert lead.tags == ["website", "area-x"]
    assert lead.contact is not None
    assert lead.contact.kommo_contact_id == KOMMO_CONTACT
    assert Contact.objects.count() == 1


@pytest.mark.usefixtures("kommo_on")
def test_a_contact_found_by_phone_is_linked_by_id_and_remembered_before_the_create(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    contacts = http_mock.get(CONTACTS).mock(
        return_value=contacts_found(kommo_contact(KOMMO_CONTACT, phone="+55 (11) 98765-4321"))
    )
    create = http_mock.post(COMPLEX)
    create.side_effect = [httpx.Response(503, text="Service Unavailable"), complex_created(lead)]

    action = create_in_kommo(lead)

    assert contacts.call_count == 1
    assert dict(contacts.calls.last.request.url.params) == {"query": "5511987654321"}
    assert json.loads(create.calls.last.request.content) == complex_body(
        lead, {"id": KOMMO_CONTACT}
    )
    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, 503)
    assert action.payload["state"] == {"contact_id": KOMMO_CONTACT}
    lead.refresh_from_db()
    assert lead.kommo_lead_id is None

    make_due(action)
    assert sweep() == 1

    action.refresh_from_db()
    assert contacts.call_count == 1  # the retry did not search again
    assert create.call_count == 2
    assert json.loads(create.calls.last.request.content) == complex_body(
        lead, {"id": KOMMO_CONTACT}
    )
    assert (action.status, action.attempts) == (ActionStatus.DONE, 2)
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD
    assert lead.contact is not None
    assert lead.contact.kommo_contact_id == KOMMO_CONTACT


@pytest.mark.usefixtures("kommo_on")
def test_a_contact_found_only_by_email_matches_case_insensitively(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    contacts = http_mock.get(CONTACTS)
    contacts.side_effect = [
        httpx.Response(204),
        contacts_found(kommo_contact(KOMMO_CONTACT, email="Maria.Souza@Example.COM")),
    ]
    create = http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    action = create_in_kommo(lead)

    assert [dict(c.request.url.params) for c in contacts.calls] == [
        {"query": "5511987654321"},
        {"query": EMAIL},
    ]
    assert json.loads(create.calls.last.request.content) == complex_body(
        lead, {"id": KOMMO_CONTACT}
    )
    assert action.status == ActionStatus.DONE
    assert action.payload["state"]["contact_id"] == KOMMO_CONTACT


@pytest.mark.usefixtures("kommo_on")
def test_a_full_text_hit_on_another_number_or_address_is_not_the_same_person(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    contacts = http_mock.get(CONTACTS)
    contacts.side_effect = [
        contacts_found(kommo_contact(111, phone="+55 11 98765-4320")),
        contacts_found(kommo_contact(222, email="maria.souza@example.com.br")),
    ]
    create = http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    action = create_in_kommo(lead)

    assert contacts.call_count == 2
    assert json.loads(create.calls.last.request.content) == complex_body(lead, new_contact_body())
    assert action.payload["state"]["contact_id"] is None
    assert action.status == ActionStatus.DONE


@pytest.mark.usefixtures("kommo_on")
def test_a_lead_whose_contact_has_a_kommo_id_is_created_with_it_without_a_search(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    Contact.objects.filter(pk=lead.contact_id).update(kommo_contact_id=KOMMO_CONTACT)
    create = http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    action = create_in_kommo(lead)

    assert sent(http_mock.calls) == [
        ("POST", "/api/v4/leads/complex", {}, complex_body(lead, {"id": KOMMO_CONTACT})),
    ]
    assert create.call_count == 1
    assert action.status == ActionStatus.DONE


@pytest.mark.usefixtures("kommo_on")
def test_a_lead_already_in_kommo_is_not_created_again_and_nothing_is_sent(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead(kommo_lead_id=KOMMO_LEAD)

    action = create_in_kommo(lead)

    assert http_mock.calls.call_count == 0
    assert (action.status, action.last_status_code) == (ActionStatus.DONE, 200)
    assert action.last_response == f"already in Kommo as {KOMMO_LEAD}"


@pytest.mark.usefixtures("kommo_on")
def test_a_kommo_validation_error_on_create_is_dead_with_the_problem_kept(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    problem = json.dumps(
        {
            "validation-errors": [
                {
                    "request_id": "0",
                    "errors": [
                        {
                            "code": "NotSupportedChoice",
                            "path": "status_id",
                            "detail": "The value you selected is not a valid choice.",
                        }
                    ],
                }
            ],
            "title": "Bad Request",
            "type": "https://httpstatus.es/400",
            "status": 400,
            "detail": "Request validation failed",
        }
    )
    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).respond(400, text=problem)

    action = create_in_kommo(lead)

    assert (action.status, action.last_status_code) == (ActionStatus.DEAD, 400)
    assert action.last_response == problem
    assert Alert.objects.get().kind == Alert.Kind.DEAD_LETTER
    lead.refresh_from_db()
    assert lead.kommo_lead_id is None


@pytest.mark.usefixtures("kommo_on")
def test_a_200_whose_body_is_not_the_created_lead_is_a_failure_to_retry(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).respond(200, text="<html>maintenance</html>")

    action = create_in_kommo(lead)

    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, 200)
    assert action.last_error == (
        "Kommo answered 200 but the created lead could not be read from the body"
    )
    assert action.last_response == "<html>maintenance</html>"
    assert action.next_attempt_at is not None
    lead.refresh_from_db()
    assert lead.kommo_lead_id is None


@pytest.mark.usefixtures("kommo_on")
def test_a_failed_contact_search_is_retried_before_anything_is_created(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).respond(502, text="Bad Gateway")
    create = http_mock.post(COMPLEX)

    action = create_in_kommo(lead)

    assert (action.status, action.last_status_code) == (ActionStatus.FAILED, 502)
    assert create.call_count == 0
    assert action.payload["state"] == {}


@pytest.mark.usefixtures("kommo_on")
def test_a_create_whose_outcome_cannot_be_recorded_is_retried_without_creating_again(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    too_big = 2**70  # no BigIntegerField holds it: recording the created lead fails
    http_mock.get(CONTACTS).respond(204)
    create = http_mock.post(COMPLEX).respond(200, json=[{"id": too_big, "contact_id": None}])

    action = create_in_kommo(lead)

    assert action.status == ActionStatus.FAILED
    assert action.last_error.startswith("recording the outcome failed: ")
    assert action.payload["state"]["kommo_lead_id"] == too_big

    make_due(action)
    assert sweep() == 1

    action.refresh_from_db()
    assert create.call_count == 1
    assert http_mock.calls.call_count == 3
    assert (action.status, action.attempts) == (ActionStatus.FAILED, 2)


def test_without_kommo_configured_the_create_is_held_and_nothing_is_sent(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()

    action = create_in_kommo(lead)

    assert http_mock.calls.call_count == 0
    assert (action.status, action.held_reason, action.attempts) == (
        ActionStatus.HELD,
        "Kommo not configured",
        0,
    )


@pytest.mark.usefixtures("kommo_on")
def test_end_to_end_a_real_http_server_sees_the_search_and_the_create(
    settings: Any, local_server: Any
) -> None:
    settings.KOMMO_BASE_URL = local_server.url
    lead = make_lead(name="")
    created = [{"id": KOMMO_LEAD, "contact_id": KOMMO_CONTACT, "merged": False}]
    local_server.replies = [
        Reply(status=204, body=""),
        Reply(status=204, body=""),
        Reply(status=200, body=json.dumps({"_embedded": {"leads": created}})),
    ]

    action = create_in_kommo(lead)

    received = local_server.received
    assert [(r.method, r.path) for r in received] == [
        ("GET", "/api/v4/contacts?query=5511987654321"),
        ("GET", "/api/v4/contacts?query=maria.souza%40example.com"),
        ("POST", "/api/v4/leads/complex"),
    ]
    assert {r.headers["Authorization"] for r in received} == {f"Bearer {KOMMO_TOKEN}"}
    assert received[2].headers["Content-Type"] == "application/json"
    body = complex_body(lead, new_contact_body())
    body[0]["name"] = "Maria Souza"  # the contact's name stands in for the lead's
    assert received[2].json() == body
    assert action.status == ActionStatus.DONE
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD


@pytest.mark.usefixtures("kommo_on")
def test_a_lead_without_any_name_is_named_after_its_phone(http_mock: respx.MockRouter) -> None:
    contact = Contact.objects.create(phone=PHONE)
    lead = Lead.objects.create(contact=contact, phone=PHONE, source="website")
    http_mock.get(CONTACTS).respond(204)
    create = http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    create_in_kommo(lead)

    body = json.loads(create.calls.last.request.content)[0]
    assert body["name"] == f"Lead {PHONE}"
    assert body["_embedded"]["contacts"] == [
        {
            "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": PHONE, "enum_code": "MOB"}]}
            ]
        }
    ]


@pytest.mark.usefixtures("kommo_on")
def test_the_create_links_the_contact_row_that_already_holds_the_kommo_contact_id(
    http_mock: respx.MockRouter,
) -> None:
    mirrored = Contact.objects.create(kommo_contact_id=KOMMO_CONTACT, name="Maria (Kommo)")
    lead = make_lead()
    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    create_in_kommo(lead)

    lead.refresh_from_db()
    assert lead.contact_id == mirrored.pk
    mirrored.refresh_from_db()
    assert (mirrored.phone, mirrored.email) == (PHONE, EMAIL)


# --- lead_update and note_add --------------------------------------------------------------------


@pytest.mark.usefixtures("kommo_on")
def test_lead_update_patches_the_kommo_lead_as_the_robot_and_mirrors_what_it_wrote(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead(kommo_lead_id=KOMMO_LEAD, tags=["website"])
    patch = http_mock.patch(f"{KOMMO_API}/api/v4/leads/{KOMMO_LEAD}").respond(
        200, json={"id": KOMMO_LEAD, "updated_at": 1767268800}
    )
    body = {
        "responsible_user_id": RESPONSIBLE,
        "pipeline_id": PIPELINE,
        "status_id": STAGE,
        "tags_to_add": [{"name": "area-x"}],
    }

    with committed():
        action, created = kommo_lead_update(lead=lead, body=body, idempotency_key="upd:1")

    assert created
    assert sent(http_mock.calls) == [
        ("PATCH", f"/api/v4/leads/{KOMMO_LEAD}", {}, {**body, "updated_by": 0}),
    ]
    assert patch.calls.last.request.headers["Authorization"] == f"Bearer {KOMMO_TOKEN}"
    action.refresh_from_db()
    assert (action.action, action.status) == ("lead_update", ActionStatus.DONE)
    assert action.payload == {"operation": "lead_update", "lead_id": lead.pk, "body": body}
    lead.refresh_from_db()
    assert lead.kommo_responsible_user_id == RESPONSIBLE
    assert (lead.kommo_pipeline_id, lead.kommo_status_id) == (PIPELINE, STAGE)
    assert lead.tags == ["website", "area-x"]


@pytest.mark.usefixtures("kommo_on")
def test_lead_update_of_a_lead_not_in_kommo_is_held_and_goes_out_once_the_create_is_done(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    patch = http_mock.patch(f"{KOMMO_API}/api/v4/leads/{KOMMO_LEAD}").respond(200, json={})

    with committed():
        update, _ = kommo_lead_update(
            lead=lead, body={"responsible_user_id": RESPONSIBLE}, idempotency_key="upd:2"
        )
    update.refresh_from_db()

    assert http_mock.calls.call_count == 0
    assert (update.status, update.held_reason, update.attempts) == (
        ActionStatus.HELD,
        "waiting for the lead to exist in Kommo",
        0,
    )
    with committed():
        assert release_held_actions() == 0  # it would only be held again
    assert http_mock.calls.call_count == 0

    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).mock(return_value=complex_created(lead))
    create_in_kommo(lead)

    update.refresh_from_db()
    assert (update.status, update.attempts) == (ActionStatus.DONE, 1)
    assert json.loads(patch.calls.last.request.content) == {
        "responsible_user_id": RESPONSIBLE,
        "updated_by": 0,
    }


@pytest.mark.usefixtures("kommo_on")
def test_note_add_posts_a_common_note_keyed_by_the_idempotency_key_and_records_it(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead(kommo_lead_id=KOMMO_LEAD)
    notes = http_mock.post(NOTES).respond(
        200,
        json={
            "_embedded": {
                "notes": [{"id": 42424242, "entity_id": KOMMO_LEAD, "request_id": "note:1"}]
            }
        },
    )

    with committed():
        action, _ = kommo_note_add(
            lead=lead, text="Kommo Hub: lead assigned.", idempotency_key="note:1"
        )

    assert sent(http_mock.calls) == [
        (
            "POST",
            "/api/v4/leads/notes",
            {},
            [
                {
                    "entity_id": KOMMO_LEAD,
                    "note_type": "common",
                    "params": {"text": "Kommo Hub: lead assigned."},
                    "request_id": "note:1",
                }
            ],
        )
    ]
    assert notes.calls.last.request.headers["Authorization"] == f"Bearer {KOMMO_TOKEN}"
    action.refresh_from_db()
    assert (action.action, action.status) == ("note_add", ActionStatus.DONE)
    note = LeadNote.objects.get()
    assert (note.kommo_note_id, note.lead_id, note.kommo_lead_id, note.text) == (
        42424242,
        lead.pk,
        KOMMO_LEAD,
        "Kommo Hub: lead assigned.",
    )


@pytest.mark.usefixtures("kommo_on")
def test_note_add_of_a_lead_not_in_kommo_is_held(http_mock: respx.MockRouter) -> None:
    lead = make_lead()

    with committed():
        action, _ = kommo_note_add(lead=lead, text="hello", idempotency_key="note:2")

    action.refresh_from_db()
    assert http_mock.calls.call_count == 0
    assert (action.status, action.held_reason, action.attempts) == (
        ActionStatus.HELD,
        "waiting for the lead to exist in Kommo",
        0,
    )


# --- dependencies --------------------------------------------------------------------------------


@pytest.mark.usefixtures("kommo_on")
def test_a_dependent_is_held_while_its_predecessor_is_pending_and_sent_once_it_is_done(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    create = create_in_kommo(lead, commit=False)
    assert create.status == ActionStatus.PENDING
    assert lead_kommo_create_action(lead=lead) == create

    with committed():
        note, _ = kommo_note_add(
            lead=lead, text="assigned", idempotency_key="note:dep", depends_on=create
        )
    note.refresh_from_db()

    assert http_mock.calls.call_count == 0
    assert (note.status, note.attempts, note.depends_on_id) == (ActionStatus.HELD, 0, create.pk)
    assert note.held_reason == f"waiting for action #{create.pk} (lead_create)"
    with committed():
        assert release_held_actions() == 0
    note.refresh_from_db()
    assert (note.status, note.attempts) == (ActionStatus.HELD, 0)

    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).mock(return_value=complex_created(lead))
    notes = http_mock.post(NOTES).respond(200, json={"_embedded": {"notes": [{"id": 5}]}})
    assert deliver(create) == ActionStatus.DONE

    note.refresh_from_db()
    assert (note.status, note.attempts, note.held_reason) == (ActionStatus.DONE, 1, "")
    assert [c.request.url.path for c in http_mock.calls] == [
        "/api/v4/contacts",
        "/api/v4/contacts",
        "/api/v4/leads/complex",
        "/api/v4/leads/notes",
    ]
    assert json.loads(notes.calls.last.request.content)[0]["entity_id"] == KOMMO_LEAD
    assert lead_kommo_create_action(lead=lead) is None


@pytest.mark.usefixtures("kommo_on")
def test_the_dependency_is_checked_before_the_configuration(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.KOMMO_ACCESS_TOKEN = ""
    lead = make_lead()
    create = create_in_kommo(lead)
    assert create.held_reason == "Kommo not configured"

    with committed():
        update, _ = kommo_lead_update(
            lead=lead, body={"status_id": STAGE}, idempotency_key="upd:dep", depends_on=create
        )
    update.refresh_from_db()
    assert update.held_reason == f"waiting for action #{create.pk} (lead_create)"

    settings.KOMMO_ACCESS_TOKEN = KOMMO_TOKEN
    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).mock(return_value=complex_created(lead))
    http_mock.patch(f"{KOMMO_API}/api/v4/leads/{KOMMO_LEAD}").respond(200, json={})
    with committed():
        assert release_held_actions() == 1  # the create; it releases the update when done

    update.refresh_from_db()
    create.refresh_from_db()
    assert (create.status, update.status) == (ActionStatus.DONE, ActionStatus.DONE)
    assert [c.request.method for c in http_mock.calls] == ["GET", "GET", "POST", "PATCH"]


@pytest.mark.usefixtures("kommo_on", "n8n_on")
def test_a_dependent_waits_through_a_failed_predecessor_and_carries_the_new_kommo_ids(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).respond(204)
    create_route = http_mock.post(COMPLEX)
    create_route.side_effect = [httpx.Response(500, text="oops"), complex_created(lead)]
    n8n = http_mock.post(N8N_URL).respond(200, json={"ok": True})

    create = create_in_kommo(lead)
    message = proactive_message(lead, depends_on=create)

    assert create.status == ActionStatus.FAILED
    assert (message.status, message.attempts) == (ActionStatus.HELD, 0)
    assert message.held_reason == f"waiting for action #{create.pk} (lead_create)"
    assert message.payload["lead"]["kommo_lead_id"] is None
    assert n8n.call_count == 0

    make_due(create)
    assert sweep() == 1

    message.refresh_from_db()
    assert (message.status, message.attempts) == (ActionStatus.DONE, 1)
    envelope = json.loads(n8n.calls.last.request.content)
    assert envelope["lead"] == {
        "id": lead.pk,
        "kommo_lead_id": KOMMO_LEAD,
        "kommo_contact_id": KOMMO_CONTACT,
        "name": "Maria Souza",
        "phone": PHONE,
        "email": EMAIL,
        "source": "website",
        "utm": {},
        "fields": {},
    }
    assert envelope["area"] == {"slug": "area-x", "name": "Area X"}
    assert envelope["action"] == "proactive_message"
    assert envelope["idempotency_key"] == f"n8n:proactive_message:lead:{lead.pk}"
    assert message.payload["lead"]["kommo_lead_id"] is None  # the stored payload is unchanged


@pytest.mark.usefixtures("kommo_on")
def test_dependents_of_a_dead_action_stay_held_saying_so_and_go_once_it_is_retried_and_done(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    http_mock.get(CONTACTS).respond(204)
    create_route = http_mock.post(COMPLEX)
    create_route.side_effect = [httpx.Response(500, text="oops"), httpx.Response(400, text="no")]
    patch = http_mock.patch(f"{KOMMO_API}/api/v4/leads/{KOMMO_LEAD}").respond(200, json={})

    create = create_in_kommo(lead)
    with committed():
        early, _ = kommo_lead_update(
            lead=lead, body={"status_id": STAGE}, idempotency_key="upd:early", depends_on=create
        )
    make_due(create)
    assert sweep() == 1
    create.refresh_from_db()
    early.refresh_from_db()
    assert create.status == ActionStatus.DEAD
    assert (early.status, early.held_reason) == (
        ActionStatus.HELD,
        f"action #{create.pk} it waits for is dead",
    )

    with committed():
        late, _ = kommo_note_add(
            lead=lead, text="x", idempotency_key="note:late", depends_on=create
        )
    late.refresh_from_db()
    assert (late.status, late.held_reason, late.attempts) == (
        ActionStatus.HELD,
        f"action #{create.pk} it waits for is dead",
        0,
    )
    with committed():
        assert release_held_actions() == 0
    assert lead_kommo_create_action(lead=lead) == create

    create_route.side_effect = None
    create_route.return_value = complex_created(lead)
    http_mock.post(NOTES).respond(200, json={})
    with committed():
        assert (
            actions_requeue(
                actions=OutboundAction.objects.filter(pk=create.pk), reset_attempts=True
            )
            == 1
        )

    for action in (create, early, late):
        action.refresh_from_db()
        assert (action.status, action.attempts) == (ActionStatus.DONE, 1)
    assert patch.call_count == 1


@pytest.mark.usefixtures("n8n_on")
def test_the_release_job_releases_a_held_dependent_whose_predecessor_is_done(
    http_mock: respx.MockRouter,
) -> None:
    n8n = http_mock.post(N8N_URL).respond(200)
    lead = make_lead(kommo_lead_id=KOMMO_LEAD)
    done = OutboundAction.objects.create(
        target="kommo", action="lead_create", idempotency_key="done", status=ActionStatus.DONE
    )
    pending = OutboundAction.objects.create(
        target="kommo", action="lead_create", idempotency_key="pending"
    )
    missed = OutboundAction.objects.create(
        target="n8n",
        action="proactive_message",
        idempotency_key="missed",
        payload={"action": "proactive_message", "idempotency_key": "missed"},
        lead=lead,
        depends_on=done,
        status=ActionStatus.HELD,
        held_reason=f"waiting for action #{done.pk} (lead_create)",
    )
    waiting = OutboundAction.objects.create(
        target="n8n",
        action="proactive_message",
        idempotency_key="waiting",
        payload={"action": "proactive_message", "idempotency_key": "waiting"},
        depends_on=pending,
        status=ActionStatus.HELD,
        held_reason=f"waiting for action #{pending.pk} (lead_create)",
    )

    with committed():
        assert release_held_actions() == 1

    missed.refresh_from_db()
    waiting.refresh_from_db()
    assert (missed.status, missed.attempts) == (ActionStatus.DONE, 1)
    assert (waiting.status, waiting.attempts) == (ActionStatus.HELD, 0)
    assert n8n.call_count == 1
    assert json.loads(n8n.calls.last.request.content)["lead"]["kommo_lead_id"] == KOMMO_LEAD


@pytest.mark.usefixtures("n8n_on")
def test_an_n8n_action_without_a_lead_keeps_its_stored_payload(
    http_mock: respx.MockRouter,
) -> None:
    n8n = http_mock.post(N8N_URL).respond(200)
    stored = {"action": "reply", "idempotency_key": "r:1", "lead": {"id": 99, "name": "kept"}}
    with committed():
        action_enqueue(target="n8n", action="reply", idempotency_key="r:1", payload=stored)

    envelope = json.loads(n8n.calls.last.request.content)
    assert envelope["lead"] == {"id": 99, "name": "kept"}


# --- lead_attach_kommo_id ------------------------------------------------------------------------


def test_attaching_the_kommo_id_merges_the_mirror_row_a_webhook_created_first() -> None:
    lead = make_lead(tags=["website"], utm={"utm_source": "google"})
    own_event = InboundEventFactory(lead=lead)
    mirror_contact = Contact.objects.create(kommo_contact_id=KOMMO_CONTACT, name="Maria")
    mirror = Lead.objects.create(
        kommo_lead_id=KOMMO_LEAD,
        contact=mirror_contact,
        source="kommo",
        kommo_status_id=STAGE,
        kommo_pipeline_id=PIPELINE,
        tags=["area-x"],
        utm={"utm_source": "kommo", "utm_medium": "cpc"},
    )
    conversation = Conversation.objects.create(chat_id="chat-1", lead=mirror)
    note = LeadNote.objects.create(kommo_note_id=77, lead=mirror, kommo_lead_id=KOMMO_LEAD)
    event = InboundEventFactory(lead=mirror)
    action = OutboundAction.objects.create(
        target="kommo", action="note_add", idempotency_key="n", lead=mirror
    )

    attached = lead_attach_kommo_id(
        lead=lead, kommo_lead_id=KOMMO_LEAD, kommo_contact_id=KOMMO_CONTACT
    )

    assert attached.pk == lead.pk
    assert not Lead.objects.filter(pk=mirror.pk).exists()
    lead.refresh_from_db()
    assert lead.kommo_lead_id == KOMMO_LEAD
    assert lead.contact_id == mirror_contact.pk
    assert (lead.kommo_status_id, lead.kommo_pipeline_id) == (STAGE, PIPELINE)
    assert lead.source == "website"
    assert lead.tags == ["area-x", "website"]
    assert lead.utm == {"utm_source": "google", "utm_medium": "cpc"}
    for row in (conversation, note, event, action, own_event):
        row.refresh_from_db()
        assert row.lead_id == lead.pk
    mirror_contact.refresh_from_db()
    assert (mirror_contact.phone, mirror_contact.email) == (PHONE, EMAIL)

    again = lead_attach_kommo_id(
        lead=lead, kommo_lead_id=KOMMO_LEAD, kommo_contact_id=KOMMO_CONTACT
    )
    assert (again.pk, again.kommo_lead_id) == (lead.pk, KOMMO_LEAD)
    assert Lead.objects.count() == 1


def test_attaching_the_kommo_id_gives_a_lead_without_contact_a_new_one() -> None:
    lead = Lead.objects.create(name="Maria Souza", phone=PHONE, phone_raw="11 98765-4321")

    lead_attach_kommo_id(lead=lead, kommo_lead_id=KOMMO_LEAD, kommo_contact_id=KOMMO_CONTACT)

    lead.refresh_from_db()
    assert lead.contact is not None
    contact = lead.contact
    assert (contact.kommo_contact_id, contact.name, contact.phone, contact.phone_raw) == (
        KOMMO_CONTACT,
        "Maria Souza",
        PHONE,
        "11 98765-4321",
    )


def test_attaching_another_kommo_id_to_a_lead_that_has_one_is_refused() -> None:
    lead = make_lead(kommo_lead_id=KOMMO_LEAD)

    with pytest.raises(ValueError, match="already Kommo lead"):
        lead_attach_kommo_id(lead=lead, kommo_lead_id=KOMMO_LEAD + 1, kommo_contact_id=None)


@pytest.mark.usefixtures("kommo_on")
def test_a_create_whose_lead_a_webhook_already_mirrored_merges_into_the_hub_lead(
    http_mock: respx.MockRouter,
) -> None:
    lead = make_lead()
    create = create_in_kommo(lead, commit=False)
    mirror = Lead.objects.create(kommo_lead_id=KOMMO_LEAD, source="kommo")
    Conversation.objects.create(chat_id="chat-9", lead=mirror)
    http_mock.get(CONTACTS).respond(204)
    http_mock.post(COMPLEX).mock(return_value=complex_created(lead))

    assert deliver(create) == ActionStatus.DONE

    assert list(Lead.objects.values_list("pk", "kommo_lead_id")) == [(lead.pk, KOMMO_LEAD)]
    assert Conversation.objects.get().lead_id == lead.pk


# --- admin ---------------------------------------------------------------------------------------


def test_the_admin_shows_what_an_action_waits_for_and_what_waits_for_it(
    admin_client: Client,
) -> None:
    first = OutboundAction.objects.create(
        target="kommo", action="lead_create", idempotency_key="first"
    )
    second = OutboundAction.objects.create(
        target="n8n",
        action="proactive_message",
        idempotency_key="second",
        depends_on=first,
        status=ActionStatus.HELD,
        held_reason=f"waiting for action #{first.pk} (lead_create)",
    )
    first_url = reverse("admin:kommo_hub_outboundaction_change", args=[first.pk])
    second_url = reverse("admin:kommo_hub_outboundaction_change", args=[second.pk])

    page = admin_client.get(second_url, headers={"accept-language": "en"})
    assert page.status_code == 200
    assert f'href="{first_url}"' in page.content.decode()

    page = admin_client.get(first_url, headers={"accept-language": "en"})
    assert page.status_code == 200
    assert f'href="{second_url}"' in page.content.decode()

    changelist = reverse("admin:kommo_hub_outboundaction_changelist")
    page = admin_client.get(changelist, {"depends_on__isempty": "0"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [second]
