"""The n8n client: one webhook for every action, authenticated by a shared header secret."""

import logging
from typing import Any

import httpx
from django.conf import settings

from kommo_hub.clients.http import HttpResult, result_from_error, result_from_response

logger = logging.getLogger("kommo_hub.n8n")

SECRET_HEADER = "X-Kommo-Hub-Secret"  # noqa: S105 (a header name, not a secret)


def n8n_configured() -> bool:
    return bool(settings.N8N_WEBHOOK_URL and settings.N8N_WEBHOOK_SECRET)


def n8n_post_action(*, envelope: dict[str, Any]) -> HttpResult:
    headers = {SECRET_HEADER: settings.N8N_WEBHOOK_SECRET, "Content-Type": "application/json"}
    try:
        with httpx.Client(timeout=settings.N8N_TIMEOUT_SECONDS) as client:
            response = client.post(settings.N8N_WEBHOOK_URL, json=envelope, headers=headers)
    except httpx.HTTPError as exc:
        return result_from_error(exc)
    return result_from_response(response)
