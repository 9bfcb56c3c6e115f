"""Property: whatever arrives, every receiver answers 200, 400, 403 or 413 - never a 500.

Bodies are arbitrary bytes, arbitrary JSON values, arbitrary PHP bracket-form key/value lists,
and receiver-shaped structures (to reach the handlers), under random content types. Tasks run
inline after commit, so a crash while processing would surface here as a 500 too.
INTAKE_PROPERTY_EXAMPLES=2000 runs a deeper hunt (default 150 examples per receiver).
"""

import hashlib
import hmac
import json
import os
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest
from django.test import Client, override_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kommo_hub.models import EventStatus, InboundEvent, InboundRequest
from kommo_hub.redaction import redact_body

from .wire import RECEIVER_URLS

ANSWERS = {200, 400, 403, 413}

# Derandomized like tests/fuzz/ (the same inputs every run, so CI never flakes); FUZZ_RANDOM=1
# explores new ones.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("INTAKE_PROPERTY_EXAMPLES", "150")),
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Names the parsers and handlers look for, so random structures often reach real code paths.
NAMES = [
    "account", "id", "subdomain", "_links", "leads", "contacts", "companies", "message", "talk",
    "unsorted", "task", "catalogs", "add", "update", "status", "responsible", "delete", "note",
    "restore", "0", "1", "2", "name", "status_id", "pipeline_id", "price", "updated_at",
    "last_modified", "created_at", "date_create", "custom_fields", "values", "value", "enum",
    "code", "PHONE", "EMAIL", "tags", "type", "linked_leads_id", "chat_id", "talk_id", "text",
    "author", "attachment", "entity_type", "entity_id", "element_type", "element_id", "origin",
    "uid", "lead_id", "data", "is_in_work", "note_type", "event_type", "contact", "uuid",
    "email", "phone", "mobile_phone", "personal_phone", "last_conversion", "content",
    "conversion_origin", "nome", "telefone", "mensagem", "origem", "area", "source", "utm_source",
    "idempotency_key", "table", "record", "old_record",
]  # fmt: skip
EDGE_STRINGS = [
    "", " ", "0", "1", "-1", "18754321", "99999999999999999999999", "1767261600", "1e5", "²",
    "(11) 98765-4321", "+55 21 99876-5432", "123", "maria@example.com", "MARIA@", "company",
    "contact", "incoming", "outgoing", "external", "bot", "user", "lead", "2", "waba",
    "2026-01-01 12:10:00", "WEBHOOK.CONVERTED", "INSERT", "done", "x" * 300, "\x00", "\ud800",
    "ção", "😀", "%00", "a[b]", "[]",
]  # fmt: skip

names = st.sampled_from(NAMES) | st.text(max_size=6)
strings = st.sampled_from(EDGE_STRINGS) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=5),
    max_leaves=25,
)
items = st.dictionaries(names, json_values, max_size=8)
ids = st.integers(0, 2**64).map(str) | st.sampled_from(EDGE_STRINGS)
stamps = st.integers(0, 2**40).map(str) | st.sampled_from(EDGE_STRINGS)
phones = st.sampled_from(["(11) 98765-4321", "+55 21 99876-5432", "11987654321", "123"]) | strings
emails = st.sampled_from(["maria@example.com", "Ana.Lima@Example.com", "x@", "@"]) | strings
custom_fields = st.lists(
    st.fixed_dictionaries(
        {"id": ids},
        optional={
            "name": strings,
            "code": st.sampled_from(["PHONE", "EMAIL", "", "utm_source"]),
            "values": st.lists(st.fixed_dictionaries({"value": phones}), max_size=2) | strings,
        },
    ),
    max_size=3,
)
kommo_items = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "name": strings,
        "status_id": ids,
        "price": strings,
        "updated_at": stamps,
        "last_modified": stamps,
        "created_at": stamps,
        "type": st.sampled_from(["contact", "company", "incoming", "outgoing"]) | strings,
        "chat_id": strings,
        "talk_id": ids,
        "text": strings,
        "entity_type": st.sampled_from(["lead", "contact"]) | strings,
        "entity_id": ids,
        "element_type": st.sampled_from(["1", "2", "3"]),
        "element_id": ids,
        "author": st.fixed_dictionaries({}, optional={"type": strings, "name": strings}),
        "attachment": st.fixed_dictionaries({}, optional={"type": strings, "link": strings}),
        "custom_fields": custom_fields,
        "tags": st.lists(st.fixed_dictionaries({"name": strings}), max_size=2) | strings,
        "linked_leads_id": st.dictionaries(ids, ids, max_size=2) | strings,
        "uid": strings,
        "lead_id": ids,
        "data": json_values,
        "note": st.fixed_dictionaries({"id": ids}, optional={"text": strings}),
        "is_in_work": strings,
    },
)


@st.composite
def kommo_shaped(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        body["account"] = {"id": draw(strings), "subdomain": draw(strings)}
    for _ in range(draw(st.integers(1, 3))):
        entity = draw(st.sampled_from(["leads", "contacts", "message", "talk", "unsorted", "task"]))
        action = draw(st.sampled_from(["add", "update", "status", "delete", "note", "restore"]))
        group = draw(st.lists(kommo_items | items, min_size=1, max_size=3))
        body.setdefault(entity, {})[action] = group
    return body


rd_people = st.fixed_dictionaries(
    {},
    optional={
        "uuid": strings,
        "id": ids,
        "email": emails,
        "name": strings,
        "mobile_phone": phones,
        "personal_phone": phones,
        "tags": json_values,
        "custom_fields": json_values,
        "company": json_values,
        "funnel": json_values,
        "last_conversion": st.fixed_dictionaries(
            {},
            optional={
                "content": st.fixed_dictionaries(
                    {}, optional={"identificador": strings, "telefone": phones}
                )
                | json_values,
                "created_at": strings,
                "conversion_origin": json_values,
            },
        )
        | json_values,
    },
)


@st.composite
def rdstation_shaped(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"leads": draw(st.lists(rd_people | items, max_size=3))}
    event_type = draw(
        st.sampled_from(["WEBHOOK.CONVERTED", "WEBHOOK.MARKED_OPPORTUNITY"]) | strings
    )
    return {"event_type": event_type, "contact": draw(rd_people | items)}


form_fields = st.fixed_dictionaries(
    {},
    optional={
        "nome": strings,
        "name": json_values,
        "telefone": phones,
        "phone": json_values,
        "email": emails,
        "mensagem": strings,
        "area": strings,
        "origem": strings,
        "form_id": strings,
        "utm_source": json_values,
        "tags": json_values,
    },
)
forms_shaped = st.builds(
    lambda known, extra: {**extra, **known},
    form_fields,
    st.dictionaries(names, scalars | json_values, max_size=4),
)
n8n_shaped = st.fixed_dictionaries(
    {"idempotency_key": strings, "status": strings}, optional={"error": json_values}
)
supabase_shaped = st.fixed_dictionaries(
    {"type": strings, "table": strings},
    optional={"record": json_values | items, "old_record": json_values | items},
)
SHAPED = {
    "kommo": kommo_shaped(),
    "rdstation": rdstation_shaped(),
    "forms": forms_shaped,
    "n8n": n8n_shaped,
    "supabase": supabase_shaped,
}


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A nested structure as PHP `http_build_query` sends it: `a[b][0]=v`."""
    if isinstance(value, dict | list):
        entries = value.items() if isinstance(value, dict) else enumerate(value)
        pairs: list[tuple[str, str]] = []
        for key, inner in entries:
            pairs += _flatten(inner, f"{prefix}[{key}]" if prefix else str(key))
        return pairs or [(prefix, "")]
    text = "" if value is None else str(value)
    return [(prefix, text)] if prefix else [("value", text)]


bracket_keys = st.lists(names, min_size=1, max_size=5).map(
    lambda parts: parts[0] + "".join(f"[{part}]" for part in parts[1:])
) | st.sampled_from(["a[b", "]]", "[]", "[", "a[]", "a[][b]", "=", "&"])
bracket_pairs = st.lists(st.tuples(bracket_keys, strings), max_size=12)


@st.composite
def form_encoded(draw: st.DrawFn, pairs: st.SearchStrategy[list[tuple[str, str]]]) -> bytes:
    chosen = draw(pairs)
    if draw(st.booleans()):
        chosen = [("account[id]", "31234567"), ("account[subdomain]", "acmevendas"), *chosen]
    if draw(st.integers(0, 4)):
        text = urlencode(chosen, quote_via=quote_plus, errors="surrogatepass")
    else:  # senders that do not escape brackets at all
        text = "&".join(f"{key}={value}" for key, value in chosen)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def json_encoded(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> bytes:
    text = json.dumps(draw(values), ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


def bodies(receiver: str) -> st.SearchStrategy[bytes]:
    shaped = SHAPED[receiver]
    return st.one_of(
        st.binary(max_size=400),
        json_encoded(json_values),
        form_encoded(bracket_pairs),
        json_encoded(shaped),
        json_encoded(shaped),
        form_encoded(shaped.map(_flatten)),
        form_encoded(shaped.map(_flatten)),
    )


content_types = (
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/json",
            "application/json; charset=latin-1",
            "application/x-www-form-urlencoded; charset=utf-16",
            "multipart/form-data; boundary=xyz",
            "text/plain",
            "application/octet-stream",
            "",
        ]
    )
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
    | st.text(max_size=20)
)
idempotency_keys = st.none() | st.text(max_size=20)


def _check_answer(response: Any, body: bytes, requests_before: int) -> None:
    assert response.status_code in ANSWERS, response.content[:500]
    event(f"answer {response.status_code}")
    answer = response.json()
    stored = InboundRequest.objects.count() - requests_before
    if response.status_code != 200:
        assert isinstance(answer["error"], str)
        assert answer["error"]
        event(f"error {answer['error'][:28]}")
        assert stored == 0
        return
    assert answer["accepted"] + answer["duplicates"] >= 1
    assert stored == 1
    request = InboundRequest.objects.latest("pk")
    # Byte for byte, but for the values of secret-named keys (kommo_hub/redaction.py).
    assert request.body == redact_body(body.decode("utf-8"))
    assert (request.accepted, request.duplicates) == (answer["accepted"], answer["duplicates"])
    for status, error in request.events.values_list("status", "last_error"):
        event(f"event {status}" + (f": {error[:60]}" if status == EventStatus.FAILED else ""))
    # Tasks ran inline: nothing is left waiting or half-done.
    assert not InboundEvent.objects.filter(
        status__in=[EventStatus.RECEIVED, EventStatus.PROCESSING]
    ).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("receiver", sorted(RECEIVER_URLS))
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_receiver_never_answers_500_whatever_the_body(receiver: str, data: st.DataObject) -> None:
    body = data.draw(bodies(receiver), label="body")
    content_type = data.draw(content_types, label="content_type")
    idempotency_key = data.draw(idempotency_keys, label="idempotency_key")
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    client = Client(raise_request_exception=False)
    before = InboundRequest.objects.count()

    response = client.generic(
        "POST", RECEIVER_URLS[receiver], data=body, content_type=content_type, headers=headers
    )

    _check_answer(response, body, before)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("receiver", ["kommo", "forms"])
@settings(PROPERTY_SETTINGS, max_examples=75)
@given(data=st.data())
def test_with_the_account_check_and_form_signing_on_answers_stay_in_the_contract(
    receiver: str, data: st.DataObject
) -> None:
    body = data.draw(bodies(receiver), label="body")
    content_type = data.draw(content_types, label="content_type")
    signature = "sha256=" + hmac.new(b"sign-me", body, hashlib.sha256).hexdigest()
    headers = {"X-Hub-Signature-256": signature} if data.draw(st.booleans(), "signed") else {}
    client = Client(raise_request_exception=False)
    before = InboundRequest.objects.count()

    with override_settings(
        KOMMO_ACCOUNT_ID="31234567", KOMMO_SUBDOMAIN="acmevendas", FORMS_SIGNING_SECRET="sign-me"
    ):
        response = client.generic(
            "POST", RECEIVER_URLS[receiver], data=body, content_type=content_type, headers=headers
        )

    _check_answer(response, body, before)
