"""Phones to E.164 (raw kept), e-mails lower-cased (invalid kept raw), names trimmed."""

import json

import pytest

from kommo_hub.intake.normalize import (
    Normalized,
    normalize_email,
    normalize_name,
    normalize_phone,
)
from kommo_hub.models import Contact, Lead
from tests.conftest import own_fixture

from .wire import FORMS_URL, JSON, KOMMO_URL, post


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(11) 98765-4321", Normalized("(11) 98765-4321", "+5511987654321")),
        ("+55 21 99876-5432", Normalized("+55 21 99876-5432", "+5521998765432")),
        ("11987654321", Normalized("11987654321", "+5511987654321")),
        ("  (11) 3222-1100 ", Normalized("(11) 3222-1100", "+551132221100")),
        ("+1 650-253-0000", Normalized("+1 650-253-0000", "+16502530000")),
        ("123", Normalized("123", "")),
        ("não tenho", Normalized("não tenho", "")),
        ("", Normalized("", "")),
        (None, Normalized("", "")),
    ],
)
def test_phones_become_e164_or_stay_raw_with_an_empty_normalized_value(
    raw: object, expected: Normalized
) -> None:
    assert normalize_phone(raw) == expected


def test_a_phone_is_read_in_the_configured_default_region(settings) -> None:
    settings.DEFAULT_PHONE_REGION = "PT"

    assert normalize_phone("912 345 678").value == "+351912345678"


def test_an_absurdly_long_phone_is_cut_to_the_column_length() -> None:
    assert normalize_phone("9" * 200) == Normalized("9" * 64, "")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "Maria.Souza@Example.COM",
            Normalized("Maria.Souza@Example.COM", "maria.souza@example.com"),
        ),
        ("  ana@example.com ", Normalized("ana@example.com", "ana@example.com")),
        ("maria@", Normalized("maria@", "")),
        ("maria souza@example.com", Normalized("maria souza@example.com", "")),
        ("", Normalized("", "")),
        (None, Normalized("", "")),
    ],
)
def test_emails_are_lower_cased_and_invalid_ones_kept_raw_only(
    raw: object, expected: Normalized
) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Maria   Souza ", "Maria Souza"),
        ("Ana\tPaula\nLima", "Ana Paula Lima"),
        ("", ""),
        (None, ""),
        ("x" * 300, "x" * 255),
    ],
)
def test_names_are_trimmed_and_inner_spaces_collapsed(raw: object, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.django_db(transaction=True)
def test_a_form_with_an_invalid_phone_records_it_raw_and_keeps_the_email(client) -> None:
    body = json.dumps({"nome": " Zé ", "telefone": "123", "email": "ZE@Example.com"})

    response = post(client, FORMS_URL, body, JSON)

    assert response.status_code == 200
    lead = Lead.objects.get()
    assert (lead.name, lead.phone, lead.phone_raw) == ("Zé", "", "123")
    assert (lead.email, lead.email_raw) == ("ze@example.com", "ZE@Example.com")
    contact = Contact.objects.get()
    assert (contact.phone, contact.email) == ("", "ze@example.com")


@pytest.mark.django_db(transaction=True)
def test_a_form_with_only_an_invalid_phone_is_kept_without_a_contact(client) -> None:
    response = post(client, FORMS_URL, json.dumps({"nome": "Zé", "telefone": "123"}), JSON)

    assert response.status_code == 200
    lead = Lead.objects.get()
    assert (lead.phone, lead.phone_raw, lead.email, lead.email_raw) == ("", "123", "", "")
    assert lead.contact is None
    assert not Contact.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_form_with_an_invalid_email_records_it_raw_with_an_empty_normalized_value(
    client,
) -> None:
    body = json.dumps({"nome": "Zé", "email": "ze@", "telefone": "+55 21 99876-5432"})

    post(client, FORMS_URL, body, JSON)

    lead = Lead.objects.get()
    assert (lead.email, lead.email_raw) == ("", "ze@")
    assert (lead.phone, lead.phone_raw) == ("+5521998765432", "+55 21 99876-5432")


@pytest.mark.django_db(transaction=True)
def test_a_kommo_contact_with_an_invalid_phone_keeps_it_raw(client) -> None:
    body = own_fixture("kommo/contact_add.form").replace(b"%2811%29+98765-4321", b"123")

    post(client, KOMMO_URL, body)

    contact = Contact.objects.get()
    assert (contact.phone, contact.phone_raw) == ("", "123")
    assert contact.email == "maria.souza@example.com"
