"""Flow 1 end to end: a form, RD Station or Kommo lead → rule → area → salesperson → Kommo →
n8n proactive message. Kommo and n8n are real local HTTP servers; we assert the exact requests."""

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client

from kommo_hub.flows.leads import routing_tick
from kommo_hub.models import ActionStatus, EventStatus, InboundEvent, Lead, OutboundAction
from routing.models import Assignment, AssignmentKind, Strategy
from tests.conftest import shared_fixture
from tests.flows.fakes import FakeKommo, fake_kommo
from tests.intake.wire import FORMS_URL, JSON, KOMMO_URL, RDSTATION_URL, kommo_body, post
from tests.outbox.support import LocalHttpServer, committed
from tests.routing.factories import AreaFactory, AreaMembershipFactory, SalespersonFactory
from tests.routing.factories import always_working as works_always

pytestmark = pytest.mark.django_db
__all__ = ["fake_kommo"]

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=SP)
N8N_SECRET = "n8n-outbound-test-secret"
PIPELINE, STAGE = 7654321, 61234501
ANA_KOMMO, BRUNO_KOMMO, ADMIN_KOMMO = 9876501, 9876502, 9876500
FORM = {
    "nome": "João Pereira",
    "telefone": "(21) 99876-5432",
    "email": "Joao.Pereira@Example.com",
    "mensagem": "Quero saber mais",
    "utm_source": "google",
    "utm_campaign": "nov26",
}


@pytest.fixture
def n8n(settings: Any) -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        settings.N8N_WEBHOOK_URL = f"{server.url}/webhook/kommo-hub"
        settings.N8N_WEBHOOK_SECRET = N8N_SECRET
        yield server


@pytest.fixture
def sales() -> dict[str, Any]:
    area = AreaFactory(
        name="Vendas",
        slug="vendas",
        is_default=True,
        strategy=Strategy.ROUND_ROBIN,
        kommo_pipeline_id=PIPELINE,
        kommo_status_id=STAGE,
        reply_sla_minutes=30,
        ai_instructions="Seja cordial.",
        first_message_hint="Agradeça o contato.",
    )
    people = {}
    for name, kommo_id in (("Ana", ANA_KOMMO), ("Bruno", BRUNO_KOMMO)):
        person = SalespersonFactory(name=name, kommo_user_id=kommo_id, phone="+5511900000000")
        works_always(person)
        AreaMembershipFactory(area=area, salesperson=person)
        people[name] = person
    return {"area": area, **people}


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def send(client: Client, url: str, body: str | bytes, content_type: str = JSON) -> None:
    with committed():
        response = post(client, url, body, content_type=content_type)
    assert response.status_code == 200, response.content


def n8n_bodies(n8n: LocalHttpServer) -> list[dict[str, Any]]:
    return [r.json() for r in n8n.received]


def test_website_form_lead_is_created_in_kommo_with_owner_then_n8n_opens_the_chat(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send(client, FORMS_URL, json.dumps(FORM))

    lead = Lead.objects.get()
    assert fake_kommo.calls() == [
        ("GET", "/api/v4/contacts?query=5521998765432"),
        ("GET", "/api/v4/contacts?query=joao.pereira%40example.com"),
        ("POST", "/api/v4/leads/complex"),
    ]
    create = fake_kommo.received[2]
    assert create.headers["Authorization"] == "Bearer kommo-long-lived-test-token"
    assert create.json() == [
        {
            "name": "João Pereira",
            "responsible_user_id": ANA_KOMMO,
            "pipeline_id": PIPELINE,
            "status_id": STAGE,
            "request_id": f"hub-lead-{lead.pk}",
            "_embedded": {
                "tags": [{"name": "website"}, {"name": "vendas"}],
                "contacts": [
                    {
                        "name": "João Pereira",
                        "custom_fields_values": [
                            {
                                "field_code": "PHONE",
                                "values": [{"value": "+5521998765432", "enum_code": "MOB"}],
                            },
                            {
                                "field_code": "EMAIL",
                                "values": [
                                    {"value": "joao.pereira@example.com", "enum_code": "WORK"}
                                ],
                            },
                        ],
                    }
                ],
            },
        }
    ]
    lead.refresh_from_db()
    assert (lead.kommo_lead_id, lead.contact.kommo_contact_id) == (9001, 8001)
    assert (lead.kommo_responsible_user_id, lead.kommo_status_id) == (ANA_KOMMO, STAGE)

    [message] = n8n_bodies(n8n)
    assert n8n.received[0].headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert message["action"] == "proactive_message"
    assert message["idempotency_key"] == f"n8n:proactive_message:lead:{lead.pk}"
    assert message["lead"] == {
        "id": lead.pk,
        "kommo_lead_id": 9001,
        "kommo_contact_id": 8001,
        "name": "João Pereira",
        "phone": "+5521998765432",
        "email": "joao.pereira@example.com",
        "source": "website",
        "utm": {"utm_source": "google", "utm_campaign": "nov26"},
        "fields": {"message": "Quero saber mais"},
    }
    assert message["area"] == {
        "slug": "vendas",
        "name": "Vendas",
        "ai_instructions": "Seja cordial.",
        "first_message_hint": "Agradeça o contato.",
    }
    assert message["salesperson"] == {
        "id": sales["Ana"].pk,
        "name": "Ana",
        "kommo_user_id": ANA_KOMMO,
        "phone": "+5511900000000",
    }
    assert set(message) == {
        "action",
        "idempotency_key",
        "sent_at",
        "lead",
        "area",
        "salesperson",
        "callback_url",
    }
    assert set(OutboundAction.objects.values_list("action", "status")) == {
        ("lead_create", ActionStatus.DONE),
        ("proactive_message", ActionStatus.DONE),
    }


def test_returning_person_found_in_kommo_by_phone_is_not_duplicated(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    fake_kommo.state.contacts.append(
        {
            "id": 4455,
            "name": "João P.",
            "custom_fields_values": [
                {"field_code": "PHONE", "values": [{"value": "+5521998765432"}]}
            ],
        }
    )
    send(client, FORMS_URL, json.dumps(FORM))
    assert fake_kommo.calls() == [
        ("GET", "/api/v4/contacts?query=5521998765432"),
        ("POST", "/api/v4/leads/complex"),
    ]
    assert fake_kommo.received[1].json()[0]["_embedded"]["contacts"] == [{"id": 4455}]
    assert Lead.objects.get().contact.kommo_contact_id == 4455


def test_kommo_echo_of_the_hubs_own_lead_does_not_loop_into_a_new_assignment(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send(client, FORMS_URL, json.dumps(FORM))
    echo_add = kommo_body(
        "leads[add][0]",
        [
            ("id", "9001"),
            ("name", "João Pereira"),
            ("status_id", str(STAGE)),
            ("pipeline_id", str(PIPELINE)),
            ("responsible_user_id", str(ANA_KOMMO)),
            ("modified_user_id", str(ADMIN_KOMMO)),
            ("updated_at", str(int(NOW.timestamp()))),
        ],
    )
    echo_responsible = kommo_body(
        "leads[responsible][0]",
        [
            ("id", "9001"),
            ("responsible_user_id", str(ANA_KOMMO)),
            ("old_responsible_user_id", str(ADMIN_KOMMO)),
            ("modified_user_id", str(ADMIN_KOMMO)),
            ("updated_at", str(int(NOW.timestamp()) + 1)),
        ],
    )
    send(client, KOMMO_URL, echo_add, content_type="application/x-www-form-urlencoded")
    send(client, KOMMO_URL, echo_responsible, content_type="application/x-www-form-urlencoded")

    assert Lead.objects.count() == 1
    assert Assignment.objects.count() == 1
    assert [e.result for e in InboundEvent.objects.filter(source="kommo").order_by("pk")] == [
        "lead updated; already routed",
        "echo of the hub's own write",
    ]
    assert len(fake_kommo.received) == 3
    assert len(n8n.received) == 1


def test_manual_reassignment_in_kommo_is_accepted_and_sticky_follows_it(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send(client, FORMS_URL, json.dumps(FORM))
    later = int((NOW + timedelta(minutes=10)).timestamp())
    manual = kommo_body(
        "leads[responsible][0]",
        [
            ("id", "9001"),
            ("responsible_user_id", str(BRUNO_KOMMO)),
            ("old_responsible_user_id", str(ANA_KOMMO)),
            ("modified_user_id", str(ADMIN_KOMMO)),
            ("updated_at", str(later)),
        ],
    )
    with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
        send(client, KOMMO_URL, manual, content_type="application/x-www-form-urlencoded")
    current = Assignment.objects.get(is_current=True)
    assert (current.salesperson, current.kind) == (sales["Bruno"], AssignmentKind.KOMMO)
    assert len(fake_kommo.received) == 3  # Kommo is not written back to
    with time_machine.travel(NOW + timedelta(hours=2), tick=False):
        send(client, FORMS_URL, json.dumps({**FORM, "mensagem": "De novo"}))
    newest = Lead.objects.order_by("-pk").first()
    assert Assignment.objects.get(lead=newest).salesperson == sales["Bruno"]


def test_same_person_from_rd_station_and_the_website_is_one_lead_one_assignment_one_message(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    rd = json.loads(shared_fixture("rdstation/conversion_webhook_converted.json"))
    send(client, RDSTATION_URL, json.dumps(rd))
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        send(
            client,
            FORMS_URL,
            json.dumps({"nome": "Maria Souza", "telefone": "(11) 98765-4321", "email": ""}),
        )
    assert Lead.objects.count() == 1
    assert Assignment.objects.count() == 1
    assert [b["action"] for b in n8n_bodies(n8n)] == ["proactive_message"]
    assert [c for c in fake_kommo.calls() if c[0] == "POST"] == [("POST", "/api/v4/leads/complex")]


def test_a_lead_created_in_kommo_is_routed_and_its_owner_set_there(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    body = shared_fixture("kommo/lead_add.form").decode()
    send(client, KOMMO_URL, body, content_type="application/x-www-form-urlencoded")
    lead = Lead.objects.get()
    assignment = Assignment.objects.get()
    assert assignment.salesperson == sales["Ana"]
    [patch] = fake_kommo.received
    assert (patch.method, patch.path) == ("PATCH", f"/api/v4/leads/{lead.kommo_lead_id}")
    assert patch.json() == {
        "tags_to_add": [{"name": "kommo"}, {"name": "vendas"}],
        "responsible_user_id": ANA_KOMMO,
        "pipeline_id": PIPELINE,
        "status_id": STAGE,
        "updated_by": 0,
    }
    assert n8n.received == []  # a Kommo lead carries no phone: nobody to message yet


def test_a_lead_already_owned_by_a_salesperson_in_kommo_keeps_that_owner(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    body = kommo_body(
        "leads[add][0]",
        [("id", "5550001"), ("name", "Feito no Kommo"), ("responsible_user_id", str(BRUNO_KOMMO))],
    )
    send(client, KOMMO_URL, body, content_type="application/x-www-form-urlencoded")
    assignment = Assignment.objects.get()
    assert (assignment.salesperson, assignment.kind) == (sales["Bruno"], AssignmentKind.KOMMO)
    assert fake_kommo.received == []
    assert n8n.received == []


def test_kommo_lead_event_waits_while_the_hub_is_creating_a_lead(
    client: Client, sales: dict[str, Any]
) -> None:
    OutboundAction.objects.create(
        target="kommo",
        action="lead_create",
        idempotency_key="kommo:lead_create:x",
        status=ActionStatus.FAILED,
        attempts=1,
        payload={"operation": "lead_create", "lead_id": 0},
    )
    body = kommo_body("leads[add][0]", [("id", "5550002"), ("name", "Talvez nosso")])
    send(client, KOMMO_URL, body, content_type="application/x-www-form-urlencoded")
    event = InboundEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.FAILED, 0)
    assert event.last_error.startswith("deferred: ")
    assert Assignment.objects.count() == 0


def test_missed_reply_sla_moves_the_lead_with_a_kommo_note_and_a_handoff(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send(client, FORMS_URL, json.dumps(FORM))
    with time_machine.travel(NOW + timedelta(minutes=31), tick=False), committed():
        assert routing_tick() == 1
    lead = Lead.objects.get()
    current = Assignment.objects.get(is_current=True)
    assert (current.salesperson, current.kind) == (sales["Bruno"], AssignmentKind.SLA)
    patch, note = fake_kommo.received[3:]
    assert (patch.method, patch.path, patch.json()) == (
        "PATCH",
        "/api/v4/leads/9001",
        {"responsible_user_id": BRUNO_KOMMO, "updated_by": 0},
    )
    assert (note.method, note.path) == ("POST", "/api/v4/leads/notes")
    [note_body] = note.json()
    assert note_body["entity_id"] == 9001
    assert note_body["note_type"] == "common"
    assert note_body["params"]["text"].startswith(
        "Kommo Hub: lead reassigned to Bruno (reply SLA expired)."
    )
    assert "Ana did not reply within 30 working minutes." in note_body["params"]["text"]
    handoff = n8n_bodies(n8n)[1]
    assert handoff["action"] == "handoff"
    assert handoff["salesperson"]["name"] == "Bruno"
    assert handoff["lead"]["id"] == lead.pk
    assert handoff["handoff"]["reason"] == "sla"


def test_a_salesperson_reply_stops_the_sla(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send(client, FORMS_URL, json.dumps(FORM))
    reply = kommo_body(
        "message[add][0]",
        [
            ("id", "b1c2d3e4-0000-4000-8000-000000000001"),
            ("chat_id", "chat-1"),
            ("talk_id", "4821"),
            ("text", "Olá João, aqui é a Ana"),
            ("created_at", str(int((NOW + timedelta(minutes=5)).timestamp()))),
            ("element_type", "2"),
            ("element_id", "9001"),
            ("entity_type", "lead"),
            ("entity_id", "9001"),
            ("type", "outgoing"),
            ("author[id]", "9876501"),
            ("author[type]", "user"),
            ("author[name]", "Ana"),
        ],
    )
    send(client, KOMMO_URL, reply, content_type="application/x-www-form-urlencoded")
    assert Assignment.objects.get().responded_at is not None
    with time_machine.travel(NOW + timedelta(hours=2), tick=False), committed():
        assert routing_tick() == 0
    # Ana writing is also a takeover (the bot's tag and note go to Kommo), never a reassignment.
    assert [
        r.json()
        for r in fake_kommo.received
        if r.method == "PATCH" and "responsible_user_id" in r.json()
    ] == []


def status_event(lead_id: int, old: int, new: int, at: datetime, user: int) -> str:
    return kommo_body(
        "leads[status][0]",
        [
            ("id", str(lead_id)),
            ("status_id", str(new)),
            ("old_status_id", str(old)),
            ("pipeline_id", str(PIPELINE)),
            ("modified_user_id", str(user)),
            ("updated_at", str(int(at.timestamp()))),
        ],
    )


def test_the_echo_of_the_hubs_stage_write_does_not_stop_the_sla_but_a_person_moving_it_does(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    body = kommo_body("leads[add][0]", [("id", "5550003"), ("status_id", "111")])
    send(client, KOMMO_URL, body, content_type="application/x-www-form-urlencoded")
    assert fake_kommo.calls() == [("PATCH", "/api/v4/leads/5550003")]
    echo = status_event(5550003, 111, STAGE, NOW, ADMIN_KOMMO)
    send(client, KOMMO_URL, echo, content_type="application/x-www-form-urlencoded")
    assert Assignment.objects.get().responded_at is None
    later = NOW + timedelta(minutes=3)
    moved = status_event(5550003, STAGE, STAGE + 1, later, ANA_KOMMO)
    with time_machine.travel(later, tick=False):
        send(client, KOMMO_URL, moved, content_type="application/x-www-form-urlencoded")
    assert Assignment.objects.get().responded_at == later


def test_a_won_lead_frees_capacity_and_the_waiting_lead_is_assigned_at_once(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    for person in (sales["Ana"], sales["Bruno"]):
        person.max_open_leads = 1
        person.save()
    for n in range(3):
        send(client, FORMS_URL, json.dumps({**FORM, "telefone": f"(11) 9876-000{n}", "email": ""}))
    waiting = Assignment.objects.get(status="waiting")
    first = Lead.objects.order_by("pk").first()
    won = status_event(first.kommo_lead_id, STAGE, 142, NOW + timedelta(minutes=1), ANA_KOMMO)
    send(client, KOMMO_URL, won, content_type="application/x-www-form-urlencoded")
    current = Assignment.objects.get(lead=waiting.lead, is_current=True)
    assert (current.salesperson, current.kind) == (sales["Ana"], AssignmentKind.BACKLOG)
    handoffs = [b for b in n8n_bodies(n8n) if b["action"] == "handoff"]
    assert [h["lead"]["id"] for h in handoffs] == [waiting.lead_id]
