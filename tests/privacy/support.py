"""A person with data in every table the hub has, and a generic scan of every row for it."""

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import Client

from botcontrol.models import BotChange, BotMode, BotState, ChangeVia
from kommo_hub.models import (
    ActionStatus,
    Alert,
    Conversation,
    InboundRequest,
    Lead,
    LeadNote,
    Message,
)
from routing.models import Assignment
from scheduling.models import Reminder
from tests.conftest import own_fixture
from tests.factories import OutboundActionFactory
from tests.intake.wire import FORMS_URL, JSON, post
from tests.outbox.support import committed
from tests.routing.factories import SalespersonFactory
from tests.scheduling.factories import AppointmentFactory, InteractionFactory

# What the website form (tests/fixtures/forms/website_pt.json) and the chat below carry.
NAME = "Ana Paula Lima"
PHONE = "+5521998765432"
TRACES = [
    NAME,
    "Ana.Lima@Example.com",
    "ana.lima@example.com",
    PHONE,
    "21998765432",
    "(21) 99876-5432",
    "Lima & Filhos",
    "Quero agendar uma visita",
    "meu cpf 123.456.789-00",
]


@dataclass
class Person:
    lead: Lead
    conversation: Conversation


def person_build(at: datetime, *, chat: str = "chat-ana", kommo_lead_id: int = 18754321) -> Person:
    """The form posted for real (request, event, routing, held actions), then the rest of the
    person's life in the hub: chat, notes, meeting, Supabase history, alerts, admin history."""
    with committed():
        response = post(Client(), FORMS_URL, own_fixture("forms/website_pt.json"), JSON)
    assert response.status_code == 200, response.content
    lead = Lead.objects.get(email="ana.lima@example.com")
    Lead.objects.filter(pk=lead.pk).update(kommo_lead_id=kommo_lead_id)
    lead.refresh_from_db()
    conversation = Conversation.objects.create(chat_id=chat, lead=lead)
    for n, (direction, kind, author, text) in enumerate(
        [
            ("in", "customer", NAME, "Quero agendar uma visita, meu cpf 123.456.789-00"),
            ("out", "bot", "", f"Olá {NAME}! Confirmo seu telefone (21) 99876-5432?"),
            ("out", "salesperson", "Vendedora", f"{NAME}, te ligo no {PHONE}"),
        ]
    ):
        Message.objects.create(
            conversation=conversation,
            external_id=f"{chat}-msg-{n}",
            direction=direction,
            author_kind=kind,
            author_name=author,
            text=text,
            attachment={"link": f"https://cdn.example/{PHONE}.jpg"} if n == 0 else {},
            sent_at=at,
        )
    LeadNote.objects.create(
        kommo_note_id=kommo_lead_id + 1, lead=lead, kommo_lead_id=kommo_lead_id,
        text=f"Cliente {NAME} pediu retorno no {PHONE}",
    )  # fmt: skip
    BotState.objects.create(
        conversation=conversation, mode=BotMode.PAUSED, via=ChangeVia.COMMAND,
        by_name="Vendedora", reason=f"#pausar: {NAME} quer falar com gente",
    )  # fmt: skip
    BotChange.objects.create(
        conversation=conversation, mode=BotMode.PAUSED, via=ChangeVia.COMMAND,
        by_name="Vendedora", reason=f"#pausar: {NAME} quer falar com gente", at=at,
    )  # fmt: skip
    salesperson = SalespersonFactory(name="Vendedora")
    # The routing decision the form got: a rule on the phone quotes it in the explanation.
    Assignment.objects.filter(lead=lead).update(
        explanation={"rules_checked": [{"why": f"phone {PHONE} is DDD 21"}]}
    )
    appointment = AppointmentFactory(
        lead=lead, salesperson=salesperson, starts_at=at, title=f"Visita {NAME}",
        notes=f"Levar proposta para Lima & Filhos, {PHONE}",
    )  # fmt: skip
    Reminder.objects.create(
        appointment=appointment, offset_minutes=60, appointment_starts_at=at, due_at=at,
        detail=f"n8n: could not reach {PHONE}",
    )  # fmt: skip
    InteractionFactory(lead=lead, text=f"Ligação para {NAME}", data={"phone": PHONE})
    OutboundActionFactory(
        lead=lead, conversation=conversation, action="reply", status=ActionStatus.DONE,
        payload={"lead": {"name": NAME, "phone": PHONE}, "messages": ["Quero agendar uma visita"]},
        result={"reply_text": f"Olá {NAME}"}, last_response=f'{{"to": "{PHONE}"}}',
    )  # fmt: skip
    OutboundActionFactory(lead=lead, action="reminder", status=ActionStatus.FAILED,
                          last_error=f"n8n: number {PHONE} is not on WhatsApp")  # fmt: skip
    Alert.objects.create(kind=Alert.Kind.N8N_FAILED, message=f"n8n: {PHONE} unreachable")
    user = get_user_model().objects.create(username="gerente-lgpd")
    LogEntry.objects.log_actions(
        user_id=user.pk, queryset=Lead.objects.filter(pk=lead.pk), action_flag=ADDITION
    )
    # A duplicate of the form, stored as a request without events (dedupe).
    InboundRequest.objects.create(
        source="forms", body=own_fixture("forms/website_pt.json").decode(), accepted=0,
        duplicates=1, remote_addr="203.0.113.9", headers={"X-Forwarded-For": "203.0.113.9"},
    )  # fmt: skip
    assert LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Lead), object_id=str(lead.pk)
    ).exists()
    return Person(lead=lead, conversation=conversation)


TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField, models.GenericIPAddressField)


def traces_in_database(traces: list[str]) -> list[str]:
    """Every (table.field, trace) where a trace appears, scanning every model's text fields."""
    found = []
    lowered = [trace.lower() for trace in traces]
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields if isinstance(f, TEXT_FIELDS)]
        if not names:
            continue
        for row in model._default_manager.values_list(*names):
            for name, value in zip(names, row, strict=True):
                text = (
                    json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
                )
                text = text.lower()
                found += [
                    f"{model._meta.label}.{name}: {trace}"
                    for trace in lowered
                    if trace in text or json.dumps(trace)[1:-1] in text
                ]
    return found


def traces_in_cache(traces: list[str]) -> list[str]:
    location = Path(settings.CACHES["default"]["LOCATION"])
    found = []
    for path in location.rglob("*"):
        if path.is_file():
            content = path.read_bytes().lower()
            found += [
                f"{path.name}: {trace}" for trace in traces if trace.lower().encode() in content
            ]
    return found


def snapshot() -> dict[str, list[Any]]:
    """Every row of every table, to compare before and after."""
    return {
        model._meta.label: sorted(
            (repr(sorted(row.items())) for row in model._default_manager.values()),
        )
        for model in apps.get_models()
    }
