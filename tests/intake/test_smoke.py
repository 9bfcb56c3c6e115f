import pytest
from django.conf import settings

from kommo_hub.models import EventStatus, InboundEvent, Lead
from tests.conftest import shared_fixture

pytestmark = pytest.mark.django_db(transaction=True)


def test_tasks_run_inline_in_tests() -> None:
    assert settings.TASKS_BACKEND == "immediate"


def test_kommo_lead_add_fixture_is_accepted_and_processed(client) -> None:
    response = client.post(
        "/webhooks/kommo/kommo-test-secret/",
        data=shared_fixture("kommo/lead_add.form"),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0}
    event = InboundEvent.objects.get()
    assert event.status == EventStatus.PROCESSED
    assert Lead.objects.get().kommo_lead_id == 18754321
