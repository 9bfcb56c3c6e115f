"""Flow 4 end to end: #pausar / #voltar in the chat or a note, automatic takeover, handoff and
pauses that end → the bot state, and the exact Kommo and n8n requests (real local HTTP servers)."""

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from botcontrol.models import BotChange, BotMode, BotState, ChangeVia
from botcontrol.services import bot_is_active, bot_is_active_db
from kommo_hub.flows.bot import (
    bot_command_from_message,
    bot_handoff,
    bot_takeover,
    bot_tick,
)
from kommo_hub.models import ActionStatus, InboundEvent, LeadNote, OutboundAction
from tests.botcontrol.support import (
    CARLOS_KOMMO,
    KOMMO_LEAD,
    NOW,
    Team,
    incoming,
    outgoing,
    team_build,
)
from tests.flows.fakes import FakeKommo, fake_kommo
from tests.intake.wire import FORM, KOMMO_URL, kommo_body, post
from tests.outbox.support import LocalHttpServer, committed

pytestmark = pytest.mark.django_db
__all__ = ["fake_kommo"]

N8N_SECRET = "n8n-outbound-test-secret"
PAUSE_TAG = {"tags_to_add": [{"name": "bot-pausado"}], "updated_by": 0}
RESUME_TAG = {"tags_to_delete": [{"name": "bot-pausado"}], "updated_by": 0}


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def n8n(settings: Any) -> Iterator[LocalHttpServer]:
    with LocalHttpServer() as server:
        settings.N8N_WEBHOOK_URL = f"{server.url}/webhook/kommo-hub"
        settings.N8N_WEBHOOK_SECRET = N8N_SECRET
        yield server


@pytest.fixture
def team() -> Team:
    return team_build(takeover_resume_hours=2, max_pause_hours=24)


def kommo_writes(fake: FakeKommo) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, r.json()) for r in fake.received]


def note_request(text: str, change: BotChange) -> tuple[str, str, Any]:
    body = [
        {
            "entity_id": KOMMO_LEAD,
            "note_type": "common",
            "params": {"text": text},
            "request_id": f"kommo:bot:note:{change.pk}",
        }
    ]
    return ("POST", "/api/v4/leads/notes", body)


def tag_request(body: dict[str, Any]) -> tuple[str, str, Any]:
    return ("PATCH", f"/api/v4/leads/{KOMMO_LEAD}", body)


def latest_change() -> BotChange:
    return BotChange.objects.order_by("-pk").first()  # type: ignore[return-value]


def note_event(text: str, *, note_id: int, author: int = CARLOS_KOMMO, at: int = 0) -> str:
    return kommo_body(
        "leads[note][0][note]",
        [
            ("id", str(note_id)),
            ("text", text),
            ("note_type", "4"),
            ("element_type", "2"),
            ("element_id", str(KOMMO_LEAD)),
            ("created_by", str(author)),
            ("created_at", str(at or int(NOW.timestamp()))),
        ],
    )


def send_note(client: Client, body: str) -> InboundEvent:
    with committed():
        response = post(client, KOMMO_URL, body, content_type=FORM)
    assert response.status_code == 200, response.content
    return InboundEvent.objects.order_by("-pk").first()  # type: ignore[return-value]


# --- Chat commands --------------------------------------------------------------------------


def test_pausar_2h_in_the_chat_pauses_tags_the_lead_and_notes_it_in_portuguese(
    fake_kommo: FakeKommo, team: Team
) -> None:
    message = outgoing(team.conversation, "Oi Maria, aqui é o Carlos #pausar 2h")
    with committed():
        result = bot_command_from_message(message=message, source_event=None)

    until = NOW + timedelta(hours=2)
    assert result == f"bot paused by #pausar until {until.isoformat()}"
    state = BotState.objects.get()
    assert (state.mode, state.via, state.by_name, state.by_salesperson) == (
        BotMode.PAUSED,
        ChangeVia.COMMAND,
        "Carlos",
        team.carlos,
    )
    assert (state.until, state.last_human_at) == (until, NOW)
    assert bot_is_active(conversation_id=team.conversation.pk) is False
    change = BotChange.objects.get()
    assert change.source_ref == f"message:{message.external_id}"
    assert kommo_writes(fake_kommo) == [
        tag_request(PAUSE_TAG),
        note_request("Bot pausado por Carlos via #pausar até 15:30", change),
    ]
    team.lead.refresh_from_db()
    assert "bot-pausado" in team.lead.tags
    assert LeadNote.objects.get().kommo_note_id == 7001  # known: its echo will not be a command


def test_voltar_in_the_chat_resumes_and_removes_the_tag(fake_kommo: FakeKommo, team: Team) -> None:
    with committed():
        bot_command_from_message(message=outgoing(team.conversation, "#pausar"), source_event=None)
    with time_machine.travel(NOW + timedelta(minutes=20), tick=False), committed():
        result = bot_command_from_message(
            message=outgoing(team.conversation, "Pronto, #VOLTAR", at=NOW + timedelta(minutes=20)),
            source_event=None,
        )

    assert result == "bot resumed by #voltar"
    assert bot_is_active(conversation_id=team.conversation.pk) is True
    resumed = latest_change()
    assert (resumed.mode, resumed.via, resumed.by_name) == ("active", "command", "Carlos")
    assert kommo_writes(fake_kommo)[2:] == [
        tag_request(RESUME_TAG),
        note_request("Bot retomado por Carlos via #voltar", resumed),
    ]
    team.lead.refresh_from_db()
    assert "bot-pausado" not in team.lead.tags


def test_plain_pausar_lasts_the_areas_longest_pause_or_until_voltar(
    fake_kommo: FakeKommo, team: Team
) -> None:
    with committed():
        bot_command_from_message(message=outgoing(team.conversation, "#pausar"), source_event=None)
    assert BotState.objects.get().until == NOW + timedelta(hours=24)
    assert kommo_writes(fake_kommo)[1][2][0]["params"]["text"] == (
        "Bot pausado por Carlos via #pausar até 26/11 às 13:30"
    )

    team.area.max_pause_hours = None
    team.area.save()
    with committed():
        bot_command_from_message(
            message=outgoing(team.ana_conversation, "#humano", author_name="Ana"),
            source_event=None,
        )
    assert BotState.objects.get(conversation=team.ana_conversation).until is None


def test_the_same_message_delivered_twice_pauses_once(fake_kommo: FakeKommo, team: Team) -> None:
    message = outgoing(team.conversation, "#pausar 30m")
    with committed():
        bot_command_from_message(message=message, source_event=None)
        again = bot_command_from_message(message=message, source_event=None)

    assert again == "#pausar: bot already paused (or command already applied)"
    assert BotChange.objects.count() == 1
    assert len(fake_kommo.received) == 2


def test_a_message_without_a_command_or_from_the_customer_is_not_a_command(team: Team) -> None:
    assert (
        bot_command_from_message(
            message=outgoing(team.conversation, "Olá Maria!"), source_event=None
        )
        is None
    )
    assert (
        bot_command_from_message(message=incoming(team.conversation, "#pausar"), source_event=None)
        is None
    )
    assert not BotChange.objects.exists()


def test_someone_else_writing_in_the_chat_is_named_by_their_own_name(
    fake_kommo: FakeKommo, team: Team
) -> None:
    with committed():
        bot_command_from_message(
            message=outgoing(team.conversation, "#pausar 30m", author_name="Gerente Paula"),
            source_event=None,
        )
    state = BotState.objects.get()
    assert (state.by_name, state.by_salesperson) == ("Gerente Paula", None)
    assert kommo_writes(fake_kommo)[1][2][0]["params"]["text"] == (
        "Bot pausado por Gerente Paula via #pausar até 14:00"
    )


# --- Lead notes -----------------------------------------------------------------------------


def test_pausar_in_a_lead_note_pauses_the_leads_latest_conversation(
    client: Client, fake_kommo: FakeKommo, team: Team
) -> None:
    event = send_note(client, note_event("Cliente pediu contato humano #pausar até 18h", note_id=1))

    change = BotChange.objects.get()
    until = NOW + timedelta(hours=4, minutes=30)
    assert event.result == f"note stored; bot paused by #pausar until {until.isoformat()}"
    assert (change.conversation_id, change.via, change.by_name, change.source_ref) == (
        team.conversation.pk,
        "note",
        "Carlos",
        "note:1",
    )
    assert kommo_writes(fake_kommo) == [
        tag_request(PAUSE_TAG),
        note_request("Bot pausado por Carlos via nota com #pausar até 18:00", change),
    ]

    resumed = send_note(client, note_event("#voltar", note_id=2))
    assert resumed.result == "note stored; bot resumed by #voltar"
    assert bot_is_active_db(conversation_id=team.conversation.pk) is True
    assert kommo_writes(fake_kommo)[2:] == [
        tag_request(RESUME_TAG),
        note_request("Bot retomado por Carlos via nota com #voltar", latest_change()),
    ]


def test_the_hubs_own_note_coming_back_from_kommo_is_never_a_command(
    client: Client, fake_kommo: FakeKommo, team: Team
) -> None:
    with committed():
        bot_command_from_message(message=outgoing(team.conversation, "#voltar"), source_event=None)
        bot_command_from_message(
            message=outgoing(team.conversation, "#pausar 2h"), source_event=None
        )
    [(note_id, text)] = LeadNote.objects.values_list("kommo_note_id", "text")
    assert text == "Bot pausado por Carlos via #pausar até 15:30"

    # The webhook echo of the note the hub wrote (known by its Kommo id) …
    echo = send_note(client, note_event(text, note_id=note_id))
    # … and, defensively, one that arrives before the hub recorded the id.
    early = send_note(client, note_event("Bot retomado por Carlos via #voltar", note_id=9999))

    assert (echo.result, early.result) == ("note already stored", "note stored")
    assert BotChange.objects.count() == 1
    assert BotState.objects.get().mode == BotMode.PAUSED


def test_a_note_command_on_a_lead_without_a_conversation_changes_nothing(
    client: Client, fake_kommo: FakeKommo, team: Team
) -> None:
    team.conversation.delete()
    event = send_note(client, note_event("#pausar", note_id=3))
    assert event.result == (
        "note stored; #pausar in a note, but the lead has no conversation yet: nothing changed"
    )
    assert not BotChange.objects.exists()
    assert fake_kommo.received == []


# --- Automatic takeover ---------------------------------------------------------------------


def test_a_human_reply_pauses_the_bot_until_two_hours_of_silence(
    fake_kommo: FakeKommo, team: Team
) -> None:
    with committed():
        result = bot_takeover(
            conversation=team.conversation,
            message=outgoing(team.conversation, "Oi Maria, pode falar comigo"),
            source_event=None,
        )

    assert result == "a person took over: bot paused until 2 h of silence"
    state = BotState.objects.get()
    assert (state.mode, state.via, state.resume_after_silence, state.until) == (
        BotMode.PAUSED,
        ChangeVia.TAKEOVER,
        True,
        None,
    )
    pause_change = latest_change()
    assert kommo_writes(fake_kommo) == [
        tag_request(PAUSE_TAG),
        note_request("Bot pausado automaticamente: Carlos respondeu pelo WhatsApp", pause_change),
    ]

    # Another human message an hour later moves the silence clock on.
    with time_machine.travel(NOW + timedelta(hours=1), tick=False), committed():
        later = bot_takeover(
            conversation=team.conversation,
            message=outgoing(team.conversation, "Já te mando", at=NOW + timedelta(hours=1)),
            source_event=None,
        )
    assert later == "a person wrote; bot already paused, silence clock moved on"

    with time_machine.travel(NOW + timedelta(hours=2, minutes=30), tick=False), committed():
        assert bot_tick() == 0
    assert bot_is_active_db(conversation_id=team.conversation.pk) is False

    with time_machine.travel(NOW + timedelta(hours=3), tick=False), committed():
        assert bot_tick() == 1
    resumed = latest_change()
    assert (resumed.mode, resumed.via, resumed.at) == ("active", "expiry", NOW + timedelta(hours=3))
    assert kommo_writes(fake_kommo)[2:] == [
        tag_request(RESUME_TAG),
        note_request("Bot retomado automaticamente após 2 h sem mensagens da equipe", resumed),
    ]
    assert bot_is_active(conversation_id=team.conversation.pk) is True


def test_with_takeover_off_a_human_reply_only_moves_the_silence_clock(
    fake_kommo: FakeKommo, team: Team
) -> None:
    team.area.auto_takeover = False
    team.area.save()

    result = bot_takeover(
        conversation=team.conversation,
        message=outgoing(team.conversation, "Oi"),
        source_event=None,
    )

    assert result == "a person wrote; automatic takeover is off for this area"
    assert not BotChange.objects.exists()
    state = BotState.objects.get()
    assert (state.mode, state.last_human_at) == (BotMode.ACTIVE, NOW)
    assert fake_kommo.received == []


def test_a_takeover_with_no_resume_hours_lasts_until_voltar(
    fake_kommo: FakeKommo, team: Team
) -> None:
    team.area.takeover_resume_hours = 0
    team.area.save()
    with committed():
        result = bot_takeover(
            conversation=team.conversation,
            message=outgoing(team.conversation, "Oi"),
            source_event=None,
        )
    with time_machine.travel(NOW + timedelta(days=3), tick=False), committed():
        assert bot_tick() == 0

    assert result == "a person took over: bot paused until #voltar"
    assert (
        bot_is_active_db(conversation_id=team.conversation.pk, at=NOW + timedelta(days=3)) is False
    )


def test_a_command_message_is_not_also_a_takeover(fake_kommo: FakeKommo, team: Team) -> None:
    message = outgoing(team.conversation, "#voltar")
    with committed():
        bot_command_from_message(
            message=outgoing(team.conversation, "#pausar 30m"), source_event=None
        )
        takeover = bot_takeover(conversation=team.conversation, message=message, source_event=None)
        bot_command_from_message(message=message, source_event=None)

    assert takeover == "a person's message with a command: the command decides, no takeover"
    assert bot_is_active_db(conversation_id=team.conversation.pk) is True
    assert list(BotChange.objects.order_by("pk").values_list("mode", "via")) == [
        ("paused", "command"),
        ("active", "command"),
    ]


# --- Timed pauses ---------------------------------------------------------------------------


def test_a_timed_pause_ends_on_the_scheduler_tick_with_its_kommo_sync(
    fake_kommo: FakeKommo, team: Team
) -> None:
    with committed():
        bot_command_from_message(
            message=outgoing(team.conversation, "#pausar 30m"), source_event=None
        )

    with time_machine.travel(NOW + timedelta(minutes=29), tick=False), committed():
        assert bot_tick() == 0
    with time_machine.travel(NOW + timedelta(minutes=30), tick=False):
        assert bot_is_active(conversation_id=team.conversation.pk) is True  # before the tick
        with committed():
            assert bot_tick() == 1
            assert bot_tick() == 0

    resumed = latest_change()
    assert (resumed.via, resumed.reason) == ("expiry", "o fim da pausa (até 14:00)")
    assert kommo_writes(fake_kommo)[2:] == [
        tag_request(RESUME_TAG),
        note_request("Bot retomado automaticamente após o fim da pausa (até 14:00)", resumed),
    ]
    state = BotState.objects.get()
    assert (state.mode, state.until, state.version) == (BotMode.ACTIVE, None, 2)


def test_a_retried_pause_write_never_lands_after_the_resume_that_followed(
    fake_kommo: FakeKommo, team: Team, settings: Any
) -> None:
    settings.KOMMO_ACCESS_TOKEN = ""  # Kommo "not configured": both changes wait in the outbox
    with committed():
        bot_command_from_message(message=outgoing(team.conversation, "#pausar"), source_event=None)
        bot_command_from_message(message=outgoing(team.conversation, "#voltar"), source_event=None)
    tag_pause, note_pause, tag_resume, note_resume = OutboundAction.objects.order_by("pk")
    assert (tag_pause.depends_on, note_pause.depends_on) == (None, tag_pause)
    assert (tag_resume.depends_on, note_resume.depends_on) == (note_pause, tag_resume)

    settings.KOMMO_ACCESS_TOKEN = "kommo-long-lived-test-token"
    from kommo_hub.ops.jobs import release_held_actions

    with committed():
        release_held_actions()
    assert [r.json() for r in fake_kommo.received if r.method == "PATCH"] == [
        PAUSE_TAG,
        RESUME_TAG,
    ]
    assert set(OutboundAction.objects.values_list("status", flat=True)) == {ActionStatus.DONE}


# --- Handoff --------------------------------------------------------------------------------


def test_handoff_pauses_tells_the_salesperson_through_n8n_and_gives_them_a_kommo_task(
    fake_kommo: FakeKommo, n8n: LocalHttpServer, team: Team
) -> None:
    incoming(team.conversation, "Quero falar com um vendedor", at=NOW - timedelta(minutes=1))
    team.conversation.last_incoming_at = NOW - timedelta(minutes=1)
    team.conversation.save()
    with committed():
        result = bot_handoff(
            conversation=team.conversation,
            reason="cliente quer negociar o preço",
            source_event=None,
        )

    assert result == "handoff: bot paused, salesperson told and given a Kommo task"
    change = BotChange.objects.get()
    assert (change.via, change.by_name, change.until) == (
        "handoff",
        "IA",
        NOW + timedelta(hours=24),
    )
    assert kommo_writes(fake_kommo) == [
        tag_request(PAUSE_TAG),
        note_request(
            "Bot pausado até 26/11 às 13:30: a IA pediu atendimento humano. "
            "Motivo: cliente quer negociar o preço",
            change,
        ),
        (
            "POST",
            "/api/v4/tasks",
            [
                {
                    "text": "Atender Maria Souza: a IA pediu atendimento humano "
                    "(cliente quer negociar o preço)",
                    "complete_till": int((NOW + timedelta(hours=1)).timestamp()),
                    "entity_id": KOMMO_LEAD,
                    "entity_type": "leads",
                    "responsible_user_id": CARLOS_KOMMO,
                    "task_type_id": 1,
                    "request_id": f"kommo:task:handoff:{change.pk}",
                }
            ],
        ),
    ]
    [handoff] = [r.json() for r in n8n.received]
    assert n8n.received[0].headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert set(handoff) == {
        "action",
        "idempotency_key",
        "sent_at",
        "lead",
        "area",
        "salesperson",
        "conversation",
        "handoff",
        "callback_url",
    }
    assert (handoff["action"], handoff["idempotency_key"]) == (
        "handoff",
        f"n8n:handoff:bot:{change.pk}",
    )
    assert handoff["lead"]["kommo_lead_id"] == KOMMO_LEAD
    assert handoff["lead"]["phone"] == "+5511987654321"
    assert handoff["area"] == {
        "slug": "vendas",
        "name": "Vendas",
        "ai_instructions": "Seja cordial.",
        "first_message_hint": "",
    }
    assert handoff["salesperson"] == {
        "id": team.carlos.pk,
        "name": "Carlos",
        "kommo_user_id": CARLOS_KOMMO,
        "phone": "+5511911112222",
    }
    assert handoff["conversation"] == {
        "chat_id": team.conversation.chat_id,
        "talk_id": 4821,
        "bot_state": "paused",
        "window_open": True,
        "window_closes_at": "2026-11-26T16:29:00Z",
        "last_messages": [
            {
                "direction": "in",
                "text": "Quero falar com um vendedor",
                "at": "2026-11-25T16:29:00Z",
                "author": "customer",
            }
        ],
    }
    assert handoff["handoff"] == {
        "reason": "ai_handoff",
        "explanation": "cliente quer negociar o preço",
    }


def test_a_second_handoff_while_paused_sends_nothing(
    fake_kommo: FakeKommo, n8n: LocalHttpServer, team: Team
) -> None:
    with committed():
        bot_handoff(conversation=team.conversation, reason="preço", source_event=None)
        again = bot_handoff(conversation=team.conversation, reason="preço", source_event=None)
    assert again == "handoff: bot already paused, nothing sent"
    assert len(n8n.received) == 1
    assert [c for c in fake_kommo.calls() if c[1] == "/api/v4/tasks"] == [("POST", "/api/v4/tasks")]


def test_the_kommo_task_waits_until_the_lead_exists_in_kommo(
    fake_kommo: FakeKommo, team: Team
) -> None:
    team.lead.kommo_lead_id = None
    team.lead.save()
    with committed():
        bot_handoff(conversation=team.conversation, reason="preço", source_event=None)
    task = OutboundAction.objects.get(action="task_add")
    assert (task.status, task.held_reason) == (
        ActionStatus.HELD,
        "waiting for the lead to exist in Kommo",
    )
    assert json.loads(json.dumps(task.payload))["responsible_user_id"] == CARLOS_KOMMO
    assert fake_kommo.received == []
