"""`manage.py n8n_check`: probes a user's n8n workflow (faked with respx, as n8n 1.123 answers)
and prints a pass/fail table; with --send-to, one real proactive_message makes the round trip."""

import json
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import respx
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from kommo_hub.models import ActionStatus, InboundEvent, N8nClaim, OutboundAction
from kommo_hub.outbox.services import N8N_ACTIONS

pytestmark = pytest.mark.django_db

N8N_URL = "https://n8n.example.test/webhook/kommo-hub"
N8N_SECRET = "n8n-outbound-test-secret"
HUB = "https://hub.example.test"
PHONE = "+5511987654321"


class FakeWorkflow:
    """The shipped workflow's answers: header auth (403), the Switch's fallback (422), and for an
    action: claim at the hub, answer 202, report back (all through the real hub views)."""

    def __init__(self, *, auth: bool = True, outcome: str = "done", report: bool = True) -> None:
        self.auth, self.outcome, self.report = auth, outcome, report
        self.envelopes: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        envelope = json.loads(request.content)
        self.envelopes.append(envelope)
        if self.auth and request.headers.get("X-Kommo-Hub-Secret") != N8N_SECRET:
            return httpx.Response(403, text="Authorization data is wrong!")
        if envelope.get("action") not in N8N_ACTIONS:
            return httpx.Response(422, json={"error": f"unknown action: {envelope['action']!r}"})
        callback = urlsplit(envelope["callback_url"]).path
        body = {"idempotency_key": envelope["idempotency_key"], "execution_id": "9001"}
        answer = hub_post(f"{callback}claim/", {**body, "action": envelope["action"]})
        self.claims.append(answer)
        if answer.get("proceed") is not True:
            return httpx.Response(422, json={"status": "refused"})
        if self.report:
            report = {**body, "status": self.outcome, "reply_text": "Integração funcionando!"}
            if self.outcome == "failed":
                report["error"] = (
                    "WhatsApp send: (#131030) Recipient phone number not in allowed list"
                )
            hub_post(callback, report)
        return httpx.Response(202, json={"status": "accepted"})


def hub_post(path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = Client().post(path, json.dumps(body), content_type="application/json")
    answer: dict[str, Any] = response.json()
    return answer


def forward_to_hub(request: httpx.Request) -> httpx.Response:
    response = Client().generic(
        "POST", request.url.raw_path.decode(), request.content, content_type="application/json"
    )
    return httpx.Response(response.status_code, content=response.content)


@pytest.fixture
def n8n_settings(settings: Any) -> None:
    settings.N8N_WEBHOOK_URL = N8N_URL
    settings.N8N_WEBHOOK_SECRET = N8N_SECRET
    settings.HUB_PUBLIC_URL = HUB


def run(*args: str) -> str:
    out = StringIO()
    call_command("n8n_check", *args, stdout=out)
    return out.getvalue()


def run_failing(*args: str) -> tuple[str, str]:
    out = StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("n8n_check", *args, stdout=out)
    return out.getvalue(), str(failure.value)


def mock(http_mock: respx.MockRouter, workflow: Any) -> respx.Route:
    http_mock.post(url__startswith=HUB).mock(side_effect=forward_to_hub)
    return http_mock.post(N8N_URL).mock(side_effect=workflow)


@pytest.mark.usefixtures("n8n_settings")
def test_a_sound_workflow_passes_every_probe_and_nobody_is_messaged(
    http_mock: respx.MockRouter,
) -> None:
    workflow = FakeWorkflow()
    mock(http_mock, workflow)

    assert run() == (
        f"n8n workflow at {N8N_URL}\n"
        "  check                                      expected       got                   result\n"
        "  a wrong secret is refused                  403            403                   pass\n"
        "  a missing secret is refused                403            403                   pass\n"
        "  an unknown action is refused               422            422                   pass\n"
        "  the hub's claim URL answers (unknown key)  404            404                   pass\n"
        "all 4 checks passed\n"
    )
    assert [e["action"] for e in workflow.envelopes] == ["reply", "reply", "n8n_check_ping"]
    assert all(e["idempotency_key"].startswith("n8n-check:") for e in workflow.envelopes)
    assert workflow.envelopes[0]["callback_url"] == (
        f"{HUB}/webhooks/n8n/n8n-callback-test-secret/"
    )
    assert not OutboundAction.objects.exists()
    assert not N8nClaim.objects.exists()


@pytest.mark.usefixtures("n8n_settings")
def test_a_workflow_without_header_auth_fails_and_its_probe_envelopes_are_refused_by_the_claim(
    http_mock: respx.MockRouter,
) -> None:
    workflow = FakeWorkflow(auth=False)
    mock(http_mock, workflow)

    out, error = run_failing()

    assert error == "2 of 4 checks failed"
    lines = out.splitlines()
    assert lines[2] == (
        "  a wrong secret is refused                  403            422                   FAIL"
    )
    assert lines[3].strip() == '↳ {"status":"refused"}'
    assert (
        "a missing secret is refused                403            422                   FAIL"
        in out
    )
    # What reached the workflow could not be carried out: the hub knows none of the keys.
    assert [c["detail"].startswith("no n8n action has") for c in workflow.claims] == [True, True]
    assert not OutboundAction.objects.exists()


@pytest.mark.usefixtures("n8n_settings")
def test_an_inactive_workflow_is_named_as_the_likely_cause(http_mock: respx.MockRouter) -> None:
    http_mock.post(url__startswith=HUB).mock(side_effect=forward_to_hub)
    http_mock.post(N8N_URL).respond(404, json={"code": 404, "message": "not registered"})

    out, error = run_failing()

    assert error == "3 of 4 checks failed"
    assert out.count("is the workflow active, and N8N_WEBHOOK_URL its production URL") == 3


@pytest.mark.usefixtures("n8n_settings")
def test_an_unreachable_n8n_fails_every_probe_with_the_network_error(
    http_mock: respx.MockRouter,
) -> None:
    http_mock.post(url__startswith=HUB).mock(side_effect=forward_to_hub)
    http_mock.post(N8N_URL).mock(side_effect=httpx.ConnectError("Connection refused"))

    out, error = run_failing()

    assert error == "3 of 4 checks failed"
    assert out.count("no answer") == 3
    assert out.count("↳ ConnectError: Connection refused") == 3


@pytest.mark.usefixtures("n8n_settings")
def test_send_to_makes_one_real_round_trip_and_passes_on_the_done_callback(
    http_mock: respx.MockRouter,
) -> None:
    workflow = FakeWorkflow()
    mock(http_mock, workflow)

    out = run("--send-to", "(11) 98765-4321")

    assert "  proactive_message to +5511****21" in out
    assert out.endswith("all 5 checks passed\n")
    [action] = OutboundAction.objects.all()
    assert action.idempotency_key.startswith("n8n-check:proactive_message:")
    assert (action.action, action.status, action.lead) == (
        "proactive_message",
        ActionStatus.DONE,
        None,
    )
    [sent] = [e for e in workflow.envelopes if e["action"] == "proactive_message"]
    assert sent["lead"] == {"name": "Teste n8n_check", "phone": PHONE, "source": "n8n_check"}
    assert sent["idempotency_key"] == action.idempotency_key
    assert workflow.claims == [{"proceed": True}]
    event = InboundEvent.objects.get(event_type="n8n.callback")
    assert event.external_id == action.idempotency_key


@pytest.mark.usefixtures("n8n_settings")
def test_send_to_fails_with_n8ns_reason_when_the_callback_says_failed(
    http_mock: respx.MockRouter,
) -> None:
    mock(http_mock, FakeWorkflow(outcome="failed"))

    out, error = run_failing("--send-to", PHONE)

    assert error == "1 of 5 checks failed"
    assert "callback done  callback failed       FAIL" in out
    assert "↳ WhatsApp send: (#131030) Recipient phone number not in allowed list" in out


@pytest.mark.usefixtures("n8n_settings")
def test_send_to_without_a_callback_in_time_asks_whether_n8n_reaches_the_hub(
    http_mock: respx.MockRouter,
) -> None:
    mock(http_mock, FakeWorkflow(report=False))

    out, error = run_failing("--send-to", PHONE, "--wait", "0")

    assert error == "1 of 5 checks failed"
    assert "action done" in out
    assert f"no callback came within 0 s: can n8n reach {HUB}?" in out


@pytest.mark.usefixtures("n8n_settings")
def test_an_invalid_phone_stops_before_anything_is_sent(http_mock: respx.MockRouter) -> None:
    route = mock(http_mock, FakeWorkflow())

    out, error = run_failing("--send-to", "12345")

    assert error == "--send-to '12345' is not a valid phone number"
    assert (out, route.call_count) == ("", 0)
    assert not OutboundAction.objects.exists()


def test_without_n8n_configured_it_says_what_to_set(http_mock: respx.MockRouter) -> None:
    out, error = run_failing()
    assert error == "set N8N_WEBHOOK_URL and N8N_WEBHOOK_SECRET in .env first"
    assert out == ""
