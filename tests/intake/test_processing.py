"""Processing: transient failures retry with backoff, then dead + alert; permanent errors die
at once; out-of-order Kommo events; merging one person's conversions into one lead."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from kommo_hub.intake.handlers import HANDLERS
from kommo_hub.intake.processing import event_process
from kommo_hub.models import Alert, Contact, EventStatus, InboundEvent, Lead
from kommo_hub.ops.jobs import sweep_events
from tests.conftest import own_fixture, shared_fixture
from tests.factories import InboundEventFactory

from .wire import FORMS_URL, JSON, KOMMO_URL, RDSTATION_URL, accepted, kommo_body, post, utc

pytestmark = pytest.mark.django_db(transaction=True)


def _kommo_down(event: InboundEvent) -> None:
    raise RuntimeError("Kommo is down")


@pytest.fixture
def failing_lead_add(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(HANDLERS, "kommo.leads.add", _kommo_down)


@pytest.mark.usefixtures("failing_lead_add")
def test_a_transient_error_fails_the_event_and_schedules_a_retry(client) -> None:
    before = timezone.now()

    response = post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    assert response.status_code == 200
    assert response.json() == accepted(1)
    event = InboundEvent.objects.get()
    assert event.status == EventStatus.FAILED
    assert event.attempts == 1
    assert event.last_error == "RuntimeError: Kommo is down"
    assert event.next_attempt_at > before
    # RETRY_BASE_SECONDS=10 in tests: the first retry waits between 5 and 10 seconds.
    assert timedelta(seconds=5) <= event.next_attempt_at - before <= timedelta(seconds=11)
    assert event.locked_until is None
    assert event.processed_at is None
    assert not Alert.objects.exists()
    assert not Lead.objects.exists()


@pytest.mark.usefixtures("failing_lead_add")
def test_a_failed_event_is_not_taken_again_before_its_next_attempt(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))
    event = InboundEvent.objects.get()

    outcome = event_process(event_id=event.pk)

    assert outcome == "not claimed"
    event.refresh_from_db()
    assert (event.status, event.attempts) == (EventStatus.FAILED, 1)


@pytest.mark.usefixtures("failing_lead_add")
def test_after_event_max_attempts_the_event_is_dead_with_an_alert(client, settings) -> None:
    settings.EVENT_MAX_ATTEMPTS = 3
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))
    event = InboundEvent.objects.get()
    outcomes = []

    with time_machine.travel(timezone.now(), tick=False) as clock:
        for _ in range(2):
            clock.shift(timedelta(hours=1))
            outcomes.append(event_process(event_id=event.pk))

    assert outcomes == ["failed", "dead"]
    event.refresh_from_db()
    assert event.status == EventStatus.DEAD
    assert event.attempts == 3
    assert event.last_error == "gave up after 3 attempts: RuntimeError: Kommo is down"
    assert event.next_attempt_at is None
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.EVENT_DEAD
    assert alert.active is True
    assert alert.message == (
        f"Event #{event.pk} (kommo.leads.add): "
        "gave up after 3 attempts: RuntimeError: Kommo is down"
    )


@pytest.mark.usefixtures("failing_lead_add")
def test_the_scheduler_sweep_retries_a_failed_event_once_it_is_due(client, monkeypatch) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))
    monkeypatch.undo()  # Kommo is back

    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        swept = sweep_events()

    assert swept == 1
    event = InboundEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.PROCESSED, 2)
    assert event.last_error == ""
    assert Lead.objects.get().kommo_lead_id == 18754321


def test_a_lead_item_without_id_is_dead_at_once_with_the_reason(client) -> None:
    body = kommo_body("leads[add][0]", [("name", "Sem id"), ("status_id", "61234501")])

    response = post(client, KOMMO_URL, body)

    assert response.json() == accepted(1)
    event = InboundEvent.objects.get()
    assert event.status == EventStatus.DEAD
    assert event.attempts == 1
    assert event.last_error == "invalid KommoLead: id: Field required"
    assert event.dedupe_key.startswith("kommo:31234567:leads:add:sha256:")
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.EVENT_DEAD
    assert (
        alert.message
        == f"Event #{event.pk} (kommo.leads.add): invalid KommoLead: id: Field required"
    )
    assert not Lead.objects.exists()


def test_a_message_without_chat_id_is_dead_at_once(client) -> None:
    body = kommo_body("message[add][0]", [("id", "abc-1"), ("text", "oi")])

    post(client, KOMMO_URL, body)

    event = InboundEvent.objects.get()
    assert event.status == EventStatus.DEAD
    assert event.last_error == "invalid KommoMessage: chat_id: Field required"


def test_an_event_whose_type_lost_its_handler_is_ignored_when_processed() -> None:
    event = InboundEventFactory(event_type="kommo.leads.archive")

    assert event_process(event_id=event.pk) == "ignored"
    event.refresh_from_db()
    assert (event.status, event.result) == (EventStatus.IGNORED, "no handler for this event type")


def test_an_older_lead_event_arriving_late_does_not_overwrite_the_newer_one(client) -> None:
    post(client, KOMMO_URL, shared_fixture("kommo/lead_responsible.form"))

    post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    lead = Lead.objects.get()
    assert lead.kommo_status_id == 61234504
    assert lead.kommo_responsible_user_id == 9876599
    assert lead.kommo_updated_at == utc(1767268800)
    late = InboundEvent.objects.get(event_type="kommo.leads.add")
    assert late.status == EventStatus.PROCESSED
    assert (
        late.result == "older than what we have; kept ours; routed: waiting for someone available"
    )


def test_lead_events_in_order_end_in_the_latest_state(client) -> None:
    for name in ("lead_add", "lead_status", "lead_responsible"):
        post(client, KOMMO_URL, shared_fixture(f"kommo/{name}.form"))

    lead = Lead.objects.get()
    assert (lead.kommo_status_id, lead.kommo_responsible_user_id) == (61234504, 9876599)
    assert lead.kommo_updated_at == utc(1767268800)


def test_an_older_contact_event_arriving_late_does_not_overwrite_the_newer_one(client) -> None:
    post(client, KOMMO_URL, own_fixture("kommo/contact_update.form"))

    post(client, KOMMO_URL, own_fixture("kommo/contact_add.form"))

    contact = Contact.objects.get()
    assert contact.name == "Maria Souza Lima"
    assert contact.phone == "+5521998765432"
    assert contact.email == ""
    late = InboundEvent.objects.get(event_type="kommo.contacts.add")
    assert late.result == f"contact {contact.pk} unchanged (older event)"


def test_an_older_lead_delete_does_not_delete_a_lead_updated_later(client) -> None:
    post(client, KOMMO_URL, own_fixture("kommo/lead_update.form"))
    delete = kommo_body("leads[delete][0]", [("id", "18754321"), ("updated_at", "1767261600")])

    post(client, KOMMO_URL, delete)

    assert Lead.objects.get().deleted_in_kommo is False


FORM_SAME_PERSON = {
    "nome": "Maria Souza",
    "telefone": "11 98765-4321",
    "mensagem": "Prefiro contato à tarde",
    "area": "Vendas",
    "utm_source": "site",
}


def test_the_same_phone_from_rd_then_a_form_within_the_merge_window_is_one_lead(
    client,
) -> None:
    post(client, RDSTATION_URL, shared_fixture("rdstation/conversion_legacy.json"), JSON)

    with time_machine.travel(timezone.now() + timedelta(minutes=29)):
        response = post(client, FORMS_URL, json.dumps(FORM_SAME_PERSON), JSON)

    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert lead.source == "rdstation"
    assert lead.utm == {
        "utm_source": "instagram",
        "utm_medium": "cpc",
        "utm_campaign": "jan26-leads",
    }
    assert lead.fields["area"] == "Vendas"
    assert lead.fields["message"] == "Quero uma demonstração"
    form_event = InboundEvent.objects.get(event_type="forms.lead")
    assert form_event.status == EventStatus.PROCESSED
    assert form_event.result == "merged into a recent lead of the same person"
    assert form_event.lead == lead
    assert Contact.objects.count() == 1


def test_the_same_phone_after_the_merge_window_opens_a_second_lead(client, settings) -> None:
    settings.LEAD_MERGE_WINDOW_MINUTES = 30
    post(client, RDSTATION_URL, shared_fixture("rdstation/conversion_legacy.json"), JSON)

    with time_machine.travel(timezone.now() + timedelta(minutes=31)):
        post(client, FORMS_URL, json.dumps(FORM_SAME_PERSON), JSON)

    assert Lead.objects.count() == 2
    form_lead = Lead.objects.get(source="website")
    assert form_lead.phone == "+5511987654321"
    assert form_lead.contact == Contact.objects.get()
    assert form_lead.fields == {"message": "Prefiro contato à tarde", "area": "Vendas"}


def test_a_merged_lead_gains_the_phone_its_first_conversion_lacked(client) -> None:
    post(client, FORMS_URL, json.dumps({"nome": "Maria Souza", "email": "maria@example.com"}), JSON)

    post(
        client,
        FORMS_URL,
        json.dumps({"nome": "Maria", "email": "MARIA@example.com", "telefone": "11 98765-4321"}),
        JSON,
    )

    lead = Lead.objects.get()
    assert lead.name == "Maria Souza"
    assert (lead.phone, lead.phone_raw) == ("+5511987654321", "11 98765-4321")
    assert lead.email == "maria@example.com"
    assert Contact.objects.get().phone == "+5511987654321"


def test_different_people_within_the_window_are_different_leads(client) -> None:
    post(client, FORMS_URL, json.dumps({"nome": "Maria", "telefone": "11 98765-4321"}), JSON)

    post(client, FORMS_URL, json.dumps({"nome": "João", "telefone": "21 99876-5432"}), JSON)

    assert Lead.objects.count() == 2
    assert Contact.objects.count() == 2


def test_a_lead_id_beyond_64_bits_is_dead_at_once_with_the_reason(client) -> None:
    post(client, KOMMO_URL, kommo_body("leads[add][0]", [("id", "99999999999999999999")]))

    event = InboundEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.DEAD, 1)
    assert event.last_error == (
        "invalid KommoLead: id: Input should be less than or equal to 9223372036854775807"
    )
    assert not Lead.objects.exists()


@pytest.mark.parametrize("stamp", ["99999999999999", "²"])
def test_an_impossible_kommo_timestamp_counts_as_no_version(client, stamp: str) -> None:
    body = kommo_body("leads[add][0]", [("id", "18750003"), ("name", "X"), ("updated_at", stamp)])

    post(client, KOMMO_URL, body)

    assert InboundEvent.objects.get().status == EventStatus.PROCESSED
    lead = Lead.objects.get()
    assert (lead.name, lead.kommo_updated_at) == ("X", None)


def test_an_rd_lead_whose_tags_are_not_a_list_is_still_created(client) -> None:
    body = json.loads(shared_fixture("rdstation/conversion_legacy.json"))
    body["leads"][0]["tags"] = 7

    post(client, RDSTATION_URL, json.dumps(body), JSON)

    assert InboundEvent.objects.get().status == EventStatus.PROCESSED
    assert Lead.objects.get().tags == []


@pytest.mark.postgres
def test_a_value_too_long_for_its_column_is_dead_at_once_not_retried(client) -> None:
    body = kommo_body("message[add][0]", [("id", "m1"), ("chat_id", "c" * 80), ("text", "oi")])

    post(client, KOMMO_URL, body)

    event = InboundEvent.objects.get()
    assert (event.status, event.attempts) == (EventStatus.DEAD, 1)
    assert event.last_error.startswith("DataError: value too long for type character varying(64)")
    assert Alert.objects.get().kind == Alert.Kind.EVENT_DEAD
