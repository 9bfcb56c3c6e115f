"""What every outbound HTTP call returns: status and a short excerpt, or the network error."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from kommo_hub.redaction import redact_body

EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class HttpResult:
    status_code: int | None
    excerpt: str = ""
    error: str = ""
    retry_after_seconds: float | None = None
    # The whole response text, for callers that read the answer (the excerpt is what is kept).
    body: str = field(default="", repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def json(self) -> Any:
        """The answer parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body or self.excerpt)
        except ValueError:
            return None


def retry_after_seconds(value: str) -> float | None:
    """Retry-After is either delay-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def result_from_response(response: httpx.Response) -> HttpResult:
    return HttpResult(
        status_code=response.status_code,
        # Kept in the admin: a token an API echoes back (e.g. OAuth) is not.
        excerpt=redact_body(response.text)[:EXCERPT_CHARS],
        body=response.text,
        retry_after_seconds=retry_after_seconds(response.headers.get("Retry-After", "")),
    )


def result_from_error(exc: httpx.HTTPError) -> HttpResult:
    # The message of an httpx error may include the URL; ours never carry secrets in URLs.
    return HttpResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:500])
