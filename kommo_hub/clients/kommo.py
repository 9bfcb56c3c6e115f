"""The Kommo API v4 client: bearer token, explicit timeouts, and the account-wide rate limit."""

import logging
from typing import Any

import httpx
from django.conf import settings

from kommo_hub.clients.http import HttpResult, result_from_error, result_from_response
from kommo_hub.clients.ratelimit import RateLimited, acquire, limiter_for

logger = logging.getLogger("kommo_hub.kommo")

# Kommo API v4 resources read by more than one caller (../shared/reference/kommo.md §3).
CONTACTS_PATH = "/api/v4/contacts"


def kommo_base_url() -> str:
    if settings.KOMMO_BASE_URL:
        return settings.KOMMO_BASE_URL.rstrip("/")
    if settings.KOMMO_SUBDOMAIN:
        return f"https://{settings.KOMMO_SUBDOMAIN}.kommo.com"
    return ""


def kommo_configured() -> bool:
    return bool(kommo_base_url() and settings.KOMMO_ACCESS_TOKEN)


def kommo_request(*, method: str, path: str, json: Any = None) -> HttpResult:
    """One API call, after taking a grant from the shared 7-per-second window.

    The client and the request are ready before the grant is taken, so the request leaves right
    after it, and the grant is released when the call ended: Kommo counts arrivals, and a call
    that left late must not bunch up with the next second's.
    """
    headers = {
        "Authorization": f"Bearer {settings.KOMMO_ACCESS_TOKEN}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    url = f"{kommo_base_url()}/{path.lstrip('/')}"
    limiter = limiter_for("kommo", limit=settings.KOMMO_MAX_REQUESTS_PER_SECOND)
    with httpx.Client(timeout=settings.KOMMO_TIMEOUT_SECONDS) as client:
        request = client.build_request(method.upper(), url, json=json, headers=headers)
        try:
            acquire(limiter, timeout=settings.KOMMO_TIMEOUT_SECONDS)
        except RateLimited as exc:
            return HttpResult(
                status_code=None, error=f"local rate limit: {exc}", retry_after_seconds=1.0
            )
        try:
            response = client.send(request)
        except httpx.HTTPError as exc:
            return result_from_error(exc)
        finally:
            limiter.release()  # the call counts until it ended (see ratelimit.py)
    return result_from_response(response)
