"""The extremes no random draw reaches in a CI budget: bodies over the size limit, nesting deeper
than Python's recursion limit, numbers too long to convert, too many fields, other encodings,
other methods. Each receiver answers a 4xx naming the problem (or takes the body), and stores
nothing it refused."""

import json
from typing import Any

import pytest
from django.test import Client, override_settings

from kommo_hub.models import InboundRequest

from .test_receivers import RECEIVERS, _check, _counts, _post

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
LIMIT = 4096

EXTREMES: dict[str, tuple[bytes, str]] = {
    "over the size limit (json)": (b'{"a": "' + b"x" * LIMIT + b'"}', JSON),
    "over the size limit (form)": (b"a=" + b"x" * LIMIT, FORM),
    "nested deeper than the recursion limit (json)": (b"[" * 100_000 + b"]" * 100_000, JSON),
    "nested objects (json)": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON),
    "nested brackets (form)": (b"leads" + b"[a]" * 1000 + b"=1", FORM),
    "a number of 5000 digits (json)": (b'{"id": ' + b"9" * 5000 + b"}", JSON),
    "a number too large for a float (json)": (b'{"id": 1e999, "updated_at": -1e999}', JSON),
    "NaN and Infinity (json)": (b'{"id": NaN, "updated_at": Infinity}', JSON),
    "too many fields (form)": (b"&".join(b"a%d=1" % n for n in range(200)), FORM),
    "utf-16 with its charset": ('{"nome": "Ana"}'.encode("utf-16"), f"{JSON}; charset=utf-16"),
    "latin-1 bytes (json)": ('{"nome": "João"}'.encode("latin-1"), JSON),
    "latin-1 bytes (form)": ("nome=João".encode("latin-1"), FORM),
    "an unknown charset": (b'{"nome": "Ana"}', f"{JSON}; charset=klingon"),
    "a lone surrogate escape": (b'{"nome": "\\ud800", "email": "\\udfff@x.com"}', JSON),
    "a NUL in a key and a value": (b'{"no\\u0000me": "A\\u0000na"}', JSON),
    "only a BOM": (b"\xef\xbb\xbf", JSON),
    "empty": (b"", FORM),
}


@pytest.mark.django_db
@pytest.mark.parametrize("extreme", sorted(EXTREMES))
@pytest.mark.parametrize("receiver", sorted(RECEIVERS))
def test_an_extreme_body_gets_a_clear_answer_and_never_a_500(receiver: str, extreme: str) -> None:
    url, _bodies = RECEIVERS[receiver]
    body, content_type = EXTREMES[extreme]
    before = _counts()

    with override_settings(
        WEBHOOK_MAX_BODY_BYTES=LIMIT, DATA_UPLOAD_MAX_MEMORY_SIZE=LIMIT, WEBHOOK_MAX_FIELDS=100
    ):
        response = _post(url, body, content_type, {})

    _check(receiver, response, before)
    if extreme.startswith("over the size limit"):
        assert response.status_code == 413


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("receiver", sorted(RECEIVERS))
def test_other_methods_are_405_and_store_nothing(receiver: str, method: str) -> None:
    url, _bodies = RECEIVERS[receiver]

    response = Client(raise_request_exception=False).generic(method, url, data=b"{}")

    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert not InboundRequest.objects.exists()


def _deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.django_db
@pytest.mark.parametrize("receiver", ["rdstation", "forms", "supabase", "n8n"])
def test_a_deep_but_parseable_structure_is_stored_or_refused_without_a_500(receiver: str) -> None:
    url, _bodies = RECEIVERS[receiver]
    body = json.dumps({"event_type": "x", "table": "x", "type": "x", "leads": _deep(500)})
    before = _counts()

    _check(receiver, _post(url, body.encode(), JSON, {}), before)
