"""Every receiver, fed real bodies (the fixtures) broken a little, under right and wrong content
types, signed and unsigned: always a 2xx or a 4xx naming the problem, never a 500, and nothing
stored when the answer is a 4xx.

Receivers: Kommo (form-encoded), RD Station (JSON), the website form (JSON and form-encoded,
with and without a signature), the n8n callback, n8n's claim and the Supabase webhook.
Arbitrary bytes and arbitrary JSON are in tests/intake/test_properties.py; here the bodies start
from the real shapes so they reach the parsers' and the handlers' deeper branches.
"""

import hashlib
import hmac
import json
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from kommo_hub.models import InboundEvent, InboundRequest, N8nClaim, OutboundAction
from tests.factories import LeadFactory, OutboundActionFactory
from tests.intake.wire import RECEIVER_URLS
from tests.outbox.support import committed

from .conftest import fuzz_settings
from .mutations import (
    content_type_of,
    fixtures,
    json_values,
    mutated_body,
    supabase_webhooks,
    wrong_content_types,
)

EXAMPLES = 50
ACTION_KEY = "lead:1:reply:fuzz"


CLAIM_URL = reverse("webhook-n8n-claim", args=["n8n-callback-test-secret"])


def _json(name: str, value: Any) -> tuple[str, bytes]:
    return name, json.dumps(value).encode()


N8N_BODIES = dict(
    [
        _json("n8n/done.json", {
            "idempotency_key": ACTION_KEY, "status": "done", "execution_id": "812",
            "whatsapp_message_id": "wamid.HBgM", "kommo_note_id": 99001,
            "reply_text": "Olá! Posso ajudar?", "appointment": None, "error": None,
        }),
        _json("n8n/handoff.json", {
            "idempotency_key": ACTION_KEY, "status": "handoff", "execution_id": 813,
            "reply_text": "Vou chamar a Ana", "error": "customer asked for a person",
        }),
        _json("n8n/failed.json", {
            "idempotency_key": ACTION_KEY, "status": "failed", "error": "WhatsApp 131047",
        }),
        _json("n8n/appointment.json", {
            "idempotency_key": ACTION_KEY, "status": "done",
            "appointment": {"id": 1, "start": "2026-11-26T14:00:00-03:00", "status": "booked"},
        }),
    ]
)  # fmt: skip
CLAIM_BODIES = dict(
    [
        _json("claim/reply.json", {
            "idempotency_key": ACTION_KEY, "execution_id": "812", "action": "reply",
        }),
        _json("claim/number.json", {"idempotency_key": ACTION_KEY, "execution_id": 813}),
        _json("claim/unknown.json", {"idempotency_key": "lead:9:reply:x", "execution_id": "1"}),
    ]
)  # fmt: skip

RECEIVERS: dict[str, tuple[str, dict[str, bytes]]] = {
    "kommo": (RECEIVER_URLS["kommo"], fixtures("kommo")),
    "rdstation": (RECEIVER_URLS["rdstation"], fixtures("rdstation")),
    "forms": (RECEIVER_URLS["forms"], fixtures("forms")),
    "n8n": (RECEIVER_URLS["n8n"], N8N_BODIES),
    "supabase": (RECEIVER_URLS["supabase"], supabase_webhooks()),
    "n8n-claim": (CLAIM_URL, CLAIM_BODIES),
}

# The claim answers synchronously: 404 for a key the hub never sent.
ANSWERS = {name: {200, 400, 403, 413} for name in RECEIVERS} | {"n8n-claim": {200, 400, 404, 413}}


def _counts() -> dict[str, int]:
    counted = [InboundRequest, InboundEvent, OutboundAction, N8nClaim]
    return {model.__name__: model.objects.count() for model in counted}


def _note(text: str) -> None:
    if currently_in_test_context():  # the statistics of a hypothesis run
        event(text)


def _check(receiver: str, response: Any, before: dict[str, int]) -> None:
    assert response.status_code in ANSWERS[receiver], (response.status_code, response.content)
    _note(f"{receiver} {response.status_code}")
    answer = response.json()
    if response.status_code >= 400:
        message = answer.get("error") or answer.get("detail")
        assert isinstance(message, str), answer
        assert message
        _note(f"{receiver}: {message[:40]}")
        assert _counts() == before, "a refused request left rows behind"
    elif receiver != "n8n-claim":
        assert _counts()["InboundRequest"] == before["InboundRequest"] + 1


@pytest.fixture
def sent_action(db: None) -> None:
    """An n8n action the callbacks and claims can name."""
    OutboundActionFactory(
        idempotency_key=ACTION_KEY, action="reply", status="done", lead=LeadFactory()
    )


def _post(url: str, body: bytes, content_type: str, headers: dict[str, str]) -> Any:
    client = Client(raise_request_exception=False)
    with committed():  # tasks run inline after the answer: a crash there surfaces too
        return client.generic("POST", url, data=body, content_type=content_type, headers=headers)


@pytest.mark.django_db
@pytest.mark.parametrize("receiver", sorted(RECEIVERS))
def test_a_broken_real_body_gets_a_2xx_or_a_4xx_with_a_message_and_never_a_500(
    receiver: str, sent_action: None
) -> None:
    url, bodies = RECEIVERS[receiver]
    assert bodies, f"no fixtures for {receiver}"

    @fuzz_settings(EXAMPLES)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(bodies)), label="fixture")
        body = data.draw(mutated_body(bodies[name]), label="body")
        content_type = data.draw(
            st.just(content_type_of(name)) | wrong_content_types, label="content_type"
        )
        before = _counts()
        _check(receiver, _post(url, body, content_type, {}), before)

    check()


@pytest.mark.django_db
@pytest.mark.parametrize("receiver", ["kommo", "forms"])
def test_with_signing_and_the_account_check_on_broken_bodies_still_get_clear_answers(
    receiver: str, sent_action: None
) -> None:
    url, bodies = RECEIVERS[receiver]

    @fuzz_settings(EXAMPLES // 2)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(bodies)), label="fixture")
        body = data.draw(mutated_body(bodies[name]), label="body")
        signature = "sha256=" + hmac.new(b"sign-me", body, hashlib.sha256).hexdigest()
        signed = data.draw(st.sampled_from(["valid", "wrong", "none"]), label="signature")
        headers = {
            "valid": {"X-Hub-Signature-256": signature},
            "wrong": {"X-Hub-Signature-256": signature[:-2] + "00"},
            "none": {},
        }[signed]
        before = _counts()
        with override_settings(
            KOMMO_ACCOUNT_ID="31234567",
            KOMMO_SUBDOMAIN="acmevendas",
            FORMS_SIGNING_SECRET="sign-me",
        ):
            response = _post(url, body, content_type_of(name), headers)
        _check(receiver, response, before)
        if receiver == "forms" and signed != "valid":
            assert response.status_code == 403

    check()


@pytest.mark.django_db
def test_every_fixture_unbroken_is_accepted(sent_action: None) -> None:
    """The mutations start from bodies the receivers take: otherwise the fuzz only tests the
    first check."""
    answers = {}
    for url, bodies in RECEIVERS.values():
        for name, body in bodies.items():
            response = _post(url, body, content_type_of(name), {})
            answers[name] = response.status_code
    assert answers == dict.fromkeys(answers, 200) | {"claim/unknown.json": 404}


@pytest.mark.django_db
def test_the_claim_endpoint_takes_arbitrary_bytes_and_json_without_a_500(
    sent_action: None,
) -> None:
    """The other receivers get arbitrary bodies in tests/intake/test_properties.py."""
    bodies = st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode())

    @fuzz_settings(EXAMPLES)
    @given(body=bodies, content_type=wrong_content_types)
    def check(body: bytes, content_type: str) -> None:
        before = _counts()
        _check("n8n-claim", _post(CLAIM_URL, body, content_type, {}), before)

    check()
