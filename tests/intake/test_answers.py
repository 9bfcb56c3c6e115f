"""What each receiver answers: 403 / 400 / 413 with nothing stored, signatures, form dedupe."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from kommo_hub.intake.store import safe_headers
from kommo_hub.models import EventStatus, InboundEvent, InboundRequest, Lead
from tests.conftest import own_fixture, shared_fixture

from .wire import (
    ACCOUNT,
    FORM,
    FORMS_URL,
    JSON,
    KOMMO_URL,
    N8N_URL,
    RDSTATION_URL,
    RECEIVER_URLS,
    SUPABASE_URL,
    accepted,
    duplicate,
    php_form,
    post,
    stored_nothing,
)

FORM_BODY = own_fixture("forms/website_pt.json")

VALID_BODIES = {
    "kommo": (shared_fixture("kommo/lead_add.form"), FORM),
    "rdstation": (shared_fixture("rdstation/conversion_legacy.json"), JSON),
    "forms": (FORM_BODY, JSON),
    "n8n": (b'{"idempotency_key": "proactive:1", "status": "done"}', JSON),
    "supabase": (
        b'{"type": "INSERT", "table": "agendamentos", "schema": "public",'
        b' "record": {"id": 7, "updated_at": "2026-01-02T10:00:00+00:00"}, "old_record": null}',
        JSON,
    ),
}


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("receiver", sorted(RECEIVER_URLS))
def test_a_wrong_secret_is_403_and_stores_nothing(client, receiver: str) -> None:
    body, content_type = VALID_BODIES[receiver]

    response = post(client, f"/webhooks/{receiver}/wrong-secret/", body, content_type)

    assert response.status_code == 403
    assert response.json() == {"error": "invalid secret"}
    assert stored_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize("receiver", sorted(RECEIVER_URLS))
def test_the_right_body_is_accepted_by_every_receiver(client, receiver: str) -> None:
    body, content_type = VALID_BODIES[receiver]

    response = post(client, RECEIVER_URLS[receiver], body, content_type)

    assert response.status_code == 200
    assert response.json() == accepted(1)
    assert InboundEvent.objects.get().source == receiver


@pytest.mark.django_db
def test_an_unconfigured_secret_rejects_every_path(client, settings) -> None:
    settings.KOMMO_WEBHOOK_SECRET = ""

    response = post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    assert response.status_code == 403
    assert stored_nothing()


@pytest.mark.django_db
def test_receivers_only_accept_post(client) -> None:
    response = client.get(KOMMO_URL)

    assert response.status_code == 405
    assert stored_nothing()


# --- Kommo account check ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("setting", "value"),
    [("KOMMO_ACCOUNT_ID", "99999999"), ("KOMMO_SUBDOMAIN", "outraconta")],
)
def test_a_foreign_kommo_account_is_403_and_stores_nothing(
    client, settings, setting: str, value: str
) -> None:
    setattr(settings, setting, value)

    response = post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    assert response.status_code == 403
    assert response.json() == {
        "error": "webhook from a Kommo account other than the configured one"
    }
    assert stored_nothing()


@pytest.mark.django_db
def test_a_body_without_account_id_is_foreign_when_an_account_id_is_configured(
    client, settings
) -> None:
    settings.KOMMO_ACCOUNT_ID = "31234567"
    body = php_form([("leads[add][0][id]", "1"), ("account[subdomain]", "acmevendas")])

    response = post(client, KOMMO_URL, body)

    assert response.status_code == 403
    assert stored_nothing()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fixture", ["kommo/lead_add.form", "kommo/lead_status_digital_pipeline.form"]
)
def test_the_configured_kommo_account_is_accepted_whatever_the_subdomain_case(
    client, settings, fixture: str
) -> None:
    settings.KOMMO_ACCOUNT_ID = "31234567"
    settings.KOMMO_SUBDOMAIN = "AcmeVendas"

    response = post(client, KOMMO_URL, shared_fixture(fixture))

    assert response.status_code == 200
    assert response.json() == accepted(1)


# --- unparseable bodies -----------------------------------------------------------------------


BAD_BODIES = [
    pytest.param(KOMMO_URL, b'{"account": ', JSON, "invalid JSON: ", id="kommo-bad-json"),
    pytest.param(
        KOMMO_URL,
        b"\xff\xfeleads[add][0][id]=1",
        FORM,
        "body is not UTF-8 (byte 0)",
        id="kommo-not-utf8",
    ),
    pytest.param(
        KOMMO_URL,
        php_form([("leads[add][0][id]", "18754321"), ("leads[add][0][name]", "Lead")]).encode(),
        FORM,
        "missing the account block (account[id] / account[subdomain])",
        id="kommo-no-account",
    ),
    pytest.param(KOMMO_URL, b"", FORM, "missing the account block", id="kommo-empty"),
    pytest.param(
        KOMMO_URL,
        b'[{"account": {"id": "31234567"}}]',
        JSON,
        "expected an object of entity[action][index] groups",
        id="kommo-json-array",
    ),
    pytest.param(
        KOMMO_URL,
        php_form([*ACCOUNT, ("leads", "18754321")]).encode(),
        FORM,
        "no events in the body: expected keys like leads[add][0][id]",
        id="kommo-only-a-scalar-beside-the-account",
    ),
    pytest.param(RDSTATION_URL, b"{not json", JSON, "invalid JSON: ", id="rd-bad-json"),
    pytest.param(
        RDSTATION_URL,
        b'[{"email": "maria@example.com"}]',
        JSON,
        "expected an RD Station body: {'leads': [...]} (legacy) "
        "or {'event_type': ..., 'contact': {...}}",
        id="rd-json-array",
    ),
    pytest.param(RDSTATION_URL, b'{"leads": []}', JSON, "'leads' is empty", id="rd-no-leads"),
    pytest.param(
        RDSTATION_URL,
        b'{"leads": ["maria@example.com"]}',
        JSON,
        "every item of 'leads' must be an object",
        id="rd-lead-not-object",
    ),
    pytest.param(
        RDSTATION_URL,
        b'{"event_type": "WEBHOOK.CONVERTED", "contact": "x"}',
        JSON,
        "'contact' must be an object in an RD Station event",
        id="rd-contact-not-object",
    ),
    pytest.param(RDSTATION_URL, b"\xc3\x28", JSON, "body is not UTF-8 (byte 0)", id="rd-not-utf8"),
    pytest.param(FORMS_URL, b"", FORM, "empty form: expected fields", id="forms-empty"),
    pytest.param(
        FORMS_URL, b'["a", "b"]', JSON, "expected a JSON object with the lead", id="forms-array"
    ),
    pytest.param(FORMS_URL, b'{"nome": ', JSON, "invalid JSON: ", id="forms-bad-json"),
    pytest.param(
        FORMS_URL,
        b"nome=Ana&mensagem=Oi",
        FORM,
        "a lead needs a phone or an e-mail",
        id="forms-no-phone-no-email",
    ),
    pytest.param(
        FORMS_URL,
        b'{"nome": "Ana", "telefone": "", "email": "  "}',
        JSON,
        "a lead needs a phone or an e-mail",
        id="forms-blank-phone-and-email",
    ),
    pytest.param(
        N8N_URL,
        b'{"status": "done"}',
        JSON,
        "'idempotency_key' and 'status' are required",
        id="n8n-no-key",
    ),
    pytest.param(N8N_URL, b"[]", JSON, "expected a JSON object", id="n8n-array"),
    pytest.param(
        SUPABASE_URL,
        b'{"record": {"id": 1}}',
        JSON,
        "expected a Supabase database webhook with 'type' and 'table'",
        id="supabase-no-table",
    ),
    pytest.param(SUPABASE_URL, b"null", JSON, "expected a JSON object", id="supabase-null"),
    pytest.param(
        KOMMO_URL,
        b'{"account": {"id": "1"}, "leads": {"add": [{"id": NaN}]}}',
        JSON,
        "invalid JSON: NaN is not a JSON value",
        id="kommo-nan",
    ),
    pytest.param(
        RDSTATION_URL,
        b'{"leads": [{"id": 1e999}]}',
        JSON,
        "invalid JSON: number out of range: 1e999",
        id="rd-infinity",
    ),
    pytest.param(
        N8N_URL,
        b'{"idempotency_key": "a", "status": "done", "n": ' + b"9" * 5000 + b"}",
        JSON,
        "invalid JSON: Exceeds the limit (4300 digits)",
        id="n8n-huge-integer",
    ),
    pytest.param(
        SUPABASE_URL,
        b'{"type": "INSERT", "table": "t", "record": {"id": "\\u0000"}}',
        JSON,
        "cannot store: the body holds a NUL character",
        id="supabase-nul-escape",
    ),
    pytest.param(
        N8N_URL,
        b'{"idempotency_key": "\\ud800", "status": "done"}',
        JSON,
        "cannot store: the body holds an unpaired surrogate",
        id="n8n-lone-surrogate",
    ),
    pytest.param(
        KOMMO_URL,
        php_form([*ACCOUNT, ("message[add][0][id]", "a\x00b")]).encode(),
        FORM,
        "cannot store: the body holds a NUL character",
        id="kommo-percent-00",
    ),
    pytest.param(
        FORMS_URL,
        b"nome=Ana\x00&email=ana%40example.com",
        FORM,
        "cannot store: the body holds a NUL character",
        id="forms-raw-nul",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("url", "body", "content_type", "error"), BAD_BODIES)
def test_an_unparseable_body_is_400_naming_the_problem_and_stores_nothing(
    client, url: str, body: bytes, content_type: str, error: str
) -> None:
    response = post(client, url, body, content_type)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"].startswith(error)
    assert stored_nothing()


@pytest.mark.django_db
def test_a_form_with_too_many_fields_for_the_configured_limit_is_400(client, settings) -> None:
    settings.WEBHOOK_MAX_FIELDS = 5

    response = post(client, KOMMO_URL, shared_fixture("kommo/lead_add.form"))

    assert response.status_code == 400
    assert response.json() == {"error": "21 fields, more than the limit of 5"}
    assert stored_nothing()


# --- size limit -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("receiver", sorted(RECEIVER_URLS))
def test_a_body_over_the_size_limit_is_413_and_stores_nothing(
    client, settings, receiver: str
) -> None:
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    body, content_type = VALID_BODIES[receiver]
    body = body if len(body) > 100 else body + b" " * (101 - len(body))

    response = post(client, RECEIVER_URLS[receiver], body, content_type)

    assert response.status_code == 413
    assert response.json() == {"error": "body too large", "limit_bytes": 100}
    assert stored_nothing()


@pytest.mark.django_db
def test_a_body_exactly_at_the_size_limit_is_accepted(client, settings) -> None:
    body = b'{"idempotency_key": "proactive:1", "status": "done"}'
    settings.WEBHOOK_MAX_BODY_BYTES = len(body)

    response = post(client, N8N_URL, body, JSON)

    assert response.status_code == 200


# --- signed forms -----------------------------------------------------------------------------


SIGNING_SECRET = "form-signing-secret"


def _sign(body: bytes, secret: str = SIGNING_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.mark.django_db
def test_a_form_with_a_valid_signature_is_accepted(client, settings) -> None:
    settings.FORMS_SIGNING_SECRET = "form-signing-secret"

    response = post(
        client, FORMS_URL, FORM_BODY, JSON, headers={"X-Hub-Signature-256": _sign(FORM_BODY)}
    )

    assert response.status_code == 200
    assert response.json() == accepted(1)
    assert "X-Hub-Signature-256" not in InboundRequest.objects.get().headers


@pytest.mark.django_db
@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param(_sign(FORM_BODY, "another-secret"), id="other-secret"),
        pytest.param(_sign(FORM_BODY + b" "), id="other-body"),
        pytest.param(_sign(FORM_BODY).removeprefix("sha256="), id="no-prefix"),
        pytest.param("sha1=" + hashlib.sha1(FORM_BODY).hexdigest(), id="sha1"),  # noqa: S324
    ],
)
def test_a_signed_form_with_a_missing_or_wrong_signature_is_403_and_stores_nothing(
    client, settings, signature: str | None
) -> None:
    settings.FORMS_SIGNING_SECRET = "form-signing-secret"
    headers = {} if signature is None else {"X-Hub-Signature-256": signature}

    response = post(client, FORMS_URL, FORM_BODY, JSON, headers=headers)

    assert response.status_code == 403
    assert response.json() == {"error": "invalid or missing X-Hub-Signature-256"}
    assert stored_nothing()


@pytest.mark.django_db
def test_without_a_signing_secret_the_signature_header_is_not_required(client) -> None:
    response = post(client, FORMS_URL, FORM_BODY, JSON)

    assert response.status_code == 200


# --- form dedupe ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_same_idempotency_key_is_a_duplicate_even_with_another_body(client) -> None:
    first = post(client, FORMS_URL, FORM_BODY, JSON, headers={"Idempotency-Key": "sub-123"})
    other = json.dumps({"nome": "Outra Pessoa", "email": "outra@example.com"})

    second = post(client, FORMS_URL, other, JSON, headers={"Idempotency-Key": "sub-123"})

    assert first.json() == accepted(1)
    assert second.json() == duplicate(1)
    event = InboundEvent.objects.get()
    assert event.dedupe_key == "forms:idem:sub-123"
    assert event.external_id == "sub-123"
    assert Lead.objects.get().name == "Ana Paula Lima"


@pytest.mark.django_db(transaction=True)
def test_different_idempotency_keys_are_two_events_merged_into_one_lead(client) -> None:
    post(client, FORMS_URL, FORM_BODY, JSON, headers={"Idempotency-Key": "sub-1"})

    response = post(client, FORMS_URL, FORM_BODY, JSON, headers={"Idempotency-Key": "sub-2"})

    assert response.json() == accepted(1)
    assert InboundEvent.objects.filter(status=EventStatus.PROCESSED).count() == 2
    assert Lead.objects.count() == 1


START = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_an_identical_form_within_the_window_is_a_duplicate(client, settings) -> None:
    settings.FORMS_DEDUPE_WINDOW_SECONDS = 600
    with time_machine.travel(START, tick=False) as clock:
        assert post(client, FORMS_URL, FORM_BODY, JSON).json() == accepted(1)
        clock.shift(timedelta(seconds=599))

        response = post(client, FORMS_URL, FORM_BODY, JSON)

    assert response.json() == duplicate(1)
    assert InboundEvent.objects.count() == 1


@pytest.mark.django_db
def test_an_identical_form_after_the_window_is_a_new_event(client, settings) -> None:
    settings.FORMS_DEDUPE_WINDOW_SECONDS = 600
    with time_machine.travel(START, tick=False) as clock:
        post(client, FORMS_URL, FORM_BODY, JSON)
        clock.shift(timedelta(seconds=601))

        response = post(client, FORMS_URL, FORM_BODY, JSON)

    assert response.json() == accepted(1)
    assert InboundEvent.objects.count() == 2


@pytest.mark.django_db
def test_the_window_counts_from_the_first_submission_not_the_last_duplicate(
    client, settings
) -> None:
    settings.FORMS_DEDUPE_WINDOW_SECONDS = 600
    statuses = []
    with time_machine.travel(START, tick=False) as clock:
        for _ in range(4):
            statuses.append(post(client, FORMS_URL, FORM_BODY, JSON).json())
            clock.shift(timedelta(seconds=250))

    assert statuses == [accepted(1), duplicate(1), duplicate(1), accepted(1)]


@pytest.mark.django_db
def test_an_identical_form_with_the_phone_and_email_written_differently_is_a_duplicate(
    client,
) -> None:
    same_person = json.dumps(
        {
            **json.loads(FORM_BODY),
            "telefone": "+55 21 99876 5432",
            "email": "ANA.LIMA@EXAMPLE.COM",
            "nome": "Ana Paula Lima",
        }
    )
    post(client, FORMS_URL, FORM_BODY, JSON)

    response = post(client, FORMS_URL, same_person, JSON)

    assert response.json() == duplicate(1)


@pytest.mark.django_db
def test_a_form_with_another_message_is_a_new_submission(client) -> None:
    post(client, FORMS_URL, FORM_BODY, JSON)
    changed = json.dumps({**json.loads(FORM_BODY), "mensagem": "Na verdade, prefiro ligação"})

    response = post(client, FORMS_URL, changed, JSON)

    assert response.json() == accepted(1)


@pytest.mark.django_db
def test_an_idempotency_key_the_database_cannot_hold_is_400_naming_the_header(client) -> None:
    response = post(client, FORMS_URL, FORM_BODY, JSON, headers={"Idempotency-Key": "a\x00b"})

    assert response.status_code == 400
    assert response.json() == {
        "error": "cannot store: the Idempotency-Key header holds a NUL character"
    }
    assert stored_nothing()


@pytest.mark.django_db
def test_headers_with_characters_the_database_cannot_hold_are_cleaned_not_refused(client) -> None:
    response = post(
        client,
        KOMMO_URL,
        shared_fixture("kommo/lead_add.form"),
        FORM + "\x00",
        headers={"User-Agent": "amoCRM-WebHook-client/1.0\x00", "X-Trace": "\ud800"},
    )

    assert response.status_code == 200
    request = InboundRequest.objects.get()
    assert request.headers["User-Agent"] == "amoCRM-WebHook-client/1.0"
    assert request.headers["X-Trace"] == "?"
    assert request.content_type == FORM


def test_stored_headers_leave_out_anything_that_could_carry_a_secret() -> None:
    meta = {
        "HTTP_USER_AGENT": "amoCRM-WebHook-client/1.0",
        "HTTP_AUTHORIZATION": "Bearer abc",
        "HTTP_COOKIE": "sessionid=1",
        "HTTP_X_HUB_SIGNATURE_256": "sha256=00",
        "HTTP_X_KOMMO_HUB_SECRET": "s",
        "HTTP_X_API_TOKEN": "t",
        "CONTENT_TYPE": FORM,
        "CONTENT_LENGTH": "12",
        "REMOTE_ADDR": "10.0.0.1",
        "PATH_INFO": "/webhooks/kommo/kommo-test-secret/",
    }

    assert safe_headers(meta) == {
        "User-Agent": "amoCRM-WebHook-client/1.0",
        "Content-Type": FORM,
        "Content-Length": "12",
    }
