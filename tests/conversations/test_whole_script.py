"""The whole conversation script of issue 4, against the fake Kommo and n8n servers:
customer writes → AI reply → the salesperson writes #pausar → the customer writes (no reply, the
message is kept) → #voltar → the customer writes → AI reply again."""

from typing import Any

import pytest
from django.test import Client

from botcontrol.models import BotChange, BotMode
from kommo_hub.models import ActionStatus, Conversation, Message, OutboundAction
from tests.conversations.support import (
    ANA_AUTHOR,
    at,
    later,
    message_hook,
    n8n_bodies,
    send_callback,
    send_hook,
    tick,
)
from tests.flows.fakes import FakeKommo
from tests.outbox.support import LocalHttpServer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

IDS = [f"6b0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a6{n}" for n in range(6)]
ANSWER = "Olá Maria! O plano anual custa R$ 1.200."


def test_pausar_silences_the_bot_and_voltar_brings_it_back(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(IDS[0], "Qual o preço do plano anual?"))
    tick(later(4))
    [first] = n8n_bodies(n8n, "reply")
    with at(later(6)):
        send_callback(
            client,
            {"idempotency_key": first["idempotency_key"], "status": "done", "reply_text": ANSWER},
        )

    with at(later(60)):
        send_hook(
            client,
            message_hook(
                IDS[1],
                "Deixa comigo! #pausar",
                at=later(60),
                direction="outgoing",
                author=ANA_AUTHOR,
            ),
        )
    send_hook(client, message_hook(IDS[2], "Ana, pode me mandar a proposta?", at=later(120)))
    tick(later(130))
    assert len(n8n_bodies(n8n, "reply")) == 1  # nothing while paused

    with at(later(300)):
        send_hook(
            client,
            message_hook(IDS[3], "#voltar", at=later(300), direction="outgoing", author=ANA_AUTHOR),
        )
    send_hook(client, message_hook(IDS[4], "E o plano mensal?", at=later(400)))
    tick(later(404))

    replies = n8n_bodies(n8n, "reply")
    assert len(replies) == 2
    assert replies[1]["message"]["text"] == "E o plano mensal?"
    history = [m["text"] for m in replies[1]["conversation"]["last_messages"]]
    assert "Ana, pode me mandar a proposta?" in history  # kept while paused, and the AI sees it
    assert ANSWER in history
    conversation = Conversation.objects.get()
    assert list(
        BotChange.objects.filter(conversation=conversation)
        .order_by("at")
        .values_list("mode", "via")
    ) == [(BotMode.PAUSED, "command"), (BotMode.ACTIVE, "command")]
    assert Message.objects.filter(conversation=conversation).count() == 6  # the bot's reply too
    assert not OutboundAction.objects.filter(action="reply", status=ActionStatus.SKIPPED).exists()
    tags = [
        r.json()
        for r in fake_kommo.received
        if r.method == "PATCH" and ({"tags_to_add", "tags_to_delete"} & set(r.json()))
    ]
    assert tags[1:] == [  # the first is Flow 1's owner and stage
        {"tags_to_add": [{"name": "bot-pausado"}], "updated_by": 0},
        {"tags_to_delete": [{"name": "bot-pausado"}], "updated_by": 0},
    ]
