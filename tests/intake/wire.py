"""Posting webhook bodies the way the senders do, and reading back what the hub stored."""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.http import HttpResponse
from django.test import Client

from kommo_hub.models import InboundEvent, InboundRequest

KOMMO_URL = "/webhooks/kommo/kommo-test-secret/"
RDSTATION_URL = "/webhooks/rdstation/rd-test-secret/"
FORMS_URL = "/webhooks/forms/forms-test-secret/"
N8N_URL = "/webhooks/n8n/n8n-callback-test-secret/"
SUPABASE_URL = "/webhooks/supabase/supabase-test-secret/"

RECEIVER_URLS = {
    "kommo": KOMMO_URL,
    "rdstation": RDSTATION_URL,
    "forms": FORMS_URL,
    "n8n": N8N_URL,
    "supabase": SUPABASE_URL,
}

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

ACCOUNT = [
    ("account[subdomain]", "acmevendas"),
    ("account[id]", "31234567"),
    ("account[_links][self]", "https://acmevendas.amocrm.com"),
]


def post(
    client: Client,
    url: str,
    body: bytes | str,
    content_type: str = FORM,
    headers: dict[str, str] | None = None,
) -> HttpResponse:
    """POST the raw body exactly as given (no re-encoding by the test client)."""
    return client.generic("POST", url, data=body, content_type=content_type, headers=headers)


def php_form(pairs: list[tuple[str, str]]) -> str:
    """PHP `http_build_query` style: brackets percent-encoded, spaces as '+'."""
    return urlencode(pairs)


def kommo_body(prefix: str, fields: list[tuple[str, str]]) -> str:
    """One Kommo item under `prefix` (e.g. `leads[add][0]`) plus the account block."""
    return php_form([(f"{prefix}[{key}]", value) for key, value in fields] + ACCOUNT)


def utc(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp, tz=UTC)


def stored_nothing() -> bool:
    return not InboundRequest.objects.exists() and not InboundEvent.objects.exists()


def accepted(count: int = 1) -> dict[str, Any]:
    return {"accepted": count, "duplicates": 0}


def duplicate(count: int = 1) -> dict[str, Any]:
    return {"accepted": 0, "duplicates": count}
