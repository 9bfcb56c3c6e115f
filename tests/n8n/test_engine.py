"""n8n/kommo_hub.workflow.json in the real n8n 1.123.81, end to end with the real hub.

The hub (gunicorn + a task worker on the test database) delivers its real envelopes to n8n's
production webhook; n8n claims the action at the hub, asks the AI fake, sends on the WhatsApp
fake, writes the Kommo note on the Kommo fake, books through the hub's scheduling API and calls
back; the hub records the callback. Envelopes posted straight to n8n cover what the hub never
sends twice on its own (duplicates, unknown actions, a wrong secret).
"""

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from kommo_hub.flows.leads import area_block, salesperson_block
from kommo_hub.flows.reminders import appointment_block
from kommo_hub.models import (
    ActionStatus,
    ActionTarget,
    Alert,
    ApiKey,
    Conversation,
    Lead,
    Message,
    OutboundAction,
)
from kommo_hub.outbox.delivery import _n8n_envelope
from kommo_hub.outbox.envelope import envelope_build
from kommo_hub.outbox.services import action_enqueue
from kommo_hub.tasks import deliver_outbound_action
from routing.models import Salesperson
from scheduling.models import Appointment, AppointmentStatus
from tests.factories import LeadFactory
from tests.n8n.conftest import TEMPLATE_NAME, Hub, N8n
from tests.n8n.fakes import FakeApis, Recorded
from tests.scheduling.booking_support import Team, team_build
from tests.system.processes import wait_until

pytestmark = [pytest.mark.n8n, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

AI_TEXT = "Olá, Maria! O plano anual sai por R$ 99 ao mês. Posso ajudar em algo mais?"
AI_ANSWER = json.dumps({"text": AI_TEXT, "handoff": False})
LEAD_DIGITS = "5511987654321"
SALESPERSON_DIGITS = "5511911112222"
SETTLE = 60.0  # seconds for delivery → n8n → callback → the hub recording it


# --- the data ------------------------------------------------------------------------------------


def team() -> Team:
    built = team_build()
    built.area.ai_instructions = "Fale do plano anual com desconto."
    built.area.first_message_hint = "Pergunte quantos funcionários a empresa tem."
    built.area.save()
    Salesperson.objects.filter(pk=built.ana.pk).update(phone="+55 11 91111-2222")
    built.ana.refresh_from_db()
    Lead.objects.filter(pk=built.lead.pk).update(phone="+5511987654321", name="Maria Oliveira")
    built.lead.refresh_from_db()
    return built


def conversation(
    lead: Lead, *, customer_wrote: timedelta, text: str
) -> tuple[Conversation, Message]:
    at = timezone.now() - customer_wrote
    chat = Conversation.objects.create(
        chat_id=f"chat-{lead.pk}", talk_id=4821, lead=lead, origin="waba", last_incoming_at=at
    )
    message = Message.objects.create(
        conversation=chat,
        external_id=f"msg-{lead.pk}-1",
        direction=Message.Direction.INCOMING,
        author_kind=Message.AuthorKind.CUSTOMER,
        author_name=lead.name,
        message_type="text",
        text=text,
        sent_at=at,
    )
    return chat, message


def reply_action(chat: Conversation, message: Message, lead: Lead) -> OutboundAction:
    """The burst's reply, as reply_schedule stores it (the envelope is built when sent)."""
    key = f"n8n:reply:{chat.pk}:{message.pk}"
    return OutboundAction.objects.create(
        idempotency_key=key,
        target=ActionTarget.N8N,
        action="reply",
        payload={"action": "reply", "idempotency_key": key, "burst": {"messages": [message.pk]}},
        lead=lead,
        conversation=chat,
        next_attempt_at=timezone.now(),
    )


def deliver(action: OutboundAction) -> None:
    """Hand the action to the hub's worker (the database queue)."""
    deliver_outbound_action.enqueue(action.pk)


def enqueue(action: str, key: str, lead: Lead, **blocks: Any) -> OutboundAction:
    created, _new = action_enqueue(
        target=ActionTarget.N8N,
        action=action,
        idempotency_key=key,
        payload=envelope_build(action=action, idempotency_key=key, lead=lead, **blocks),
        lead=lead,
    )
    return created


def settled(action: OutboundAction, status: str = "done", *, hub: Hub) -> OutboundAction:
    """The action once the hub has recorded n8n's callback with `status`."""

    def recorded() -> OutboundAction | None:
        row = OutboundAction.objects.get(pk=action.pk)
        statuses = [c.get("status") for c in row.result.get("callbacks", [])]
        return row if status in statuses else None

    row: OutboundAction = wait_until(
        recorded, timeout=SETTLE, what=f"n8n's {status} callback", hub=hub.processes
    )
    return row


def only(requests: list[Recorded]) -> Recorded:
    assert len(requests) == 1, [r.body for r in requests]
    return requests[0]


def template_text(request: Recorded) -> str:
    assert request.body["type"] == "template"
    assert request.body["template"]["name"] == TEMPLATE_NAME
    assert request.body["template"]["language"] == {"code": "pt_BR"}
    (component,) = request.body["template"]["components"]
    (parameter,) = component["parameters"]
    return str(parameter["text"])


# --- reply and proactive_message -----------------------------------------------------------------


def test_a_reply_inside_the_window_sends_the_ai_text_notes_it_and_the_hub_records_it(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    apis.behaviour.ai_answer = AI_ANSWER
    crew = team()
    chat, message = conversation(
        crew.lead, customer_wrote=timedelta(minutes=3), text="Quanto custa?"
    )
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, hub=hub)

    prompt = only(apis.ai()).body
    assert prompt["model"] == "gpt-4o-mini"
    system, user = prompt["messages"]
    assert "português do Brasil" in system["content"]
    assert "Fale do plano anual com desconto." in system["content"]
    assert "Última mensagem do cliente: Quanto custa?" in user["content"]
    sent = only(apis.whatsapp()).body
    assert sent == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": LEAD_DIGITS,
        "type": "text",
        "text": {"preview_url": False, "body": AI_TEXT},
    }
    note = only(apis.notes())
    assert note.path == "/kommo/api/v4/leads/18754321/notes"
    assert note.body == [
        {
            "note_type": "common",
            "params": {"text": f"Mensagem enviada pelo assistente (WhatsApp): {AI_TEXT}"},
        }
    ]
    assert row.status == ActionStatus.DONE
    assert row.callback_status == "done"
    assert row.result["reply_text"] == AI_TEXT
    assert re.fullmatch(r"wamid\.TEST\d+", row.result["whatsapp_message_id"])
    assert row.result["kommo_note_id"] > 7000
    bot = Message.objects.get(conversation=chat, author_kind=Message.AuthorKind.BOT)
    assert bot.text == AI_TEXT
    assert row.sent_message_id == bot.pk


def test_a_proactive_message_without_a_conversation_goes_as_the_approved_template(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    apis.behaviour.ai_answer = AI_ANSWER
    crew = team()
    action = enqueue(
        "proactive_message",
        f"n8n:proactive_message:lead:{crew.lead.pk}",
        crew.lead,
        area=area_block(crew.area),
        salesperson=salesperson_block(crew.ana),
    )

    row = settled(action, hub=hub)

    system = only(apis.ai()).body["messages"][0]["content"]
    assert "primeira mensagem" in system
    assert "Pergunte quantos funcionários a empresa tem." in system
    sent = only(apis.whatsapp())
    assert sent.body["to"] == LEAD_DIGITS
    assert template_text(sent) == AI_TEXT
    assert only(apis.notes()).body[0]["params"]["text"] == (
        "Mensagem enviada pelo assistente (WhatsApp) (modelo aprovado, fora da janela de 24 h): "
        + AI_TEXT
    )
    assert row.callback_status == "done"
    assert row.result["reply_text"] == AI_TEXT


def test_the_anthropic_provider_writes_the_reply_through_the_messages_api(
    n8n_anthropic: N8n, hub_for_anthropic: Hub, apis: FakeApis
) -> None:
    apis.behaviour.ai_answer = AI_ANSWER
    crew = team()
    chat, message = conversation(crew.lead, customer_wrote=timedelta(minutes=3), text="Oi")
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, hub=hub_for_anthropic)

    request = only(apis.ai())
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "test-anthropic-key"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body["model"] == "claude-3-5-haiku-latest"
    assert "português do Brasil" in request.body["system"]
    assert only(apis.whatsapp()).body["text"]["body"] == AI_TEXT
    assert row.result["reply_text"] == AI_TEXT


# --- schedule ------------------------------------------------------------------------------------

OFFERED = re.compile(r"^- start=(\S+) ", re.MULTILINE)


def test_a_schedule_the_customer_accepted_is_booked_once_through_the_hub_api(
    n8n: N8n, hub: Hub, apis: FakeApis, settings: Any
) -> None:
    offered: list[str] = []

    def accept_the_first_slot(prompt: str) -> str:
        offered[:] = OFFERED.findall(prompt)
        return json.dumps({"text": "Combinado!", "accepted_slot": offered[0], "handoff": False})

    apis.behaviour.ai_answer = accept_the_first_slot
    crew = team()
    chat, message = conversation(
        crew.lead, customer_wrote=timedelta(minutes=1), text="Quero agendar uma reunião"
    )
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, hub=hub)

    assert len(offered) == 5
    appointment = Appointment.objects.get()
    assert appointment.lead_id == crew.lead.pk
    assert appointment.salesperson_id == crew.ana.pk
    assert appointment.status == AppointmentStatus.BOOKED
    assert appointment.idempotency_key == action.idempotency_key
    assert appointment.starts_at == datetime.fromisoformat(offered[0])
    text = only(apis.whatsapp()).body["text"]["body"]
    assert text.startswith("Perfeito, Maria! Sua reunião com Ana Souza está confirmada para ")
    assert only(apis.notes()).body[0]["params"]["text"] == (
        f"Agendamento pelo assistente (WhatsApp): {text}"
    )
    assert row.result["appointment"]["id"] == appointment.pk
    assert row.result["reply_text"] == text

    # The same envelope again (a duplicate delivery): no second booking, no second message.
    settings.HUB_PUBLIC_URL = hub.base
    again = n8n.post(_n8n_envelope(row))
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "reason": "already done"}
    assert Appointment.objects.count() == 1
    assert len(apis.whatsapp()) == 1


def test_a_slot_taken_meanwhile_gets_the_hubs_alternatives_and_no_second_booking(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    crew = team()
    offered: list[str] = []

    def someone_books_it_first(prompt: str) -> str:
        offered[:] = OFFERED.findall(prompt)
        start = datetime.fromisoformat(offered[0])
        try:  # this runs in the fake's thread: its own database connection
            Appointment.objects.create(
                lead=LeadFactory(),
                salesperson=crew.ana,
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                status=AppointmentStatus.BOOKED,
            )
        finally:
            db_connection.close()
        return json.dumps({"text": "Combinado!", "accepted_slot": offered[0]})

    apis.behaviour.ai_answer = someone_books_it_first
    chat, message = conversation(
        crew.lead, customer_wrote=timedelta(minutes=1), text="Quero agendar uma reunião"
    )
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, hub=hub)

    assert Appointment.objects.count() == 1  # the one booked meanwhile
    assert not Appointment.objects.filter(lead=crew.lead).exists()
    text = only(apis.whatsapp()).body["text"]["body"]
    assert text.startswith("Esse horário acabou de ser reservado. Tenho estes disponíveis: ")
    assert row.result.get("appointment") is None
    assert ApiKey.objects.get().last_used_at is not None  # n8n did try to book


@pytest.mark.parametrize(
    ("text", "told"),
    [
        ("Preciso remarcar a reunião", "remarcar a reunião"),
        ("Quero cancelar a reunião", "confirmar o cancelamento"),
    ],
)
def test_moving_or_cancelling_a_meeting_goes_to_a_person_and_books_nothing(
    n8n: N8n, hub: Hub, apis: FakeApis, text: str, told: str
) -> None:
    apis.behaviour.ai_answer = lambda prompt: json.dumps(
        {"text": "Remarcado!", "accepted_slot": (OFFERED.findall(prompt) or [None])[0]}
    )
    crew = team()
    chat, message = conversation(crew.lead, customer_wrote=timedelta(minutes=1), text=text)
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, "handoff", hub=hub)

    assert not Appointment.objects.exists()
    assert ApiKey.objects.get().last_used_at is None
    to_customer = [r for r in apis.whatsapp() if r.body["to"] == LEAD_DIGITS]
    expected = f"Certo! Vou pedir para o seu consultor {told} com você."
    assert [r.body["text"]["body"] for r in to_customer] == [expected]
    assert row.result["reply_text"] == expected


INVENTIONS = {
    "a slot it was not sent": lambda first: json.dumps(
        {"text": "Fechado para as 23h!", "accepted_slot": "2026-12-31T23:00:00-03:00"}
    ),
    "a sent slot but another time in the text": lambda first: json.dumps(
        {"text": "Posso às 23h ou no primeiro horário.", "proposed_slots": [first]}
    ),
    "no JSON at all": lambda first: "Que tal amanhã às 23h?",
}


@pytest.mark.parametrize("invention", INVENTIONS)
def test_a_schedule_where_the_ai_invents_a_time_is_never_booked_and_proposes_the_sent_slots(
    n8n: N8n, hub: Hub, apis: FakeApis, invention: str
) -> None:
    offered: list[str] = []

    def invent_a_time(prompt: str) -> str:
        offered[:] = OFFERED.findall(prompt)
        return INVENTIONS[invention](offered[0])

    apis.behaviour.ai_answer = invent_a_time
    crew = team()
    chat, message = conversation(
        crew.lead, customer_wrote=timedelta(minutes=1), text="Quero agendar uma reunião"
    )
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, hub=hub)

    assert not Appointment.objects.exists()
    assert ApiKey.objects.get().last_used_at is None  # the booking API was never called
    text = only(apis.whatsapp()).body["text"]["body"]
    assert text.startswith("Tenho estes horários disponíveis: ")
    assert text.count(" às ") == len(offered) == 5
    assert "23h" not in text
    assert row.result["reply_text"] == text
    assert row.result.get("appointment") is None


# --- reminder and handoff ------------------------------------------------------------------------


def test_a_reminder_outside_the_window_goes_as_the_template_with_a_kommo_note(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    crew = team()
    conversation(crew.lead, customer_wrote=timedelta(days=2), text="Obrigada")
    start = timezone.now() + timedelta(days=1)
    appointment = Appointment.objects.create(
        lead=crew.lead,
        salesperson=crew.ana,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        status=AppointmentStatus.BOOKED,
    )
    action = enqueue(
        "reminder",
        f"n8n:reminder:{appointment.pk}:1440:x",
        crew.lead,
        area=area_block(crew.area),
        salesperson=salesperson_block(crew.ana),
        appointment=appointment_block(appointment),
        reminder={"offset_minutes": 1440},
    )

    row = settled(action, hub=hub)

    assert apis.ai() == []
    sent = only(apis.whatsapp())
    assert sent.body["to"] == LEAD_DIGITS
    text = template_text(sent)
    assert text.startswith("Olá, Maria! Lembrete: sua reunião com Ana Souza é ")
    assert "(horário de Brasília)" in text
    assert only(apis.notes()).body[0]["params"]["text"].startswith("Lembrete enviado (WhatsApp)")
    assert row.callback_status == "done"


def test_a_handoff_tells_the_salesperson_on_whatsapp_and_nothing_is_said_to_the_customer(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    crew = team()
    chat, _message = conversation(
        crew.lead, customer_wrote=timedelta(minutes=5), text="Quero falar com alguém"
    )
    action = enqueue(
        "handoff",
        f"n8n:handoff:bot:{crew.lead.pk}",
        crew.lead,
        area=area_block(crew.area),
        salesperson=salesperson_block(crew.ana),
        handoff={"reason": "ai_handoff", "explanation": "o cliente pediu uma pessoa"},
    )

    row = settled(action, hub=hub)

    sent = only(apis.whatsapp())
    assert sent.body["to"] == SALESPERSON_DIGITS
    text = template_text(sent)
    assert text.startswith("Kommo Hub: o lead Maria Oliveira precisa de você.")
    assert "Motivo: o cliente pediu uma pessoa." in text
    assert 'Última mensagem: "Quero falar com alguém".' in text
    assert apis.notes() == []  # the hub writes the handoff note itself
    assert row.callback_status == "done"
    assert row.result.get("reply_text") is None
    assert not Message.objects.filter(
        conversation=chat, author_kind=Message.AuthorKind.BOT
    ).exists()


def test_the_ai_asking_for_a_person_hands_the_conversation_over_and_the_salesperson_is_told(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    apis.behaviour.ai_answer = json.dumps(
        {
            "text": "Vou chamar um consultor para continuar com você.",
            "handoff": True,
            "handoff_reason": "cliente pediu para falar com uma pessoa",
        }
    )
    crew = team()
    chat, message = conversation(
        crew.lead, customer_wrote=timedelta(minutes=1), text="Quero falar com um humano"
    )
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, "handoff", hub=hub)

    assert row.result["reply_text"] == "Vou chamar um consultor para continuar com você."
    assert row.result["error"] == "cliente pediu para falar com uma pessoa"

    def salesperson_told() -> list[Recorded]:
        return [r for r in apis.whatsapp() if r.body["to"] == SALESPERSON_DIGITS]

    told = wait_until(salesperson_told, timeout=SETTLE, what="the handoff", hub=hub.processes)
    assert "Kommo Hub: o lead Maria Oliveira precisa de você." in template_text(told[0])
    customer = [r for r in apis.whatsapp() if r.body["to"] == LEAD_DIGITS]
    assert [r.body["text"]["body"] for r in customer] == [
        "Vou chamar um consultor para continuar com você."
    ]


# --- failures ------------------------------------------------------------------------------------


def test_the_ai_down_ends_in_a_retryable_failed_callback_and_the_redelivery_sends_once(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    apis.behaviour.ai_status = 500
    crew = team()
    chat, message = conversation(crew.lead, customer_wrote=timedelta(minutes=3), text="Oi")
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    failed = settled(action, "failed", hub=hub)

    first = failed.result["callbacks"][0]
    assert (first["status"], first["retryable"]) == ("failed", True)
    assert failed.result["error"].startswith("AI OpenAI: 500")
    assert apis.whatsapp() == []
    assert not Message.objects.filter(
        conversation=chat, author_kind=Message.AuthorKind.BOT
    ).exists()

    # The AI is back: the hub's redelivery passes the claim (the failed one freed it) and sends.
    apis.behaviour.ai_status = 200
    apis.behaviour.ai_answer = AI_ANSWER
    done = settled(action, "done", hub=hub)

    assert len(apis.ai()) >= 2
    assert only(apis.whatsapp()).body["text"]["body"] == AI_TEXT
    assert done.status == ActionStatus.DONE
    assert done.result["reply_text"] == AI_TEXT
    assert not Alert.objects.exists()


def test_whatsapp_refusing_the_message_ends_in_a_failed_callback_without_a_note(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    apis.behaviour.ai_answer = AI_ANSWER
    apis.behaviour.whatsapp_status = 400
    crew = team()
    chat, message = conversation(crew.lead, customer_wrote=timedelta(minutes=3), text="Oi")
    action = reply_action(chat, message, crew.lead)

    deliver(action)
    row = settled(action, "failed", hub=hub)

    assert row.result["error"].startswith("WhatsApp send: 400")
    assert row.result["callbacks"][0]["retryable"] is False
    assert row.status == ActionStatus.DONE  # delivered; n8n's report is the failure
    assert len(apis.whatsapp()) == 1
    assert apis.notes() == []
    (alert,) = Alert.objects.filter(kind=Alert.Kind.N8N_FAILED)
    assert "WhatsApp send: 400" in alert.message


# --- straight to n8n: duplicates, unknown actions, the secret ------------------------------------


def test_the_same_envelope_delivered_twice_sends_one_whatsapp_message(
    n8n: N8n, hub: Hub, apis: FakeApis, settings: Any
) -> None:
    apis.behaviour.ai_answer = AI_ANSWER
    settings.HUB_PUBLIC_URL = hub.base
    crew = team()
    chat, message = conversation(crew.lead, customer_wrote=timedelta(minutes=3), text="Oi")
    action = reply_action(chat, message, crew.lead)  # not queued: only these posts send it
    envelope = _n8n_envelope(action)

    first = n8n.post(envelope)
    second = n8n.post(envelope)
    row = settled(action, hub=hub)

    assert (first.status_code, first.json()) == (202, {"status": "accepted"})
    assert second.status_code == 200
    assert second.json()["status"] == "duplicate"
    assert second.json()["reason"] in ("in progress", "already done")
    assert len(apis.whatsapp()) == 1
    assert len(apis.notes()) == 1
    assert row.result["reply_text"] == AI_TEXT


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "n8n"
ACTIONS = ["proactive_message", "reply", "schedule", "reminder", "handoff"]


def fixture(action: str) -> dict[str, Any]:
    """An envelope as the hub builds it (tests/fixtures/n8n/, written from the real builders)."""
    return dict(json.loads((FIXTURES / f"{action}.json").read_text()))


def test_an_unknown_action_is_refused_with_422_naming_it(n8n: N8n, apis: FakeApis) -> None:
    response = n8n.post({**fixture("reply"), "action": "dance"})

    assert response.status_code == 422
    assert response.json() == {
        "error": 'unknown action: "dance" (expected one of proactive_message, reply, schedule, '
        "reminder, handoff)"
    }
    assert apis.requests == []


def test_an_envelope_without_a_callback_url_is_refused_with_422(n8n: N8n, apis: FakeApis) -> None:
    envelope = fixture("reply")
    del envelope["callback_url"]

    response = n8n.post(envelope)

    assert response.status_code == 422
    assert response.json() == {"error": "callback_url is missing or not an http(s) URL"}
    assert apis.requests == []


def test_an_envelope_the_hub_does_not_know_is_refused_by_the_claim_with_422(
    n8n: N8n, hub: Hub, apis: FakeApis
) -> None:
    envelope = fixture("reply")  # its key names no action of this database
    envelope["callback_url"] = envelope["callback_url"].replace("https://hub.example.com", hub.base)
    envelope["callback_url"] = envelope["callback_url"].replace(
        "n8n-callback-secret", "n8n-callback-test-secret"
    )

    response = n8n.post(envelope)

    assert response.status_code == 422
    assert response.json()["status"] == "refused"
    assert response.json()["error"].startswith("the hub refused the claim: HTTP 404")
    assert apis.requests == []
    assert not OutboundAction.objects.exists()


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("secret", ["wrong-secret", None])
def test_a_wrong_or_missing_secret_gets_403_and_nothing_runs(
    n8n: N8n, apis: FakeApis, secret: str | None, action: str
) -> None:
    response = n8n.post(fixture(action), secret=secret)

    assert response.status_code == 403
    assert apis.requests == []
