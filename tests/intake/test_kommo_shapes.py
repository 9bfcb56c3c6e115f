"""Every other Kommo webhook shape the hub handles, in the same wire format as the captures."""

from decimal import Decimal

import pytest

from kommo_hub.models import (
    Contact,
    Conversation,
    EventStatus,
    InboundEvent,
    InboundRequest,
    Lead,
    Message,
)
from tests.conftest import own_fixture, shared_fixture

from .wire import ACCOUNT, KOMMO_URL, accepted, kommo_body, php_form, post, utc

pytestmark = pytest.mark.django_db(transaction=True)


def test_lead_update_rewrites_name_stage_price_tags_and_custom_fields(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    response = post(client, KOMMO_URL, own_fixture("kommo/lead_update.form"))

    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert lead.name == "Maria Souza - Plano anual"
    assert lead.kommo_status_id == 61234502
    assert lead.price == Decimal("1500.00")
    assert lead.tags == ["whatsapp", "plano-anual"]
    assert lead.utm == {"utm_source": "instagram", "utm_campaign": "jan26-leads"}
    assert lead.fields == {"Plano": "Anual"}
    assert lead.kommo_updated_at == utc(1767276000)
    event = InboundEvent.objects.get(event_type="kommo.leads.update")
    assert event.status == EventStatus.PROCESSED
    assert event.dedupe_key == "kommo:31234567:leads:update:18754321:1767276000"


def test_lead_delete_marks_the_mirrored_lead_deleted(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    response = post(client, KOMMO_URL, own_fixture("kommo/lead_delete.form"))

    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert lead.deleted_in_kommo is True
    assert lead.kommo_status_id == 61234501
    event = InboundEvent.objects.get(event_type="kommo.leads.delete")
    assert event.status == EventStatus.PROCESSED
    assert event.result == "lead marked deleted in Kommo"
    assert event.lead == lead


def test_contact_add_normalizes_phone_and_email_and_links_its_lead(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    response = post(client, KOMMO_URL, own_fixture("kommo/contact_add.form"))

    assert response.json() == accepted(1)
    contact = Contact.objects.get()
    assert contact.kommo_contact_id == 22334455
    assert contact.name == "Maria Souza"
    assert (contact.phone, contact.phone_raw) == ("+5511987654321", "(11) 98765-4321")
    assert (contact.email, contact.email_raw) == (
        "maria.souza@example.com",
        "Maria.Souza@Example.COM",
    )
    assert contact.kommo_updated_at == utc(1767261700)
    lead = Lead.objects.get()
    assert lead.contact == contact
    assert (lead.phone, lead.phone_raw) == ("+5511987654321", "(11) 98765-4321")
    assert (lead.email, lead.email_raw) == ("maria.souza@example.com", "Maria.Souza@Example.COM")
    event = InboundEvent.objects.get(event_type="kommo.contacts.add")
    assert event.status == EventStatus.PROCESSED
    assert event.result == f"contact {contact.pk} updated"


def test_contact_add_before_its_lead_exists_stores_the_contact_alone(client) -> None:
    post(client, KOMMO_URL, own_fixture("kommo/contact_add.form"))

    assert Contact.objects.get().phone == "+5511987654321"
    assert not Lead.objects.exists()


def test_contact_update_changes_name_and_phone_and_keeps_the_email(client) -> None:
    post(client, KOMMO_URL, own_fixture("kommo/contact_add.form"))

    response = post(client, KOMMO_URL, own_fixture("kommo/contact_update.form"))

    assert response.json() == accepted(1)
    contact = Contact.objects.get()
    assert contact.name == "Maria Souza Lima"
    assert (contact.phone, contact.phone_raw) == ("+5521998765432", "+55 21 99876-5432")
    assert contact.email == "maria.souza@example.com"
    assert contact.kommo_updated_at == utc(1767276000)
    assert InboundEvent.objects.get(event_type="kommo.contacts.update").status == (
        EventStatus.PROCESSED
    )


def test_a_company_sent_as_contacts_add_is_ignored_and_mirrors_nothing(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    response = post(client, KOMMO_URL, own_fixture("kommo/company_add.form"))

    assert response.json() == accepted(1)
    event = InboundEvent.objects.get(event_type="kommo.contacts.add")
    assert event.status == EventStatus.IGNORED
    assert event.result == "company events are not mirrored"
    assert not Contact.objects.exists()
    assert Lead.objects.get().contact is None


def test_unsorted_add_records_the_incoming_lead(client) -> None:
    response = post(client, KOMMO_URL, own_fixture("kommo/unsorted_add.form"))

    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert (lead.kommo_lead_id, lead.source, lead.name) == (18754400, "whatsapp", "João Pereira")
    assert (lead.phone, lead.contact.kommo_contact_id) == ("+5521998765432", 22334500)
    event = InboundEvent.objects.get()
    assert event.event_type == "kommo.unsorted.add"
    assert event.status == EventStatus.PROCESSED
    assert event.result == "incoming lead recorded; routed: waiting for someone available"
    assert event.external_id == "5c1e2f70-8a9b-4c3d-9e0f-a1b2c3d4e5f6"
    assert event.lead == lead


def test_unsorted_add_without_a_lead_id_is_ignored(client) -> None:
    body = kommo_body(
        "unsorted[add][0]",
        [("uid", "77aa"), ("category", "forms"), ("pipeline_id", "7654321")],
    )

    response = post(client, KOMMO_URL, body)

    assert response.json() == accepted(1)
    event = InboundEvent.objects.get()
    assert event.status == EventStatus.IGNORED
    assert event.result == "incoming lead without a lead id yet"
    assert not Lead.objects.exists()


def test_talk_add_opens_a_conversation_on_its_lead(client) -> None:
    response = post(client, KOMMO_URL, own_fixture("kommo/talk_add.form"))

    assert response.json() == accepted(1)
    conversation = Conversation.objects.get()
    assert conversation.chat_id == "b2c3d4e5-1111-4e5f-8a9b-223344556677"
    assert conversation.talk_id == 4822
    assert conversation.kommo_contact_id == 22334500
    assert conversation.origin == "waba"
    assert conversation.is_in_work is False
    assert conversation.last_incoming_at is None
    assert conversation.lead == Lead.objects.get(kommo_lead_id=18754400)
    event = InboundEvent.objects.get()
    assert (event.event_type, event.status) == ("kommo.talk.add", EventStatus.PROCESSED)
    assert event.dedupe_key == "kommo:31234567:talk:add:4822:1767280000"


def test_talk_without_chat_id_is_ignored(client) -> None:
    body = kommo_body("talk[add][0]", [("talk_id", "4900"), ("updated_at", "1767280000")])

    post(client, KOMMO_URL, body)

    event = InboundEvent.objects.get()
    assert (event.status, event.result) == (EventStatus.IGNORED, "talk without chat id")
    assert not Conversation.objects.exists()


def test_a_batched_body_becomes_one_event_per_item(client) -> None:
    response = post(client, KOMMO_URL, own_fixture("kommo/batch_two_leads_one_contact.form"))

    assert response.status_code == 200
    assert response.json() == accepted(3)
    request = InboundRequest.objects.get()
    assert (request.accepted, request.duplicates) == (3, 0)
    events = list(InboundEvent.objects.order_by("pk"))
    assert [(e.event_type, e.external_id, e.status) for e in events] == [
        ("kommo.leads.add", "18754501", EventStatus.PROCESSED),
        ("kommo.leads.add", "18754502", EventStatus.PROCESSED),
        ("kommo.contacts.add", "22334502", EventStatus.PROCESSED),
    ]
    assert all(e.request_id == request.pk for e in events)
    first, second = (
        Lead.objects.get(kommo_lead_id=18754501),
        Lead.objects.get(kommo_lead_id=18754502),
    )
    contact = Contact.objects.get()
    assert (contact.kommo_contact_id, contact.name, contact.phone) == (
        22334502,
        "Pedro Alves",
        "+5531988887777",
    )
    assert first.tags == ["whatsapp"]
    assert first.contact is None
    assert second.contact == contact
    assert second.phone == "+5531988887777"


def test_a_batch_posted_again_counts_every_item_as_a_duplicate(client) -> None:
    post(client, KOMMO_URL, own_fixture("kommo/batch_two_leads_one_contact.form"))

    response = post(client, KOMMO_URL, own_fixture("kommo/batch_two_leads_one_contact.form"))

    assert response.json() == {"accepted": 0, "duplicates": 3}
    assert InboundEvent.objects.count() == 3


def test_a_batch_with_one_new_item_accepts_only_that_one(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))
    body = (
        shared_fixture("kommo/lead_add.form").decode().strip()
        + "&"
        + php_form([("leads[add][1][id]", "18754999"), ("leads[add][1][updated_at]", "1767261600")])
    )

    response = post(client, KOMMO_URL, body)

    assert response.json() == {"accepted": 1, "duplicates": 1}
    assert set(Lead.objects.values_list("kommo_lead_id", flat=True)) == {18754321, 18754999}


def test_a_media_message_keeps_its_attachment_and_empty_text(client) -> None:
    response = post(client, KOMMO_URL, own_fixture("kommo/message_media.form"))

    assert response.json() == accepted(1)
    message = Message.objects.get()
    assert message.text == ""
    assert message.message_type == "picture"
    assert message.attachment == {
        "type": "picture",
        "link": "https://amojo.kommo.com/attachments/a1b2c3d4/comprovante.jpg",
        "file_name": "comprovante.jpg",
    }
    assert message.direction == Message.Direction.INCOMING
    assert Conversation.objects.get().last_incoming_at == utc(1767272460)


def test_an_outgoing_bot_message_is_recorded_as_the_bot(client) -> None:
    response = post(client, KOMMO_URL, own_fixture("kommo/message_outgoing_bot.form"))

    assert response.json() == accepted(1)
    message = Message.objects.get()
    assert message.direction == Message.Direction.OUTGOING
    assert message.author_kind == Message.AuthorKind.BOT
    assert (message.author_id, message.author_name) == ("0", "Salesbot")
    assert message.text == "Olá Maria! Sou o assistente virtual. Qual plano te interessa?"
    assert message.sent_at == utc(1767272430)
    assert Conversation.objects.get().last_incoming_at is None


def test_an_older_message_does_not_move_the_last_incoming_time_back(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/message_incoming_whatsapp.form"))
    older = (
        shared_fixture("kommo/message_incoming_whatsapp.form")
        .replace(b"3f0c9a7e-2b6d", b"00000000-2b6d")
        .replace(b"1767272400", b"1767270000")
    )

    post(client, KOMMO_URL, older)

    assert Message.objects.count() == 2
    assert Conversation.objects.get().last_incoming_at == utc(1767272400)


@pytest.mark.parametrize(
    ("fixture", "event_type"),
    [
        ("kommo/task_add.form", "kommo.task.add"),
        ("kommo/catalog_element_add.form", "kommo.catalogs.add"),
    ],
)
def test_an_event_type_the_hub_does_not_handle_is_stored_as_ignored(
    client, fixture: str, event_type: str
) -> None:
    response = post(client, KOMMO_URL, own_fixture(fixture))

    assert response.status_code == 200
    assert response.json() == accepted(1)
    event = InboundEvent.objects.get()
    assert event.event_type == event_type
    assert event.status == EventStatus.IGNORED
    assert event.result == "no handler for this event type"
    assert event.attempts == 0
    assert not Lead.objects.exists()


def test_a_lead_with_400_custom_fields_is_accepted_despite_django_field_limit(client) -> None:
    fields = [("id", "18755000"), ("name", "Lead grande"), ("updated_at", "1767261600")]
    for index in range(400):
        fields += [
            (f"custom_fields][{index}][id", str(2000000 + index)),
            (f"custom_fields][{index}][name", f"Campo {index}"),
            (f"custom_fields][{index}][values][0][value", f"valor {index}"),
        ]
    body = kommo_body("leads[add][0]", fields)
    assert body.count("&") + 1 > 1000

    response = post(client, KOMMO_URL, body)

    assert response.status_code == 200
    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert len(lead.fields) == 400
    assert lead.fields["Campo 0"] == "valor 0"
    assert lead.fields["Campo 399"] == "valor 399"


def test_two_digital_pipeline_moves_of_one_lead_are_two_events(client) -> None:
    first = shared_fixture("kommo/lead_status_digital_pipeline.form")
    second = first.replace(b"%5Bstatus_id%5D=61234504", b"%5Bstatus_id%5D=61234505").replace(
        b"%5Bold_status_id%5D=61234501", b"%5Bold_status_id%5D=61234504"
    )
    assert second != first
    post(client, KOMMO_URL, first)

    response = post(client, KOMMO_URL, second)

    assert response.json() == accepted(1)
    assert Lead.objects.get().kommo_status_id == 61234505


def test_kommo_json_bodies_are_accepted_too(client) -> None:
    body = {
        "account": {"id": "31234567", "subdomain": "acmevendas"},
        "leads": {"add": [{"id": "18756000", "name": "Lead JSON", "updated_at": "1767261600"}]},
    }

    response = client.post(KOMMO_URL, body, content_type="application/json")

    assert response.json() == accepted(1)
    assert Lead.objects.get().name == "Lead JSON"


def test_account_block_alone_is_a_bad_request_naming_the_problem(client) -> None:
    response = post(client, KOMMO_URL, php_form(ACCOUNT))

    assert response.status_code == 400
    assert response.json() == {
        "error": "no events in the body: expected keys like leads[add][0][id]"
    }
    assert not InboundRequest.objects.exists()


def test_a_scalar_beside_the_entity_groups_is_skipped(client) -> None:
    body = shared_fixture("kommo/lead_add.form").decode().strip() + "&hook_version=2"

    response = post(client, KOMMO_URL, body)

    assert response.json() == accepted(1)
    assert InboundEvent.objects.get().event_type == "kommo.leads.add"
