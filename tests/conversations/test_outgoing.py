"""Outgoing `message[add]`: the bot's own (Kommo says so, or the echo of what n8n reported
sending), maybe the bot's (an n8n send whose callback is pending: decided later), or a person's
(a command, else a takeover). Only a person's message stops the salesperson's reply SLA."""

from typing import Any

import pytest
from django.test import Client

from botcontrol.models import BotMode, BotState, ChangeVia
from kommo_hub.models import (
    ActionStatus,
    Conversation,
    EventStatus,
    InboundEvent,
    Message,
    OutboundAction,
)
from routing.models import Assignment
from tests.conversations.support import (
    ANA_AUTHOR,
    at,
    later,
    message_hook,
    send_callback,
    send_hook,
    tick,
)
from tests.flows.fakes import FakeKommo
from tests.outbox.support import LocalHttpServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

M1 = "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a40"
OUT = "c0ffee00-1234-4567-89ab-cdef01234567"
ANSWER = "Olá Maria! Sou o assistente virtual. Qual plano te interessa?"
SALESBOT = ("0", "bot", "Salesbot")


@pytest.fixture
def replied(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> OutboundAction:
    """A customer wrote (the lead is routed to Ana, SLA running); the reply went out at +4 s."""
    send_hook(client, message_hook(M1, "Oi, quero saber dos planos"))
    tick(later(4))
    return OutboundAction.objects.get(action="reply", status=ActionStatus.DONE)


def outgoing(text: str, seconds: float, author: tuple[str, str, str] = ANA_AUTHOR) -> str:
    return message_hook(OUT, text, at=later(seconds), direction="outgoing", author=author)


def last_event() -> InboundEvent:
    return InboundEvent.objects.filter(event_type="kommo.message.add").order_by("pk").last()


def bot_paused() -> bool:
    return BotState.objects.filter(
        conversation=Conversation.objects.get(), mode=BotMode.PAUSED
    ).exists()


def sla_stopped() -> bool:
    return Assignment.objects.get(is_current=True).responded_at is not None


def test_a_message_kommo_marks_as_a_bots_is_the_bots_and_neither_pauses_nor_stops_the_sla(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(6)):
        send_hook(client, outgoing(ANSWER, 6, author=SALESBOT))

    assert last_event().result == "bot message stored"
    message = Message.objects.get(external_id=OUT)
    assert (message.author_kind, message.direction) == (
        Message.AuthorKind.BOT,
        Message.Direction.OUTGOING,
    )
    assert not bot_paused()
    assert not sla_stopped()


def test_the_echo_of_the_text_n8n_reported_is_the_bots_and_stays_one_message(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(8)):
        send_callback(
            client,
            {"idempotency_key": replied.idempotency_key, "status": "done", "reply_text": ANSWER},
        )
    with at(later(9)):
        send_hook(client, outgoing(f"  {ANSWER}\n", 8))

    assert last_event().result == f"bot message (n8n action #{replied.pk})"
    bot = Message.objects.get(author_kind=Message.AuthorKind.BOT)
    assert (bot.external_id, bot.text, bot.sent_at, bot.author_name) == (
        OUT,
        ANSWER,
        later(8),
        "Ana",
    )
    assert Message.objects.count() == 2  # the customer's and the bot's
    replied.refresh_from_db()
    assert (replied.sent_message, replied.result["echo_message_id"]) == (bot, OUT)
    assert not bot_paused()
    assert not sla_stopped()


def test_the_echo_carrying_the_id_n8n_reported_is_the_bots_whatever_its_text(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(8)):
        send_callback(
            client,
            {
                "idempotency_key": replied.idempotency_key,
                "status": "done",
                "whatsapp_message_id": OUT,
                "reply_text": ANSWER,
            },
        )
    with at(later(9)):
        send_hook(client, outgoing("Olá Maria! (texto ajustado pelo canal)", 8))

    assert last_event().result == f"bot message (n8n action #{replied.pk})"
    assert Message.objects.get(external_id=OUT).author_kind == Message.AuthorKind.BOT
    assert not bot_paused()


def test_an_outgoing_message_while_n8ns_callback_is_pending_waits_for_it_then_is_the_bots(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(6)):
        send_hook(client, outgoing(ANSWER, 6))

    event = last_event()
    assert (event.status, event.attempts, event.next_attempt_at) == (
        EventStatus.FAILED,
        0,
        later(16),
    )
    assert event.last_error == (
        f"deferred: may be the echo of n8n action #{replied.pk}: waiting for its callback"
    )
    assert not Message.objects.filter(external_id=OUT).exists()

    with at(later(8)):
        send_callback(
            client,
            {"idempotency_key": replied.idempotency_key, "status": "done", "reply_text": ANSWER},
        )
    tick(later(16))

    event.refresh_from_db()
    assert (event.status, event.result) == (
        EventStatus.PROCESSED,
        f"bot message (n8n action #{replied.pk})",
    )
    assert Message.objects.get(external_id=OUT).author_kind == Message.AuthorKind.BOT
    assert not bot_paused()
    assert not sla_stopped()


def test_when_the_echo_window_passes_without_a_callback_the_message_is_a_persons_takeover(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(6)):
        send_hook(client, outgoing("Oi Maria, aqui é a Ana", 6))
    tick(later(16))
    assert last_event().status == EventStatus.FAILED  # still inside the 120 s window

    tick(later(4 + 120 + 1))

    event = last_event()
    assert (event.status, event.result) == (
        EventStatus.PROCESSED,
        "message stored; a person took over: bot paused until 2 h of silence",
    )
    message = Message.objects.get(external_id=OUT)
    assert message.author_kind == Message.AuthorKind.SALESPERSON
    state = BotState.objects.get()
    assert (state.mode, state.via, state.by_name) == (BotMode.PAUSED, ChangeVia.TAKEOVER, "Ana")
    assert Assignment.objects.get(is_current=True).responded_at == later(6)


def test_a_salesperson_writing_in_the_chat_takes_over_and_stops_the_reply_sla(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(8)):
        send_callback(
            client,
            {"idempotency_key": replied.idempotency_key, "status": "done", "reply_text": ANSWER},
        )
    with at(later(60)):
        send_hook(client, outgoing("Oi Maria, aqui é a Ana. Posso te ligar?", 60))

    assert last_event().result == (
        "message stored; a person took over: bot paused until 2 h of silence"
    )
    assert bot_paused()
    assert Assignment.objects.get(is_current=True).responded_at == later(60)


def test_a_salesperson_writing_pausar_pauses_by_the_command_not_by_takeover(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(8)):
        send_callback(
            client,
            {"idempotency_key": replied.idempotency_key, "status": "done", "reply_text": ANSWER},
        )
    with at(later(60)):
        send_hook(client, outgoing("Deixa comigo #pausar", 60))

    assert last_event().result.startswith("message stored; bot paused by #pausar")
    assert BotState.objects.get().via == ChangeVia.COMMAND
    assert sla_stopped()


def test_a_bot_message_does_not_stop_the_sla_but_the_salesperson_reply_after_it_does(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(6)):
        send_hook(client, outgoing(ANSWER, 6, author=SALESBOT))
    assert not sla_stopped()
    with at(later(300)):
        send_hook(
            client,
            message_hook(
                OUT[:-1] + "8",
                "Oi, sou a Ana",
                at=later(300),
                direction="outgoing",
                author=ANA_AUTHOR,
            ),
        )
    assert Assignment.objects.get(is_current=True).responded_at == later(300)


def test_a_message_whose_hook_does_not_say_who_wrote_it_is_only_stored(
    client: Client, replied: OutboundAction
) -> None:
    """Old payloads carry neither `type` nor `author[type]` (kommo.md §2.1): no reply, no
    takeover, no SLA stop on a guess."""
    body = message_hook(OUT, "mensagem sem autor", at=later(30), direction="", author=("", "", ""))
    with at(later(30)):
        send_hook(client, body)

    assert last_event().result == "message stored; author unknown"
    assert Message.objects.get(external_id=OUT).author_kind == Message.AuthorKind.UNKNOWN
    assert OutboundAction.objects.filter(action="reply").count() == 1
    assert not bot_paused()
    assert not sla_stopped()
