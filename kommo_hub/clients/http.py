"""What every outbound HTTP call returns: status and a short excerpt, or the network error."""

from dataclasses import dataclass

import httpx

EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class HttpResult:
    status_code: int | None
    excerpt: str = ""
    error: str = ""
    retry_after_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def result_from_response(response: httpx.Response) -> HttpResult:
    retry_after = response.headers.get("Retry-After", "")
    return HttpResult(
        status_code=response.status_code,
        excerpt=response.text[:EXCERPT_CHARS],
        retry_after_seconds=float(retry_after) if retry_after.isdigit() else None,
    )


def result_from_error(exc: httpx.HTTPError) -> HttpResult:
    # The message of an httpx error may include the URL; ours never carry secrets in URLs.
    return HttpResult(status_code=None, error=f"{type(exc).__name__}: {exc}"[:500])
