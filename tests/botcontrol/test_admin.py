"""The "Conversations" admin page: salespeople see and act only on their own conversations,
managers on every one; pause / resume from the list or the detail page; the history."""

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from botcontrol.models import BotChange, BotMode, BotState, ChangeVia
from botcontrol.services import bot_is_active_db, conversation_pause
from kommo_hub.models import OutboundAction
from tests.botcontrol.support import NOW, Team, team_build
from tests.outbox.support import committed

pytestmark = pytest.mark.django_db

LIST = "admin:botcontrol_botconversation_changelist"


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def team() -> Team:
    return team_build(max_pause_hours=24)


def login(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def carlos(client: Client, team: Team) -> Client:
    return login(client, team.carlos.user)  # type: ignore[arg-type]


@pytest.fixture
def manager(client: Client, team: Team) -> Client:
    user = User.objects.create_user("gerente", is_staff=True, first_name="Paula")
    user.user_permissions.add(Permission.objects.get(codename="manage_all_conversations"))
    return login(client, user)


def chats(response: Any) -> list[str]:
    return sorted(c.chat_id for c in response.context["cl"].result_list)


def change_url(conversation_pk: int, view: str = "change") -> str:
    return reverse(f"admin:botcontrol_botconversation_{view}", args=[conversation_pk])


def test_a_salesperson_lists_only_their_own_conversations(carlos: Client, team: Team) -> None:
    response = carlos.get(reverse(LIST))

    assert response.status_code == 200
    assert chats(response) == [team.conversation.chat_id]
    html = response.content.decode()
    assert "Pause bot" in html
    assert "Resume bot" in html
    assert "chat-ana" not in html


def test_a_manager_lists_every_conversation_with_its_bot_state(manager: Client, team: Team) -> None:
    with committed():
        conversation_pause(
            conversation=team.ana_conversation,
            via=ChangeVia.COMMAND,
            by_name="Ana",
            reason="#pausar",
            until=NOW + timedelta(hours=2),
        )

    response = manager.get(reverse(LIST))
    paused = manager.get(reverse(LIST), {"bot": "paused"})
    active = manager.get(reverse(LIST), {"bot": "active"})

    assert chats(response) == sorted([team.conversation.chat_id, "chat-ana"])
    assert chats(paused) == ["chat-ana"]
    assert chats(active) == [team.conversation.chat_id]
    html = paused.content.decode()
    for text in ("João Pereira", "Ana", "paused", "chat command"):
        assert text in html, text


def test_a_superuser_is_a_manager(admin_client: Client, team: Team) -> None:
    assert chats(admin_client.get(reverse(LIST))) == sorted([team.conversation.chat_id, "chat-ana"])


def test_a_staff_user_who_is_neither_salesperson_nor_manager_has_no_page(
    client: Client, team: Team
) -> None:
    login(client, User.objects.create_user("estagiario", is_staff=True))

    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(change_url(team.conversation.pk)).status_code == 403
    assert client.post(change_url(team.conversation.pk, "pause")).status_code == 403
    assert not BotState.objects.exists()


def test_a_salesperson_pauses_and_resumes_their_own_conversation_from_its_page(
    carlos: Client, team: Team
) -> None:
    with committed():
        paused = carlos.post(
            change_url(team.conversation.pk, "pause"), {"hours": "1.5", "reason": "vou ligar"}
        )

    assert paused.status_code == 302
    assert paused.url == change_url(team.conversation.pk)
    state = BotState.objects.get()
    assert (state.mode, state.via, state.by_name, state.by_salesperson, state.reason) == (
        BotMode.PAUSED,
        ChangeVia.ADMIN,
        "Carlos",
        team.carlos,
        "vou ligar",
    )
    assert state.until == NOW + timedelta(hours=1, minutes=30)
    # The Kommo tag and note wait in the outbox (Kommo is not configured in this test).
    note = OutboundAction.objects.get(action="note_add")
    assert note.payload["text"] == "Bot pausado por Carlos pelo painel (vou ligar) até 15:00"

    page = carlos.get(change_url(team.conversation.pk))
    assert page.status_code == 200
    html = page.content.decode()
    assert "The bot is paused" in html
    assert "vou ligar" in html  # the history

    with committed():
        resumed = carlos.post(change_url(team.conversation.pk, "resume"), follow=True)
    assert resumed.status_code == 200
    assert "Bot resumed." in resumed.content.decode()
    assert bot_is_active_db(conversation_id=team.conversation.pk) is True
    assert list(BotChange.objects.order_by("pk").values_list("mode", "via", "by_name")) == [
        ("paused", "admin", "Carlos"),
        ("active", "admin", "Carlos"),
    ]


def test_pause_and_resume_pages_only_take_a_post(carlos: Client, team: Team) -> None:
    assert carlos.get(change_url(team.conversation.pk, "pause")).status_code == 405
    assert carlos.get(change_url(team.conversation.pk, "resume")).status_code == 405


def test_a_salesperson_cannot_see_or_act_on_another_salespersons_conversation(
    carlos: Client, team: Team
) -> None:
    other = team.ana_conversation.pk

    assert carlos.get(change_url(other)).status_code == 404
    assert carlos.get(change_url(other, "history")).status_code == 404
    assert carlos.post(change_url(other, "pause")).status_code == 404
    assert carlos.post(change_url(other, "resume")).status_code == 404
    assert carlos.get(change_url(999999)).status_code == 404
    listed = carlos.post(
        reverse(LIST), {"action": "pause_bot", "_selected_action": [other]}, follow=True
    )

    assert listed.status_code == 200
    assert not BotState.objects.exists()
    assert not BotChange.objects.exists()
    assert not OutboundAction.objects.exists()


def test_a_salesperson_cannot_resume_another_salespersons_paused_conversation(
    carlos: Client, team: Team
) -> None:
    with committed():
        conversation_pause(conversation=team.ana_conversation, via=ChangeVia.ADMIN, by_name="Ana")

    refused = carlos.post(change_url(team.ana_conversation.pk, "resume"))
    carlos.post(
        reverse(LIST), {"action": "resume_bot", "_selected_action": [team.ana_conversation.pk]}
    )

    assert refused.status_code == 404
    assert bot_is_active_db(conversation_id=team.ana_conversation.pk) is False
    assert BotChange.objects.count() == 1


def test_the_list_actions_pause_and_resume_what_a_manager_selects(
    manager: Client, team: Team
) -> None:
    both = [team.conversation.pk, team.ana_conversation.pk]
    with committed():
        conversation_pause(conversation=team.conversation, via=ChangeVia.COMMAND, by_name="Carlos")

    with committed():
        paused = manager.post(
            reverse(LIST), {"action": "pause_bot", "_selected_action": both}, follow=True
        )
    html = paused.content.decode()
    assert "Bot paused in 1 conversation." in html
    assert "1 conversation was already paused." in html
    state = BotState.objects.get(conversation=team.ana_conversation)
    assert (state.mode, state.via, state.by_name, state.by_salesperson) == (
        BotMode.PAUSED,
        ChangeVia.ADMIN,
        "Paula",
        None,
    )
    assert state.until == NOW + timedelta(hours=24)

    with committed():
        resumed = manager.post(
            reverse(LIST), {"action": "resume_bot", "_selected_action": both}, follow=True
        )
    assert "Bot resumed in 2 conversations." in resumed.content.decode()
    assert all(bot_is_active_db(conversation_id=pk) for pk in both)


def test_the_detail_page_shows_the_history_newest_first(manager: Client, team: Team) -> None:
    with committed():
        conversation_pause(
            conversation=team.conversation,
            via=ChangeVia.COMMAND,
            by_name="Carlos",
            reason="#pausar",
        )
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        manager.post(change_url(team.conversation.pk, "resume"), {"reason": "cliente voltou"})

        response = manager.get(change_url(team.conversation.pk))

    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    rows = [form.original for form in inline]
    assert [(r.mode, r.via, r.by_name, r.reason) for r in rows] == [
        ("active", "admin", "Paula", "cliente voltou"),
        ("paused", "command", "Carlos", "#pausar"),
    ]
    html = response.content.decode()
    assert "The bot is active" in html
    assert "Pause bot" in html
    assert "Resume bot" not in html
