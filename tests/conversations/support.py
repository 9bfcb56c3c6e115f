"""Building Kommo chat hooks and n8n callbacks, posting them, and moving the clock."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import time_machine
from django.test import Client

from kommo_hub.ops.jobs import sweep_actions, sweep_events
from tests.intake.wire import FORM, JSON, KOMMO_URL, N8N_URL, kommo_body, post
from tests.outbox.support import LocalHttpServer, committed

SP = ZoneInfo("America/Sao_Paulo")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=SP)  # 13:00 UTC, a Wednesday
N8N_SECRET = "n8n-outbound-test-secret"
CALLBACK_URL = "http://127.0.0.1:8000/webhooks/n8n/n8n-callback-test-secret/"
CHAT = "a1b2c3d4-0000-4e5f-8a9b-112233445566"
KOMMO_LEAD = 18754321
KOMMO_CONTACT = 22334455
CUSTOMER = ("9d8c7b6a-1111-4222-8333-444455556666", "external", "Maria Souza")
ANA_AUTHOR = ("9876501", "user", "Ana")


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def message_hook(
    message_id: str,
    text: str,
    *,
    at: datetime = NOW,
    direction: str = "incoming",
    author: tuple[str, str, str] = CUSTOMER,
    lead: int | None = KOMMO_LEAD,
    contact: int = KOMMO_CONTACT,
    chat: str = CHAT,
    message_type: str = "text",
    attachment: dict[str, str] | None = None,
) -> str:
    """A Kommo `message[add]` hook as Kommo sends it (kommo.md §2.1)."""
    fields = [
        ("id", message_id),
        ("chat_id", chat),
        ("talk_id", "4821"),
        ("contact_id", str(contact)),
        ("text", text),
        ("created_at", str(int(at.timestamp()))),
        ("message_type", message_type),
    ]
    if lead is not None:
        fields += [
            ("element_type", "2"),
            ("entity_type", "lead"),
            ("element_id", str(lead)),
            ("entity_id", str(lead)),
        ]
    else:  # a chat Kommo has not tied to a lead: the contact only
        fields += [("element_type", "1"), ("element_id", str(contact))]
    author_id, author_type, author_name = author
    fields += [
        ("type", direction),
        ("author[id]", author_id),
        ("author[type]", author_type),
        ("author[name]", author_name),
    ]
    for key, value in (attachment or {}).items():
        fields.append((f"attachment[{key}]", value))
    fields.append(("origin", "waba"))
    return kommo_body("message[add][0]", fields)


def send_hook(client: Client, body: str) -> dict[str, Any]:
    with committed():
        response = post(client, KOMMO_URL, body, content_type=FORM)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def send_callback(client: Client, body: dict[str, Any] | str) -> dict[str, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    with committed():
        response = post(client, N8N_URL, raw, content_type=JSON)
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


@contextmanager
def at(moment: datetime) -> Iterator[None]:
    with time_machine.travel(moment, tick=False):
        yield


def tick(moment: datetime) -> None:
    """The scheduler's sweeps at `moment`: due events and actions go (inline tasks)."""
    with at(moment), committed():
        sweep_events()
        sweep_actions()


def n8n_bodies(n8n: LocalHttpServer, action: str | None = None) -> list[dict[str, Any]]:
    bodies = [r.json() for r in n8n.received]
    return [b for b in bodies if action is None or b["action"] == action]
