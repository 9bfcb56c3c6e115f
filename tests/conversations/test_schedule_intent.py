"""Flow 3 in the reply path: a burst that asks for a meeting gets `schedule` with real free slots
(the AI never invents a time); other messages keep getting `reply`; a paused bot gets nothing."""

from typing import Any

import pytest
from django.test import Client

from kommo_hub.flows.bot import bot_manual_pause
from kommo_hub.models import ActionStatus, Conversation, OutboundAction
from tests.conversations.support import later, message_hook, n8n_bodies, send_hook, tick
from tests.flows.fakes import FakeKommo
from tests.outbox.support import LocalHttpServer, committed

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen")]

M1 = "5a0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a50"
M2 = "5a0c9a7e-2b6d-4d3e-9b1a-7c2f5e8d1a51"


def test_asking_for_a_meeting_tomorrow_at_3pm_gets_schedule_with_the_nearest_free_slots(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi! Pode ser amanhã às 15h?"))
    tick(later(4))

    [sent] = n8n.received
    body = sent.json()
    assert body["action"] == "schedule"
    scheduling = body["scheduling"]
    assert scheduling["timezone"] == "America/Sao_Paulo"
    assert scheduling["duration_minutes"] == 30
    assert scheduling["intent"] == "schedule"
    assert scheduling["proposed"] == "2026-11-26T18:00:00Z"  # 15:00 in São Paulo
    starts = [slot["start"] for slot in scheduling["slots"]]
    assert "2026-11-26T18:00:00Z" in starts
    assert len(starts) == 3
    assert {slot["salesperson_id"] for slot in scheduling["slots"]} == {sales["Ana"].pk}
    assert body["salesperson"]["name"] == "Ana"
    assert OutboundAction.objects.get(action="reply").status == ActionStatus.DONE


def test_a_message_without_a_meeting_request_still_gets_a_plain_reply(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Qual o preço do plano anual?"))
    tick(later(4))
    [body] = n8n_bodies(n8n)
    assert body["action"] == "reply"
    assert "scheduling" not in body


def test_a_paused_conversation_gets_no_schedule_either(
    client: Client, fake_kommo: FakeKommo, n8n: LocalHttpServer, sales: dict[str, Any]
) -> None:
    send_hook(client, message_hook(M1, "Oi"))
    tick(later(4))
    with committed():
        bot_manual_pause(conversation=Conversation.objects.get(), via="admin", by_name="Ana")
    send_hook(client, message_hook(M2, "quero agendar uma reunião", at=later(60)))
    tick(later(120))
    assert [b["action"] for b in n8n_bodies(n8n) if b["action"] in {"reply", "schedule"}] == [
        "reply"
    ]
