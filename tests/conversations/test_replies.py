"""Flow 2: a customer's WhatsApp message → its lead, salesperson and area → one n8n `reply` per
burst of messages, built when it is sent. n8n and Kommo are real local HTTP servers."""

from typing import Any

import pytest
from django.test import Client

from botcontrol.models import ChangeVia
from kommo_hub.flows.bot import bot_manual_pause
from kommo_hub.intake.processing import event_replay
from kommo_hub.models import (
    ActionStatus,
    Contact,
    Conversation,
    EventStatus,
    InboundEvent,
    Lead,
    Message,
    OutboundAction,
)
from kommo_hub.ops.jobs import release_held_actions
from routing.models import Assignment
from tests.conftest import own_fixture
from tests.conversations.conftest import ANA_KOMMO, PIPELINE, STAGE
from tests.conversations.support import (
    CALLBACK_URL,
    CHAT,
    KOMMO_CONTACT,
    KOMMO_LEAD,
    N8N_SECRET,
    at,
    later,
    message_hook,
    n8n_bodies,
    send_hook,
    tick,
)
from tests.flows.fakes import FakeKommo
from tests.outbox.support import LocalHttpServer, committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

M1 = "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a40"
M2 = "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a41"
M3 = "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a42"
PRICE = "Olá! Quero saber o preço do plano anual"


def area_and_ana(sales: dict[str, Any]) -> dict[str, Any]:
    return {
        "area": {
            "slug": "vendas",
            "name": "Vendas",
            "ai_instructions": "Seja cordial.",
            "first_message_hint": "Agradeça o contato.",
        },
        "salesperson": {
            "id": sales["Ana"].pk,
            "name": "Ana",
            "kommo_user_id": ANA_KOMMO,
            "phone": "+5511900000000",
        },
    }


def test_a_customer_message_gets_exactly_one_reply_with_the_exact_envelope_after_the_window(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, PRICE))

    event = InboundEvent.objects.get()
    action = OutboundAction.objects.get(action="reply")
    conversation = Conversation.objects.get()
    message = Message.objects.get()
    lead = Lead.objects.get()
    assert (event.status, event.result) == (
        EventStatus.PROCESSED,
        f"message stored; routed to Ana; reply #{action.pk} scheduled",
    )
    assert (action.status, action.next_attempt_at) == (ActionStatus.PENDING, later(4))
    assert (action.conversation, action.lead) == (conversation, lead)
    tick(later(3.9))
    assert n8n.received == []

    tick(later(4))

    [reply] = n8n.received
    assert reply.headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert reply.json() == {
        "action": "reply",
        "idempotency_key": f"n8n:reply:{conversation.pk}:{message.pk}",
        "sent_at": "2026-11-25T13:00:04Z",
        "lead": {
            "id": lead.pk,
            "kommo_lead_id": KOMMO_LEAD,
            "kommo_contact_id": KOMMO_CONTACT,
            "name": "Maria Souza",
            "phone": "",
            "email": "",
            "source": "kommo",
            "utm": {},
            "fields": {},
        },
        **area_and_ana(sales),
        "conversation": {
            "chat_id": CHAT,
            "talk_id": 4821,
            "bot_state": "active",
            "window_open": True,
            "window_closes_at": "2026-11-26T13:00:00Z",
            "last_messages": [
                {
                    "direction": "in",
                    "text": PRICE,
                    "at": "2026-11-25T13:00:00Z",
                    "author": "customer",
                }
            ],
        },
        "message": {
            "id": M1,
            "text": PRICE,
            "at": "2026-11-25T13:00:00Z",
            "type": "text",
            "burst": [{"id": M1, "text": PRICE, "at": "2026-11-25T13:00:00Z", "type": "text"}],
        },
        "callback_url": CALLBACK_URL,
    }
    action.refresh_from_db()
    assert (action.status, action.attempts, action.delivered_at) == (
        ActionStatus.DONE,
        1,
        later(4),
    )
    # The lead was new to the hub: routed, its owner set in Kommo; the customer wrote first, so
    # there is no proactive message.
    assert fake_kommo.calls() == [("PATCH", f"/api/v4/leads/{KOMMO_LEAD}")]
    assert fake_kommo.received[0].json()["responsible_user_id"] == ANA_KOMMO
    assert [b["action"] for b in n8n_bodies(n8n)] == ["reply"]
    tick(later(60))
    assert len(n8n.received) == 1


def test_three_messages_in_two_seconds_get_one_reply_carrying_all_three(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    for seconds, (message_id, text) in enumerate(
        [(M1, "Oi"), (M2, "tudo bem?"), (M3, "queria saber o preço")]
    ):
        with at(later(seconds)):
            send_hook(client, message_hook(message_id, text, at=later(seconds)))

    action = OutboundAction.objects.get(action="reply")
    assert action.next_attempt_at == later(2 + 4)
    assert [e.result.rsplit("; ", 1)[-1] for e in InboundEvent.objects.order_by("pk")] == [
        f"reply #{action.pk} scheduled",
        f"joined reply #{action.pk}",
        f"joined reply #{action.pk}",
    ]
    tick(later(5.9))
    assert n8n.received == []
    tick(later(6))

    [reply] = n8n_bodies(n8n)
    assert reply["message"] == {
        "id": M3,
        "text": "queria saber o preço",
        "at": "2026-11-25T13:00:02Z",
        "type": "text",
        "burst": [
            {"id": M1, "text": "Oi", "at": "2026-11-25T13:00:00Z", "type": "text"},
            {"id": M2, "text": "tudo bem?", "at": "2026-11-25T13:00:01Z", "type": "text"},
            {
                "id": M3,
                "text": "queria saber o preço",
                "at": "2026-11-25T13:00:02Z",
                "type": "text",
            },
        ],
    }
    assert [m["text"] for m in reply["conversation"]["last_messages"]] == [
        "Oi",
        "tudo bem?",
        "queria saber o preço",
    ]
    assert OutboundAction.objects.filter(action="reply").count() == 1


def test_a_customer_who_keeps_writing_gets_the_reply_four_windows_after_the_first_message(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    for n in range(6):  # every 3 s: each message alone would push the reply 4 s further
        with at(later(3 * n)):
            send_hook(client, message_hook(f"{M1[:-2]}{n:02d}", f"parte {n}", at=later(3 * n)))

    assert OutboundAction.objects.get(action="reply").next_attempt_at == later(16)
    tick(later(15.9))
    assert n8n.received == []
    tick(later(16))
    [reply] = n8n_bodies(n8n)
    assert [m["text"] for m in reply["message"]["burst"]] == [f"parte {n}" for n in range(6)]


def test_a_message_after_the_reply_went_out_starts_a_second_burst_and_reply(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi"))
    tick(later(4))
    with at(later(10)):
        send_hook(client, message_hook(M2, "Qual o preço?", at=later(10)))
    tick(later(14))

    first, second = n8n_bodies(n8n)
    conversation = Conversation.objects.get()
    m1, m2 = Message.objects.order_by("pk")
    assert [first["idempotency_key"], second["idempotency_key"]] == [
        f"n8n:reply:{conversation.pk}:{m1.pk}",
        f"n8n:reply:{conversation.pk}:{m2.pk}",
    ]
    assert [m["text"] for m in first["message"]["burst"]] == ["Oi"]
    assert [m["text"] for m in second["message"]["burst"]] == ["Qual o preço?"]
    assert [m["text"] for m in second["conversation"]["last_messages"]] == ["Oi", "Qual o preço?"]
    assert list(OutboundAction.objects.filter(action="reply").values_list("status", flat=True)) == [
        ActionStatus.DONE,
        ActionStatus.DONE,
    ]


def test_a_message_while_the_due_reply_waits_for_the_sweep_joins_it(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi"))
    with at(later(5)):  # due at +4, not sent yet: it has not gone out, so the message joins
        send_hook(client, message_hook(M2, "alguém?", at=later(5)))
    assert OutboundAction.objects.get(action="reply").next_attempt_at == later(9)
    tick(later(9))
    [reply] = n8n_bodies(n8n)
    assert [m["text"] for m in reply["message"]["burst"]] == ["Oi", "alguém?"]


def test_the_same_message_delivered_twice_or_replayed_gets_one_reply(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    body = message_hook(M1, PRICE)
    send_hook(client, body)
    assert send_hook(client, body) == {"accepted": 0, "duplicates": 1}
    event = InboundEvent.objects.get()
    with committed():
        assert event_replay(event_ids=[event.pk]) == 1
    event.refresh_from_db()
    assert (event.status, event.result) == (EventStatus.PROCESSED, "message already stored")

    tick(later(4))
    with committed():
        event_replay(event_ids=[event.pk])
    tick(later(30))

    assert len(n8n_bodies(n8n, "reply")) == 1
    assert OutboundAction.objects.filter(action="reply").count() == 1
    assert Message.objects.count() == 1


def test_a_picture_without_text_is_passed_with_its_attachment(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    picture = {
        "type": "picture",
        "link": "https://amojo.kommo.com/attachments/a1b2c3d4/comprovante.jpg",
        "file_name": "comprovante.jpg",
    }
    send_hook(client, message_hook(M1, "", message_type="picture", attachment=picture))
    tick(later(4))

    [reply] = n8n_bodies(n8n)
    assert reply["message"] == {
        "id": M1,
        "text": "",
        "at": "2026-11-25T13:00:00Z",
        "type": "picture",
        "attachment": picture,
        "burst": [
            {
                "id": M1,
                "text": "",
                "at": "2026-11-25T13:00:00Z",
                "type": "picture",
                "attachment": picture,
            }
        ],
    }
    assert reply["conversation"]["last_messages"] == [
        {
            "direction": "in",
            "text": "",
            "at": "2026-11-25T13:00:00Z",
            "author": "customer",
            "attachment": picture,
        }
    ]


def test_a_reply_sent_more_than_24_hours_after_the_customer_wrote_says_the_window_is_closed(
    client: Client, settings: Any, fake_kommo: FakeKommo, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, PRICE))
    tick(later(4))  # n8n is not configured yet: the reply is kept
    action = OutboundAction.objects.get(action="reply")
    assert (action.status, action.held_reason) == (ActionStatus.HELD, "n8n not configured")

    with LocalHttpServer() as n8n:
        settings.N8N_WEBHOOK_URL = f"{n8n.url}/webhook/kommo-hub"
        settings.N8N_WEBHOOK_SECRET = N8N_SECRET
        with at(later(25 * 3600)), committed():
            assert release_held_actions() == 1

    [reply] = n8n_bodies(n8n)
    assert reply["sent_at"] == "2026-11-26T14:00:00Z"
    assert reply["conversation"]["window_open"] is False
    assert reply["conversation"]["window_closes_at"] == "2026-11-26T13:00:00Z"


def test_an_unknown_contact_becomes_a_routed_lead_and_gets_the_reply_without_a_proactive_message(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(
        client,
        message_hook(M1, "Oi, vi o anúncio", lead=None, contact=55500001),
    )

    lead = Lead.objects.get()
    assert (lead.source, lead.name, lead.phone, lead.kommo_lead_id) == (
        "whatsapp",
        "Maria Souza",
        "",
        9001,  # created in Kommo at once, with the chat's contact
    )
    assert lead.contact == Contact.objects.get(kommo_contact_id=55500001)
    assert Conversation.objects.get().lead == lead
    assert Assignment.objects.get(lead=lead).salesperson == sales["Ana"]
    assert fake_kommo.calls() == [("POST", "/api/v4/leads/complex")]
    [create] = fake_kommo.received[0].json()
    assert create["_embedded"]["contacts"] == [{"id": 55500001}]
    assert (create["responsible_user_id"], create["pipeline_id"], create["status_id"]) == (
        ANA_KOMMO,
        PIPELINE,
        STAGE,
    )
    event = InboundEvent.objects.get()
    action = OutboundAction.objects.get(action="reply")
    assert event.result == f"message stored; new lead; routed to Ana; reply #{action.pk} scheduled"

    tick(later(4))

    assert [b["action"] for b in n8n_bodies(n8n)] == ["reply"]
    [reply] = n8n_bodies(n8n)
    assert reply["lead"] == {
        "id": lead.pk,
        "kommo_lead_id": 9001,
        "kommo_contact_id": 55500001,
        "name": "Maria Souza",
        "phone": "",
        "email": "",
        "source": "whatsapp",
        "utm": {},
        "fields": {},
    }
    assert reply["salesperson"]["name"] == "Ana"


def test_the_next_message_of_a_known_contact_without_a_lead_in_the_hook_finds_its_lead(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi", lead=None, contact=55500001))
    tick(later(4))
    other_chat = "b2c3d4e5-0000-4e5f-8a9b-112233445566"
    with at(later(60)):
        send_hook(
            client, message_hook(M2, "Oi de novo", lead=None, contact=55500001, chat=other_chat)
        )
    assert Lead.objects.count() == 1
    assert Conversation.objects.get(chat_id=other_chat).lead == Lead.objects.get()
    assert Assignment.objects.count() == 1


def test_an_incoming_whatsapp_chat_in_unsorted_becomes_a_routed_lead_without_proactive_message(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, own_fixture("kommo/unsorted_add.form").decode())

    lead = Lead.objects.get()
    assert (lead.kommo_lead_id, lead.source, lead.name, lead.phone) == (
        18754400,
        "whatsapp",
        "João Pereira",
        "+5521998765432",
    )
    assert lead.contact.kommo_contact_id == 22334500
    assert InboundEvent.objects.get().result == "incoming lead recorded; routed to Ana"
    assert fake_kommo.calls() == [("PATCH", "/api/v4/leads/18754400")]
    tick(later(60))
    assert n8n.received == []  # it has a phone, but the customer wrote first


def test_a_paused_conversation_gets_no_reply(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi"))
    tick(later(4))
    conversation = Conversation.objects.get()
    with at(later(10)), committed():
        bot_manual_pause(conversation=conversation, via=ChangeVia.ADMIN, by_name="Gestora")
    with at(later(20)):
        send_hook(client, message_hook(M2, "Oi?", at=later(20)))
    tick(later(60))

    assert InboundEvent.objects.order_by("pk").last().result == (
        "message stored; bot paused: no reply"
    )
    assert len(n8n_bodies(n8n, "reply")) == 1
    assert OutboundAction.objects.filter(action="reply").count() == 1


def test_a_pause_between_the_message_and_the_send_skips_the_reply(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi"))
    conversation = Conversation.objects.get()
    with at(later(2)), committed():
        bot_manual_pause(conversation=conversation, via=ChangeVia.ADMIN, by_name="Gestora")
    tick(later(4))
    tick(later(600))

    action = OutboundAction.objects.get(action="reply")
    assert (action.status, action.held_reason, action.attempts, action.delivered_at) == (
        ActionStatus.SKIPPED,
        "skipped: bot paused",
        0,
        None,
    )
    assert n8n_bodies(n8n, "reply") == []
