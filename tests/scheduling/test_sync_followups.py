"""Appointments booked or cancelled in Supabase itself (seen by the sync or its webhook)
get the same Kommo notes, meeting tasks and reminders as the ones booked through the hub's API."""

from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.test import Client

from kommo_hub.models import Lead, OutboundAction
from routing.models import Salesperson
from scheduling.models import Appointment, Reminder, ReminderStatus
from tests.scheduling.test_supabase_sync import post_webhook

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def people() -> None:
    Salesperson.objects.create(pk=41, name="Ana Lima", kommo_user_id=9876501)
    Lead.objects.create(pk=3101, name="Maria Souza", kommo_lead_id=18754321)


def kommo_writes() -> list[tuple[str, str]]:
    return sorted(
        (a.action, a.idempotency_key)
        for a in OutboundAction.objects.filter(target="kommo").order_by("pk")
    )


@pytest.mark.usefixtures("people")
def test_a_booking_made_in_supabase_gets_a_note_a_meeting_task_and_reminders(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    post_webhook(client, "webhook_agendamentos_insert", django_capture_on_commit_callbacks)

    appointment = Appointment.objects.get()
    assert kommo_writes() == [
        ("note_add", f"kommo:note:appointment:{appointment.pk}:booked"),
        ("task_add", f"kommo:task:appointment:{appointment.pk}:booked"),
    ]
    note = OutboundAction.objects.get(action="note_add")
    assert note.payload["text"].startswith("Reunião agendada")
    assert sorted(Reminder.objects.values_list("offset_minutes", "status")) == [
        (60, ReminderStatus.SCHEDULED),
        (1440, ReminderStatus.SCHEDULED),
    ]


@pytest.mark.usefixtures("people")
def test_the_same_booking_seen_twice_writes_to_kommo_once(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    post_webhook(client, "webhook_agendamentos_insert", django_capture_on_commit_callbacks)
    post_webhook(client, "webhook_agendamentos_insert", django_capture_on_commit_callbacks)
    assert len(kommo_writes()) == 2


@pytest.mark.usefixtures("people")
def test_a_cancellation_in_supabase_notes_kommo_and_stops_the_reminders(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    capture = django_capture_on_commit_callbacks
    post_webhook(client, "webhook_agendamentos_insert", capture)
    post_webhook(client, "webhook_agendamentos_update_cancelled", capture)

    appointment = Appointment.objects.get()
    assert (
        "note_add",
        f"kommo:note:appointment:{appointment.pk}:cancelled",
    ) in kommo_writes()
    assert set(Reminder.objects.values_list("status", flat=True)) == {ReminderStatus.CANCELLED}
