"""Every realistic payload in /work/shared/fixtures is accepted once, processed once, exactly."""

from decimal import Decimal

import pytest
from django.conf import settings

from kommo_hub.models import (
    Contact,
    Conversation,
    EventStatus,
    InboundEvent,
    InboundRequest,
    Lead,
    LeadNote,
    Message,
    OutboundAction,
)
from tests.conftest import SHARED_FIXTURES, shared_fixture

from .wire import FORM, JSON, KOMMO_URL, RDSTATION_URL, accepted, duplicate, post, utc

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = sorted(
    str(path.relative_to(SHARED_FIXTURES)) for path in SHARED_FIXTURES.glob("*/*") if path.is_file()
)


def _post_shared(client, relative: str):
    if relative.startswith("kommo/"):
        return post(client, KOMMO_URL, shared_fixture(relative), FORM)
    return post(client, RDSTATION_URL, shared_fixture(relative), JSON)


def test_the_shared_fixture_folder_holds_the_ten_known_payloads() -> None:
    assert SHARED == [
        "kommo/lead_add.form",
        "kommo/lead_responsible.form",
        "kommo/lead_status.form",
        "kommo/lead_status_digital_pipeline.form",
        "kommo/message_incoming_whatsapp.form",
        "kommo/message_outgoing_pausar.form",
        "kommo/note_lead.form",
        "kommo/talk_update.form",
        "rdstation/conversion_legacy.json",
        "rdstation/conversion_webhook_converted.json",
    ]


def test_tasks_run_inline_after_commit_in_these_tests() -> None:
    assert settings.TASKS_BACKEND == "immediate"


@pytest.mark.parametrize("relative", SHARED)
def test_every_shared_payload_is_accepted_and_processed(client, relative: str) -> None:
    response = _post_shared(client, relative)

    assert response.status_code == 200
    assert response.json() == accepted(1)
    event = InboundEvent.objects.get()
    assert event.status == EventStatus.PROCESSED
    assert event.attempts == 1
    assert event.last_error == ""
    assert event.processed_at is not None
    request = InboundRequest.objects.get()
    assert (request.accepted, request.duplicates) == (1, 0)
    assert request.body == shared_fixture(relative).decode()


@pytest.mark.parametrize("relative", SHARED)
def test_posting_a_shared_payload_twice_stores_the_duplicate_request_but_processes_once(
    client, relative: str
) -> None:
    _post_shared(client, relative)
    first = InboundEvent.objects.get()
    counts = (Lead.objects.count(), Message.objects.count(), LeadNote.objects.count())

    response = _post_shared(client, relative)

    assert response.status_code == 200
    assert response.json() == duplicate(1)
    again = InboundEvent.objects.get()
    assert again.pk == first.pk
    assert again.attempts == 1
    assert again.processed_at == first.processed_at
    assert (Lead.objects.count(), Message.objects.count(), LeadNote.objects.count()) == counts
    second = InboundRequest.objects.order_by("pk").last()
    assert (second.accepted, second.duplicates) == (0, 1)
    assert not second.events.exists()


def test_lead_add_creates_the_mirrored_lead_with_its_tags_and_utm(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    lead = Lead.objects.get()
    assert lead.kommo_lead_id == 18754321
    assert lead.name == "Lead #18754321"
    assert lead.source == "kommo"
    assert lead.kommo_status_id == 61234501
    assert lead.kommo_pipeline_id == 7654321
    assert lead.kommo_responsible_user_id == 9876543
    assert lead.price == Decimal("0.00")
    assert lead.tags == ["whatsapp"]
    assert lead.utm == {"utm_source": "instagram"}
    assert lead.fields == {}
    assert lead.deleted_in_kommo is False
    assert lead.kommo_updated_at == utc(1767261600)
    assert lead.contact is None
    event = InboundEvent.objects.get()
    assert event.event_type == "kommo.leads.add"
    assert event.dedupe_key == "kommo:31234567:leads:add:18754321:1767261600"
    assert event.external_id == "18754321"
    assert event.result == "lead updated; routed: waiting for someone available"
    assert event.lead == lead
    assert event.payload["custom_fields"]["0"]["values"]["0"]["value"] == "instagram"


def test_lead_status_moves_the_lead_to_the_new_stage(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))
    post(client, KOMMO_URL, shared_fixture("kommo/lead_status.form"))

    lead = Lead.objects.get()
    assert lead.kommo_status_id == 61234504
    assert lead.kommo_updated_at == utc(1767265200)
    assert lead.tags == ["whatsapp"]
    assert lead.utm == {"utm_source": "instagram"}
    assert InboundEvent.objects.filter(status=EventStatus.PROCESSED).count() == 2


def test_digital_pipeline_status_hook_with_only_ids_creates_a_bare_lead(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_status_digital_pipeline.form"))

    lead = Lead.objects.get()
    assert lead.kommo_lead_id == 18754321
    assert lead.name == ""
    assert lead.kommo_status_id == 61234504
    assert lead.kommo_pipeline_id == 7654321
    assert lead.kommo_responsible_user_id is None
    assert lead.kommo_updated_at is None
    assert InboundEvent.objects.get().event_type == "kommo.leads.status"


def test_lead_responsible_hands_the_lead_to_the_new_user(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_responsible.form"))

    lead = Lead.objects.get()
    assert lead.kommo_responsible_user_id == 9876599
    assert lead.kommo_status_id == 61234504
    assert lead.kommo_updated_at == utc(1767268800)
    assert InboundEvent.objects.get().event_type == "kommo.leads.responsible"


def test_incoming_whatsapp_message_is_stored_on_its_conversation(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/message_incoming_whatsapp.form"))

    message = Message.objects.get()
    assert message.external_id == "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a40"
    assert message.direction == Message.Direction.INCOMING
    assert message.author_kind == Message.AuthorKind.CUSTOMER
    assert message.author_id == "9d8c7b6a-1111-4222-8333-444455556666"
    assert message.author_name == "Maria Souza"
    assert message.message_type == "text"
    assert message.text == "Olá! Quero saber o preço do plano anual"
    assert message.attachment == {}
    assert message.sent_at == utc(1767272400)
    conversation = Conversation.objects.get()
    assert message.conversation == conversation
    assert conversation.chat_id == "a1b2c3d4-0000-4e5f-8a9b-112233445566"
    assert conversation.talk_id == 4821
    assert conversation.kommo_contact_id == 22334455
    assert conversation.origin == "waba"
    assert conversation.is_in_work is None
    assert conversation.last_incoming_at == utc(1767272400)
    lead = Lead.objects.get()
    assert conversation.lead == lead
    assert (lead.kommo_lead_id, lead.source) == (18754321, "kommo")
    event = InboundEvent.objects.get()
    assert event.dedupe_key == "kommo:31234567:message:3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a40"
    reply = OutboundAction.objects.get()
    assert event.result == (
        f"message stored; routed: waiting for someone available; reply #{reply.pk} scheduled"
    )
    assert event.lead == lead


def test_outgoing_salesperson_message_keeps_the_pausar_keyword_and_no_incoming_time(
    client,
) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/message_outgoing_pausar.form"))

    message = Message.objects.get()
    assert message.direction == Message.Direction.OUTGOING
    assert message.author_kind == Message.AuthorKind.SALESPERSON
    assert message.author_name == "Carlos Lima"
    assert message.text == "Oi Maria, aqui é o Carlos, vou te atender pessoalmente #pausar"
    assert message.sent_at == utc(1767272700)
    conversation = Conversation.objects.get()
    assert conversation.origin == "waba"
    assert conversation.last_incoming_at is None


def test_lead_note_is_stored_with_its_author_and_time(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/note_lead.form"))

    note = LeadNote.objects.get()
    assert note.kommo_note_id == 301234567
    assert note.kommo_lead_id == 18754321
    assert note.note_type == "4"
    assert note.text == "Cliente pediu proposta por e-mail"
    assert note.author_kommo_user_id == 9876599
    assert note.written_at == utc(1767269400)
    assert note.lead == Lead.objects.get(kommo_lead_id=18754321)
    event = InboundEvent.objects.get()
    assert event.event_type == "kommo.leads.note"
    assert event.dedupe_key == "kommo:31234567:leads:note:301234567"
    assert event.result == "note stored"


def test_talk_update_marks_the_conversation_in_work(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/talk_update.form"))

    conversation = Conversation.objects.get()
    assert conversation.chat_id == "a1b2c3d4-0000-4e5f-8a9b-112233445566"
    assert conversation.talk_id == 4821
    assert conversation.kommo_contact_id == 22334455
    assert conversation.origin == "waba"
    assert conversation.is_in_work is True
    assert conversation.lead == Lead.objects.get(kommo_lead_id=18754321)
    assert InboundEvent.objects.get().result == "conversation updated"


def test_message_then_talk_update_share_one_conversation(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/message_incoming_whatsapp.form"))
    post(client, KOMMO_URL, shared_fixture("kommo/message_outgoing_pausar.form"))
    post(client, KOMMO_URL, shared_fixture("kommo/talk_update.form"))

    conversation = Conversation.objects.get()
    assert conversation.is_in_work is True
    assert conversation.last_incoming_at == utc(1767272400)
    assert list(conversation.messages.values_list("direction", flat=True)) == ["in", "out"]
    assert Lead.objects.count() == 1


def test_rd_station_legacy_conversion_creates_a_normalized_lead_and_contact(client) -> None:
    post(client, RDSTATION_URL, shared_fixture("rdstation/conversion_legacy.json"), JSON)

    lead = Lead.objects.get()
    assert lead.source == "rdstation"
    assert lead.source_identifier == "form-contato-whatsapp"
    assert lead.name == "Maria Souza"
    assert (lead.phone, lead.phone_raw) == ("+5511987654321", "(11) 98765-4321")
    assert (lead.email, lead.email_raw) == ("maria.souza@example.com", "maria.souza@example.com")
    assert lead.utm == {
        "utm_source": "instagram",
        "utm_medium": "cpc",
        "utm_campaign": "jan26-leads",
    }
    assert lead.tags == ["whatsapp", "jan26"]
    assert lead.fields == {
        "Mensagem": "Quero uma demonstração",
        "traffic_source": "instagram",
        "Segmento": "Serviços",
        "company": "Souza Consultoria",
        "job_title": "Diretora",
        "city": "São Paulo",
        "state": "SP",
        "lead_stage": "Lead",
        "fit_score": "c",
        "interest": 20,
        "message": "Quero uma demonstração",
    }
    assert lead.kommo_lead_id is None
    contact = Contact.objects.get()
    assert lead.contact == contact
    assert (contact.name, contact.phone, contact.email) == (
        "Maria Souza",
        "+5511987654321",
        "maria.souza@example.com",
    )
    event = InboundEvent.objects.get()
    assert event.event_type == "rdstation.legacy_conversion"
    assert event.dedupe_key == (
        "rdstation:converted:b1f2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d:2026-01-01T09:00:00.000-03:00"
    )
    assert event.external_id == "b1f2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    assert event.result == "lead created; routed: waiting for someone available"
    assert event.lead == lead


def test_rd_station_converted_event_creates_a_lead_from_the_contact(client) -> None:
    post(client, RDSTATION_URL, shared_fixture("rdstation/conversion_webhook_converted.json"), JSON)

    lead = Lead.objects.get()
    assert lead.source == "rdstation"
    assert lead.source_identifier == "form-contato-whatsapp"
    assert lead.name == "Maria Souza"
    assert (lead.phone, lead.phone_raw) == ("+5511987654321", "(11) 98765-4321")
    assert lead.email == "maria.souza@example.com"
    assert lead.utm == {}
    assert lead.tags == ["whatsapp", "jan26"]
    assert lead.fields == {
        "cf_segmento": "Serviços",
        "job_title": "Diretora",
        "city": "São Paulo",
        "company": "Souza Consultoria",
        "origin": "Social | Instagram",
    }
    assert Contact.objects.get().phone == "+5511987654321"
    event = InboundEvent.objects.get()
    assert event.event_type == "rdstation.converted"
    assert event.dedupe_key == (
        "rdstation:converted:b1f2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d:2026-01-01T09:00:00.254-03:00"
    )


def test_both_rd_station_payloads_of_one_conversion_end_in_one_lead(client) -> None:
    post(client, RDSTATION_URL, shared_fixture("rdstation/conversion_legacy.json"), JSON)
    post(client, RDSTATION_URL, shared_fixture("rdstation/conversion_webhook_converted.json"), JSON)

    assert Lead.objects.count() == 1
    assert Contact.objects.count() == 1
    results = list(InboundEvent.objects.order_by("pk").values_list("result", flat=True))
    assert results == [
        "lead created; routed: waiting for someone available",
        "merged into a recent lead of the same person",
    ]
