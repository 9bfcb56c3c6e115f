"""The operators' admin: every page of the pipeline's rows opens, replay works, search finds."""

import pytest
from django.urls import reverse
from django.utils import timezone

from kommo_hub.models import (
    Alert,
    Contact,
    Conversation,
    EventStatus,
    InboundEvent,
    InboundRequest,
    Lead,
    LeadNote,
    Message,
    OutboundAction,
    WorkerHeartbeat,
)
from tests.factories import (
    InboundEventFactory,
    InboundRequestFactory,
    LeadFactory,
    OutboundActionFactory,
)

MODELS = [
    InboundRequest,
    InboundEvent,
    OutboundAction,
    Alert,
    Lead,
    Contact,
    Conversation,
    LeadNote,
    WorkerHeartbeat,
]


@pytest.fixture
def rows() -> dict[type, object]:
    lead = LeadFactory(phone="+5511987654321", kommo_lead_id=18754321)
    request = InboundRequestFactory(body="leads%5Badd%5D%5B0%5D%5Bid%5D=18754321")
    conversation = Conversation.objects.create(chat_id="chat-1", talk_id=4821, lead=lead)
    Message.objects.create(
        conversation=conversation,
        external_id="msg-1",
        direction="in",
        author_kind="customer",
        text="Olá! <b>Quero</b> saber o preço",
        sent_at=timezone.now(),
    )
    return {
        InboundRequest: request,
        InboundEvent: InboundEventFactory(request=request, lead=lead, status=EventStatus.DEAD),
        OutboundAction: OutboundActionFactory(lead=lead),
        Alert: Alert.objects.create(kind=Alert.Kind.EVENT_DEAD, message="Event #1 gave up"),
        Lead: lead,
        Contact: lead.contact,
        Conversation: conversation,
        LeadNote: LeadNote.objects.create(kommo_note_id=301234567, lead=lead, text="Nota"),
        WorkerHeartbeat: WorkerHeartbeat.objects.create(
            worker_id="worker-1", hostname="host", pid=123, last_seen=timezone.now()
        ),
    }


def _url(model: type, view: str, *args: object) -> str:
    return reverse(f"admin:kommo_hub_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_changelist_opens_for_a_superuser(admin_client, rows, model: type) -> None:
    response = admin_client.get(_url(model, "changelist"))

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


@pytest.mark.django_db
@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_change_page_opens_for_a_superuser(admin_client, rows, model: type) -> None:
    response = admin_client.get(_url(model, "change", rows[model].pk))

    assert response.status_code == 200


@pytest.mark.django_db
def test_the_admin_is_closed_to_anonymous_users(client, rows) -> None:
    response = client.get(_url(InboundEvent, "changelist"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_the_event_page_shows_the_raw_body_and_the_payload_escaped(admin_client, rows) -> None:
    event = rows[InboundEvent]
    InboundEvent.objects.filter(pk=event.pk).update(payload={"name": "<script>x</script>"})

    response = admin_client.get(_url(InboundEvent, "change", event.pk))

    content = response.content.decode()
    assert "leads%5Badd%5D%5B0%5D%5Bid%5D=18754321" in content
    assert "&lt;script&gt;x&lt;/script&gt;" in content
    assert "<script>x</script>" not in content


@pytest.mark.django_db
def test_the_replay_action_requeues_the_selected_events(admin_client, rows) -> None:
    dead = rows[InboundEvent]
    other = InboundEventFactory(status=EventStatus.FAILED, attempts=3)

    response = admin_client.post(
        _url(InboundEvent, "changelist"),
        {"action": "replay", "_selected_action": [dead.pk]},
        follow=True,
        headers={"Accept-Language": "en"},
    )

    assert response.status_code == 200
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == (EventStatus.RECEIVED, 0)
    other.refresh_from_db()
    assert (other.status, other.attempts) == (EventStatus.FAILED, 3)
    assert [str(m) for m in response.context["messages"]] == ["1 event queued again."]


@pytest.mark.django_db(transaction=True)
def test_a_replayed_event_is_processed_again(admin_client) -> None:
    dead = InboundEventFactory(
        status=EventStatus.DEAD,
        attempts=8,
        payload={"id": "18750002", "name": "Lead do admin", "updated_at": "1767261600"},
    )

    admin_client.post(
        _url(InboundEvent, "changelist"), {"action": "replay", "_selected_action": [dead.pk]}
    )

    dead.refresh_from_db()
    assert dead.status == EventStatus.PROCESSED
    assert Lead.objects.get(kommo_lead_id=18750002).name == "Lead do admin"


@pytest.mark.django_db
def test_events_can_be_searched_by_their_lead_phone(admin_client, rows) -> None:
    InboundEventFactory()  # an event with no lead

    response = admin_client.get(_url(InboundEvent, "changelist"), {"q": "+5511987654321"})

    assert [e.pk for e in response.context["cl"].result_list] == [rows[InboundEvent].pk]


@pytest.mark.django_db
def test_leads_can_be_searched_by_phone_and_kommo_id(admin_client, rows) -> None:
    LeadFactory(phone="+5521998765432")
    url = _url(Lead, "changelist")

    by_phone = admin_client.get(url, {"q": "5511987654321"})
    by_kommo_id = admin_client.get(url, {"q": "18754321"})

    assert [lead.pk for lead in by_phone.context["cl"].result_list] == [rows[Lead].pk]
    assert [lead.pk for lead in by_kommo_id.context["cl"].result_list] == [rows[Lead].pk]


@pytest.mark.django_db
def test_pipeline_rows_are_read_only_in_the_admin(admin_client, rows) -> None:
    add = admin_client.get(_url(InboundEvent, "add"))
    delete = admin_client.get(_url(InboundEvent, "delete", rows[InboundEvent].pk))

    assert add.status_code == 403
    assert delete.status_code == 403
