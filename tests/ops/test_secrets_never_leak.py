"""A secret a client sends (header, body, path) or the hub holds (settings, API keys) is never
stored, logged or shown in the admin."""

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.core import serializers
from django.test import Client
from django.urls import reverse
from django.views.debug import get_default_exception_reporter_filter

from kommo_hub.clients.http import result_from_response
from kommo_hub.logging import JsonFormatter, MaskPiiFilter
from kommo_hub.models import Alert, ApiKey, InboundEvent, InboundRequest, OutboundAction
from kommo_hub.redaction import REDACTED, redact_body
from tests.conftest import SECRETS, shared_fixture
from tests.factories import OutboundActionFactory

pytestmark = pytest.mark.django_db

FORMS_URL = f"/webhooks/forms/{SECRETS['FORMS_WEBHOOK_SECRET']}/"
KOMMO_URL = f"/webhooks/kommo/{SECRETS['KOMMO_WEBHOOK_SECRET']}/"
# What a careless client sends along with a lead: every one must disappear.
CLIENT_SECRETS = {
    "Authorization": "Bearer header-bearer-4f1c",
    "X-Api-Key": "header-api-key-9d2e",
    "Apikey": "header-apikey-77aa",
    "X-Kommo-Hub-Secret": "header-hub-secret-31bb",
    "X-Access-Token": "header-access-token-c0de",
    "Cookie": "sessionid=header-cookie-5e5e",
}
BODY_SECRETS = {
    "password": "body-password-1234",
    "api_key": "body-api-key-5678",
    "access_token": "body-access-token-abcd",
    "refresh_token": "body-refresh-token-ef01",
    "client_secret": "body-client-secret-2345",
    "Authorization": "body-authorization-6789",
}
SETTINGS_SECRETS = {
    "SECRET_KEY": "settings-secret-key-" + "s" * 40,
    "N8N_WEBHOOK_SECRET": "settings-n8n-secret-aaaa",
    "KOMMO_ACCESS_TOKEN": "settings-kommo-token-bbbb",
    "SUPABASE_SERVICE_ROLE_KEY": "settings-supabase-key-cccc",
    "FORMS_SIGNING_SECRET": "",
}


@pytest.fixture(autouse=True)
def hub_secrets(settings: Any) -> None:
    for name, value in SETTINGS_SECRETS.items():
        setattr(settings, name, value)


@pytest.fixture
def json_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The JSON lines the hub's console handler would write (masking filter included)."""
    lines: list[str] = []
    mask, formatter = MaskPiiFilter(), JsonFormatter()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            mask.filter(record)
            lines.append(formatter.format(record))

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    caplog.set_level(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)


def _every_stored_row() -> str:
    """Every row of every table the hub owns (and auth, sessions, tasks), serialized."""
    models = [m for m in apps.get_models() if m._meta.app_label != "contenttypes"]
    return "\n".join(serializers.serialize("json", m._default_manager.all()) for m in models)


def _secret_headers() -> dict[str, str]:
    return {
        **CLIENT_SECRETS,
        # A browser posting a website form sends the page (here: the receiver URL) along.
        "Referer": f"https://site.example{FORMS_URL}?utm_source=x",
        "Origin": "https://site.example",
    }


def _all_client_secrets() -> list[str]:
    values = [*CLIENT_SECRETS.values(), *BODY_SECRETS.values()]
    return [*values, SECRETS["FORMS_WEBHOOK_SECRET"], SECRETS["KOMMO_WEBHOOK_SECRET"]]


def _assert_absent(text: str, secrets: list[str]) -> None:
    assert [s for s in secrets if s in text] == []


def test_a_json_lead_with_secrets_everywhere_is_stored_and_processed_without_them(
    client: Client, json_log: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    body = {
        "name": "Maria Souza",
        "phone": "+55 11 98765-4321",
        "email": "maria@example.com",
        "utm_source": "google",
        **BODY_SECRETS,
        "integration": {"credentials": {"token": "nested-token-4242"}, "kept": "visible"},
    }

    response = client.post(
        FORMS_URL, body, content_type="application/json", headers=_secret_headers()
    )

    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0}
    stored = InboundRequest.objects.get()
    assert json.loads(stored.body) == {
        "name": "Maria Souza",
        "phone": "+55 11 98765-4321",
        "email": "maria@example.com",
        "utm_source": "google",
        **dict.fromkeys(BODY_SECRETS, REDACTED),
        "integration": {"credentials": REDACTED, "kept": "visible"},
    }
    assert InboundEvent.objects.get().payload == json.loads(stored.body)
    assert stored.headers["Referer"] == "https://site.example/webhooks/forms/***/?utm_source=x"
    assert sorted(stored.headers) == ["Content-Length", "Content-Type", "Origin", "Referer"]
    everything = _every_stored_row()
    _assert_absent(everything, [*_all_client_secrets(), "nested-token-4242"])
    assert "Maria Souza" in everything  # the lead itself was processed
    _assert_absent(caplog.text, [*_all_client_secrets(), "nested-token-4242"])
    _assert_absent("\n".join(json_log), [*_all_client_secrets(), "nested-token-4242"])


def test_a_kommo_form_body_with_a_secret_field_keeps_everything_else_byte_identical(
    client: Client,
) -> None:
    plain = shared_fixture("kommo/lead_add.form").decode()
    body = f"{plain.strip()}&leads%5Badd%5D%5B0%5D%5Bapi_key%5D=kommo-body-key-0f0f"

    response = client.post(
        KOMMO_URL, body, content_type="application/x-www-form-urlencoded", headers=_secret_headers()
    )

    assert response.status_code == 200
    assert InboundRequest.objects.get().body == (
        f"{plain.strip()}&leads%5Badd%5D%5B0%5D%5Bapi_key%5D={REDACTED}"
    )
    assert InboundEvent.objects.get().payload["api_key"] == REDACTED
    _assert_absent(_every_stored_row(), [*_all_client_secrets(), "kommo-body-key-0f0f"])


def test_a_body_with_nothing_to_redact_is_stored_as_it_came(client: Client) -> None:
    body = shared_fixture("kommo/lead_add.form").decode()

    client.post(KOMMO_URL, body, content_type="application/x-www-form-urlencoded")

    assert InboundRequest.objects.get().body == body


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ('{"note": "my token is in the text"}', '{"note": "my token is in the text"}'),
        ('{"\\u0074oken": "escaped-key"}', '{"token": "[redacted]"}'),
        ("a=1&%74oken=escaped-form-key&b=2", "a=1&%74oken=[redacted]&b=2"),
        ("password=&name=x", "password=&name=x"),
        # Found by hypothesis: an empty secret-named value hides nothing; the body stays as it came.
        ('{"a":{"":[{"SECRET":[]}]},"token":{}}', '{"a":{"":[{"SECRET":[]}]},"token":{}}'),
        (
            '{"access_token": "cut-json-x", "more": "tr',
            '{"access_token": "[redacted]", "more": "tr',
        ),
        ("text without any such word", "text without any such word"),
    ],
)
def test_redaction_of_bodies(body: str, stored: str) -> None:
    assert redact_body(body) == stored


def test_a_wrong_secret_in_the_path_is_not_logged(
    client: Client, json_log: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post(
        "/webhooks/forms/guessed-secret-8a8a/", {"name": "x"}, content_type="application/json"
    )

    assert response.status_code == 403
    assert InboundRequest.objects.count() == 0
    assert any("/webhooks/forms/***/" in line for line in json_log)
    _assert_absent("\n".join(json_log), ["guessed-secret-8a8a"])


def test_an_api_response_echoing_a_token_is_kept_redacted() -> None:
    response = httpx.Response(
        200, json={"id": 7, "access_token": "echoed-token-1357", "note": "kept"}
    )

    result = result_from_response(response)

    assert json.loads(result.excerpt) == {"id": 7, "access_token": REDACTED, "note": "kept"}
    assert "echoed-token-1357" in result.body  # the caller may read it; it is not stored


def test_the_admin_pages_show_no_secret(admin_client: Client, client: Client) -> None:
    client.post(
        FORMS_URL,
        {"name": "Ana", "phone": "+55 11 91234-5678", **BODY_SECRETS},
        content_type="application/json",
        headers=_secret_headers(),
    )
    excerpt = result_from_response(
        httpx.Response(401, json={"access_token": "echoed-token-1357"})
    ).excerpt
    action = OutboundActionFactory(status="dead", last_status_code=401, last_response=excerpt)
    alert = Alert.objects.create(kind=Alert.Kind.KOMMO_UNAUTHORIZED, message=f"401: {excerpt}")
    pages = []
    for model, obj in [
        (InboundRequest, InboundRequest.objects.get()),
        (InboundEvent, InboundEvent.objects.get()),
        (OutboundAction, action),
        (Alert, alert),
    ]:
        info = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        for url in (reverse(f"{info}_changelist"), reverse(f"{info}_change", args=[obj.pk])):
            page = admin_client.get(url)
            assert page.status_code == 200, url
            pages.append(page.content.decode())
    pages.append(admin_client.get(reverse("admin:index")).content.decode())

    text = "\n".join(pages)
    assert "Ana" in text
    assert REDACTED in text
    settings_values = [v for v in SETTINGS_SECRETS.values() if v]
    _assert_absent(text, [*_all_client_secrets(), "echoed-token-1357", *settings_values])


def test_the_error_report_hides_every_secret_setting(settings: Any) -> None:
    settings.REDIS_URL = "redis://:redis-password-1357@redis.internal:6379/0"
    settings.DATABASE_URL_SHOWN = "postgres://hub:db-password-2468@db.internal/kommo_hub"
    settings.CACHES = {**settings.CACHES, "redis": {"LOCATION": settings.REDIS_URL}}
    reporter = get_default_exception_reporter_filter()

    shown = repr(reporter.get_safe_settings())
    databases = reporter.cleanse_setting("DATABASES", {"default": {"PASSWORD": "db-pass-9753"}})

    secret_values = [v for v in SETTINGS_SECRETS.values() if v] + list(SECRETS.values())
    _assert_absent(shown, [*secret_values, "db-password-2468", "redis-password-1357"])
    _assert_absent(repr(databases), ["db-pass-9753"])
    assert django_settings.TIME_ZONE in shown  # the rest is still there


def test_api_keys_are_stored_only_as_a_hash(admin_client: Client) -> None:
    api_key, plain = ApiKey.generate(name="n8n", scope="scheduling")

    assert plain.startswith(f"{api_key.prefix}.")
    assert api_key.matches(plain)
    secret_part = plain.split(".", 1)[1]
    _assert_absent(_every_stored_row(), [plain, secret_part])
    pages = admin_client.get(reverse("admin:kommo_hub_apikey_changelist")).content.decode()
    pages += admin_client.get(
        reverse("admin:kommo_hub_apikey_change", args=[api_key.pk])
    ).content.decode()
    _assert_absent(pages, [plain, secret_part])
