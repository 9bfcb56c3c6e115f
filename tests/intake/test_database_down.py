"""While the database is down (a restart, a failover) a webhook gets a retryable 503 with
Retry-After, never a 500: the sender tries again and nothing it was told was accepted is lost."""

import pytest
from django.db import OperationalError
from django.test import Client

from kommo_hub.intake import receivers
from kommo_hub.models import InboundEvent
from tests.conftest import own_fixture, shared_fixture

from .wire import FORM, FORMS_URL, JSON, KOMMO_URL, post, stored_nothing

pytestmark = pytest.mark.django_db

DOWN = OperationalError("connection failed: FATAL:  the database system is shutting down")


def database_down(*args: object, **kwargs: object) -> None:
    raise DOWN


def test_a_kommo_webhook_while_the_database_is_down_gets_503_with_retry_after(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receivers, "inbound_request_store", database_down)

    response = post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"), FORM)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {"error": "temporarily unavailable, retry later"}
    assert stored_nothing()


def test_a_form_whose_dedupe_lookup_fails_gets_503_not_500(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without an Idempotency-Key the forms parser reads earlier submissions from the database.
    monkeypatch.setattr(receivers, "_form_window_key", database_down)

    response = post(client, FORMS_URL, own_fixture("forms/website_pt.json"), JSON)

    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert stored_nothing()


def test_the_same_webhook_sent_again_once_the_database_is_back_is_stored(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = own_fixture("forms/website_pt.json")
    with monkeypatch.context() as patch:
        patch.setattr(receivers, "_form_window_key", database_down)
        assert post(client, FORMS_URL, body, JSON).status_code == 503

    response = post(client, FORMS_URL, body, JSON)

    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert InboundEvent.objects.get().event_type == "forms.lead"
