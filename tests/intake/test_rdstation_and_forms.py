"""RD Station bodies other than the captures, and website forms as JSON and form-encoded."""

import json

import pytest

from kommo_hub.models import Contact, EventStatus, InboundEvent, Lead
from tests.conftest import own_fixture

from .wire import FORM, FORMS_URL, JSON, RDSTATION_URL, accepted, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_rd_legacy_body_with_two_leads_becomes_two_events_and_two_leads(client) -> None:
    response = post(client, RDSTATION_URL, own_fixture("rdstation/legacy_two_leads.json"), JSON)

    assert response.status_code == 200
    assert response.json() == accepted(2)
    events = list(InboundEvent.objects.order_by("pk"))
    assert [(e.event_type, e.status) for e in events] == [
        ("rdstation.legacy_conversion", EventStatus.PROCESSED),
        ("rdstation.legacy_conversion", EventStatus.PROCESSED),
    ]
    joao = Lead.objects.get(name="João Pereira")
    assert (joao.phone, joao.phone_raw) == ("+5521998765432", "(21) 99876-5432")
    assert (joao.email, joao.email_raw) == ("joao.pereira@example.com", "Joao.Pereira@Example.com")
    assert joao.source == "rdstation"
    assert joao.source_identifier == "landing-black-friday"
    assert joao.utm == {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "bf26"}
    assert joao.fields == {"lead_stage": "Lead", "fit_score": "d", "interest": 0}
    assert joao.tags == []
    ana = Lead.objects.get(name="Ana Costa")
    assert ana.phone == "+5531988887777"
    assert ana.utm == {"utm_source": "facebook", "utm_medium": "social"}
    assert events[0].lead == joao
    assert events[1].lead == ana
    assert Contact.objects.count() == 2


def test_rd_marked_opportunity_is_stored_as_ignored(client) -> None:
    response = post(client, RDSTATION_URL, own_fixture("rdstation/marked_opportunity.json"), JSON)

    assert response.status_code == 200
    assert response.json() == accepted(1)
    event = InboundEvent.objects.get()
    assert event.event_type == "rdstation.marked_opportunity"
    assert event.status == EventStatus.IGNORED
    assert event.result == "no handler for this event type"
    assert event.external_id == "b1f2c3d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    assert not Lead.objects.exists()


EXPECTED_FORM_LEAD = {
    "name": "Ana Paula Lima",
    "phone": "+5521998765432",
    "phone_raw": "(21) 99876-5432",
    "email": "ana.lima@example.com",
    "email_raw": "Ana.Lima@Example.com",
    "source": "website",
    "source_identifier": "",
    "utm": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "visita-jan"},
    "fields": {
        "empresa": "Lima & Filhos",
        "message": "Quero agendar uma visita",
        "area": "Financeiro",
    },
    "tags": [],
}


@pytest.mark.parametrize(
    ("fixture", "content_type"),
    [("forms/website_pt.json", JSON), ("forms/website_pt.form", FORM)],
)
def test_a_portuguese_website_form_becomes_a_normalized_lead(
    client, fixture: str, content_type: str
) -> None:
    response = post(client, FORMS_URL, own_fixture(fixture), content_type)

    assert response.status_code == 200
    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert {key: getattr(lead, key) for key in EXPECTED_FORM_LEAD} == EXPECTED_FORM_LEAD
    contact = Contact.objects.get()
    assert lead.contact == contact
    assert (contact.name, contact.phone, contact.email) == (
        "Ana Paula Lima",
        "+5521998765432",
        "ana.lima@example.com",
    )
    event = InboundEvent.objects.get()
    assert (event.event_type, event.status, event.result) == (
        "forms.lead",
        EventStatus.PROCESSED,
        "lead created; routed: waiting for someone available",
    )
    assert event.lead == lead


def test_the_json_and_form_encoded_versions_of_one_form_are_the_same_submission(client) -> None:
    post(client, FORMS_URL, own_fixture("forms/website_pt.json"), JSON)

    response = post(client, FORMS_URL, own_fixture("forms/website_pt.form"), FORM)

    assert response.json() == {"accepted": 0, "duplicates": 1}
    assert Lead.objects.count() == 1


def test_a_form_without_content_type_is_read_as_json_when_it_looks_like_json(client) -> None:
    body = json.dumps({"name": "Rita", "email": "rita@example.com"})

    response = post(client, FORMS_URL, body, "text/plain")

    assert response.json() == accepted(1)
    assert Lead.objects.get().email == "rita@example.com"


def test_english_form_fields_source_and_form_id_are_kept(client) -> None:
    body = {
        "name": "Bruno Dias",
        "phone": "11 98765-1234",
        "source": "landing-page",
        "form_id": "contato-rodape",
        "tags": ["site", "rodape"],
        "utm_content": "banner-topo",
    }

    response = client.post(FORMS_URL, body, content_type=JSON)

    assert response.json() == accepted(1)
    lead = Lead.objects.get()
    assert lead.source == "landing-page"
    assert lead.source_identifier == "contato-rodape"
    assert lead.phone == "+5511987651234"
    assert lead.tags == ["site", "rodape"]
    assert lead.utm == {"utm_content": "banner-topo"}
    assert lead.fields == {}


def test_a_form_source_longer_than_the_column_still_makes_a_lead(client) -> None:
    body = {
        "nome": "Carla",
        "telefone": "11 98765-1234",
        "origem": "Campanha de Natal - landing page principal do site",
    }

    client.post(FORMS_URL, body, content_type=JSON)

    event = InboundEvent.objects.get()
    assert event.status == EventStatus.PROCESSED
    assert Lead.objects.get().source == "Campanha de Natal - landing page"  # 32 chars
