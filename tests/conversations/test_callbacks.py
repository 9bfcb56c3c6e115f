"""n8n's callback (ARCHITECTURE §4.3): what was sent becomes the conversation's history, once per
idempotency key and status; `failed` alerts; `handoff` hands the chat to a person."""

from typing import Any

import pytest
from django.test import Client

from botcontrol.models import BotMode, BotState, ChangeVia
from kommo_hub.intake.processing import event_replay
from kommo_hub.models import (
    ActionStatus,
    Alert,
    Conversation,
    EventStatus,
    InboundEvent,
    Message,
    OutboundAction,
)
from tests.conversations.support import (
    NOW,
    at,
    later,
    message_hook,
    n8n_bodies,
    send_callback,
    send_hook,
    tick,
)
from tests.flows.fakes import FakeKommo
from tests.outbox.support import LocalHttpServer, committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

M1 = "3f0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a40"
ANSWER = "Olá Maria! O plano anual custa R$ 1.200. Posso te ajudar com mais alguma coisa?"


@pytest.fixture
def replied(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> OutboundAction:
    """A customer wrote and the hub asked n8n for the reply (delivered at +4 s)."""
    send_hook(client, message_hook(M1, "Quanto custa o plano anual?"))
    tick(later(4))
    return OutboundAction.objects.get(action="reply", status=ActionStatus.DONE)


def callback(action: OutboundAction, status: str = "done", **fields: Any) -> dict[str, Any]:
    return {"idempotency_key": action.idempotency_key, "status": status, **fields}


def callback_events() -> list[InboundEvent]:
    return list(InboundEvent.objects.filter(event_type="n8n.callback").order_by("pk"))


def test_a_done_callback_is_recorded_as_the_bots_message_once_even_when_sent_twice(
    client: Client, replied: OutboundAction
) -> None:
    body = callback(
        replied,
        whatsapp_message_id="wamid.HBgMNTUxMTk4NzY1NDMyMRUCABEYEjk=",
        kommo_note_id=7001234,
        reply_text=ANSWER,
    )
    with at(later(9)):
        assert send_callback(client, body) == {"accepted": 1, "duplicates": 0}
        assert send_callback(client, body) == {"accepted": 0, "duplicates": 1}

    [event] = callback_events()
    bot = Message.objects.get(author_kind=Message.AuthorKind.BOT)
    assert (event.status, event.result) == (
        EventStatus.PROCESSED,
        f"callback done recorded; bot message #{bot.pk} stored",
    )
    assert event.lead == replied.lead
    assert (bot.conversation, bot.direction, bot.text, bot.sent_at) == (
        Conversation.objects.get(),
        Message.Direction.OUTGOING,
        ANSWER,
        later(9),
    )
    assert bot.external_id == f"hub:action:{replied.pk}"
    replied.refresh_from_db()
    assert (replied.callback_status, replied.callback_at, replied.sent_message) == (
        "done",
        later(9),
        bot,
    )
    assert replied.result == {
        "whatsapp_message_id": "wamid.HBgMNTUxMTk4NzY1NDMyMRUCABEYEjk=",
        "kommo_note_id": 7001234,
        "reply_text": ANSWER,
        "callbacks": [{"status": "done", "at": "2026-11-25T13:00:09Z", "event": event.pk}],
    }

    with at(later(20)), committed():  # a manager replays it: nothing happens twice
        event_replay(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.result == "callback done already recorded"
    assert Message.objects.filter(author_kind=Message.AuthorKind.BOT).count() == 1
    replied.refresh_from_db()
    assert len(replied.result["callbacks"]) == 1


def test_the_next_reply_carries_the_bots_recorded_message_in_the_conversation(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer
) -> None:
    with at(later(9)):
        send_callback(client, callback(replied, reply_text=ANSWER))
    with at(later(30)):
        send_hook(client, message_hook(M1[:-1] + "1", "E o mensal?", at=later(30)))
    tick(later(34))

    second = n8n_bodies(n8n, "reply")[1]
    assert [(m["author"], m["text"]) for m in second["conversation"]["last_messages"]] == [
        ("customer", "Quanto custa o plano anual?"),
        ("bot", ANSWER),
        ("customer", "E o mensal?"),
    ]


def test_a_failed_callback_records_the_error_on_the_action_and_raises_an_alert(
    client: Client, replied: OutboundAction
) -> None:
    with at(later(9)):
        send_callback(
            client, callback(replied, "failed", error="WhatsApp: (#131047) Re-engagement message")
        )

    [event] = callback_events()
    assert (event.status, event.result) == (
        EventStatus.PROCESSED,
        "callback failed recorded; alert raised",
    )
    replied.refresh_from_db()
    assert (replied.status, replied.callback_status) == (ActionStatus.DONE, "failed")
    assert replied.last_error == "n8n: WhatsApp: (#131047) Re-engagement message"
    assert replied.result["error"] == "WhatsApp: (#131047) Re-engagement message"
    alert = Alert.objects.get(kind=Alert.Kind.N8N_FAILED)
    assert alert.message == (
        f"n8n could not carry out reply #{replied.pk} (lead #{replied.lead_id}): "
        "WhatsApp: (#131047) Re-engagement message"
    )
    assert not Message.objects.filter(author_kind=Message.AuthorKind.BOT).exists()


def test_a_handoff_callback_pauses_the_bot_and_tells_the_salesperson(
    client: Client, replied: OutboundAction, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    with at(later(9)):
        send_callback(
            client,
            callback(
                replied,
                "handoff",
                reply_text="Vou chamar uma pessoa da equipe para te atender.",
                error="o cliente pediu um desconto",
            ),
        )

    [event] = callback_events()
    bot = Message.objects.get(author_kind=Message.AuthorKind.BOT)
    assert event.result == (
        f"callback handoff recorded; bot message #{bot.pk} stored; "
        "handoff: bot paused, salesperson told and given a Kommo task"
    )
    state = BotState.objects.get(conversation=Conversation.objects.get())
    assert (state.mode, state.via, state.reason) == (
        BotMode.PAUSED,
        ChangeVia.HANDOFF,
        "o cliente pediu um desconto",
    )
    handoff = n8n_bodies(n8n, "handoff")
    assert len(handoff) == 1
    # Built when sent: the paused state and the WhatsApp window, like every action of a lead
    # that has a conversation.
    assert {k: v for k, v in handoff[0]["conversation"].items() if k != "last_messages"} == {
        "chat_id": "a1b2c3d4-0000-4e5f-8a9b-112233445566",
        "talk_id": 4821,
        "bot_state": "paused",
        "window_open": True,
        "window_closes_at": "2026-11-26T13:00:00Z",
    }
    assert handoff[0]["salesperson"]["name"] == "Ana"


def test_a_callback_for_an_action_the_hub_does_not_know_is_processed_as_unknown(
    client: Client, sales: dict[str, Any]
) -> None:
    send_callback(client, {"idempotency_key": "n8n:reply:999:999", "status": "done"})

    [event] = callback_events()
    assert (event.status, event.result, event.last_error) == (
        EventStatus.PROCESSED,
        "unknown action",
        "",
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"idempotency_key": "k1", "status": "maybe"},
            "invalid N8nCallback: status: Input should be 'done', 'failed' or 'handoff'",
        ),
        (
            {"idempotency_key": "k2", "status": "done", "kommo_note_id": "nota-1"},
            "invalid N8nCallback: kommo_note_id: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        (
            {"idempotency_key": "k3", "status": "done", "appointment": "amanhã"},
            "invalid N8nCallback: appointment: Input should be a valid dictionary",
        ),
    ],
)
def test_a_callback_body_that_does_not_follow_the_contract_is_dead_at_once_with_the_reason(
    client: Client, body: dict[str, Any], error: str
) -> None:
    send_callback(client, body)

    [event] = callback_events()
    assert (event.status, event.attempts, event.last_error) == (EventStatus.DEAD, 1, error)
    assert Alert.objects.get(kind=Alert.Kind.EVENT_DEAD).message.startswith(
        f"Event #{event.pk} (n8n.callback): invalid N8nCallback"
    )


def test_a_callback_status_is_read_regardless_of_case(
    client: Client, replied: OutboundAction
) -> None:
    with at(NOW):
        send_callback(client, callback(replied, " DONE ", reply_text=ANSWER))
    replied.refresh_from_db()
    assert replied.callback_status == "done"
