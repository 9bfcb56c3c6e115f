"""Logs never carry a receiver's secret path, phone numbers or e-mail addresses in clear."""

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from kommo_hub.logging import JsonFormatter, MaskPiiFilter, mask_pii
from tests.conftest import own_fixture

from .wire import FORMS_URL, JSON, post


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler (mask filter + JSON formatter) writes."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.django_db
def test_a_webhook_rejected_for_its_secret_does_not_log_the_secret_path(client, console) -> None:
    # The real Kommo secret sent to the wrong receiver must not end up in a log either.
    response = post(client, "/webhooks/rdstation/kommo-test-secret/", b"{}", JSON)

    assert response.status_code == 403
    output = console.getvalue()
    assert "kommo-test-secret" not in output
    forbidden = [line for line in _lines(console) if line["logger"] == "django.request"]
    assert [line["msg"] for line in forbidden] == ["Forbidden: /webhooks/rdstation/***/"]
    assert forbidden[0]["level"] == "WARNING"


@pytest.mark.django_db
def test_a_rejected_body_does_not_log_the_secret_path(client, console) -> None:
    response = post(client, "/webhooks/forms/forms-test-secret/", b"[]", JSON)

    assert response.status_code == 400
    assert "forms-test-secret" not in console.getvalue()
    assert "Bad Request: /webhooks/forms/***/" in [line["msg"] for line in _lines(console)]


@pytest.mark.django_db(transaction=True)
def test_accepting_and_processing_a_form_logs_no_phone_or_email(client, console) -> None:
    response = post(client, FORMS_URL, own_fixture("forms/website_pt.json"), JSON)

    assert response.status_code == 200
    output = console.getvalue()
    assert "webhook accepted" in output
    assert "event processed" in output
    for clear in ("99876-5432", "5521998765432", "Ana.Lima@Example.com", "ana.lima@example"):
        assert clear not in output
    assert "forms-test-secret" not in output


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("ligar para +55 11 98765-4321", "ligar para +5511****21"),
        ("fone (11) 98765-4321.", "fone 1198****21."),
        ("whatsapp +5511987654321", "whatsapp +5511****21"),
        ("e-mail Maria.Souza@Example.COM", "e-mail M***@Example.COM"),
        ("lead 18754321 status 61234504", "lead 18754321 status 61234504"),
        ("POST /webhooks/kommo/kommo-test-secret/", "POST /webhooks/kommo/***/"),
        ("GET /webhooks/n8n/abc?x=1", "GET /webhooks/n8n/***"),
    ],
)
def test_mask_pii_masks_phones_emails_and_secret_paths(text: str, masked: str) -> None:
    assert mask_pii(text) == masked


def test_the_filter_masks_the_message_its_arguments_and_extra_fields() -> None:
    record = logging.LogRecord(
        "kommo_hub.test", logging.INFO, __file__, 1, "lead %s at %s", ("ana@example.com",), None
    )
    record.args = ("ana@example.com", "+55 21 99876-5432")
    record.contact = {"phone": "(21) 99876-5432", "emails": ["joao@example.com"]}

    assert MaskPiiFilter().filter(record) is True

    assert record.getMessage() == "lead a***@example.com at +5521****32"
    assert record.contact == {"phone": "2199****32", "emails": ["j***@example.com"]}


def test_the_json_formatter_masks_what_the_filter_never_saw() -> None:
    try:
        raise ValueError("no contact for maria.souza@example.com / +55 11 98765-4321")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "kommo_hub.test", logging.ERROR, __file__, 1, "boom %s", ("maria@example.com",), exc_info
    )
    record.phone = "11 98765-4321"

    line = json.loads(JsonFormatter().format(record))

    assert line["msg"] == "boom m***@example.com"
    assert line["phone"] == "1198****21"
    assert "maria.souza@example.com" not in line["exc"]
    assert "m***@example.com / +5511****21" in line["exc"]
    assert line["level"] == "ERROR"
    assert line["logger"] == "kommo_hub.test"
