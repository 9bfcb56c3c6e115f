"""n8n's duplicate guard, the hub's half: POST <callback_url>claim/ answers at once whether this
n8n execution may carry out the action. Parallel claims on Postgres: test_n8n_claim_race.py."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client

from kommo_hub.models import ActionStatus, ClaimState, N8nClaim, OutboundAction
from kommo_hub.outbox.claims import ClaimResult, claim_settle, n8n_action_claim
from tests.factories import OutboundActionFactory
from tests.intake.wire import JSON, N8N_URL, post

pytestmark = pytest.mark.django_db

CLAIM_URL = f"{N8N_URL}claim/"
T0 = datetime(2026, 11, 25, 13, 0, tzinfo=UTC)


@pytest.fixture
def action() -> OutboundAction:
    """A proactive message the hub delivered to n8n."""
    sent: OutboundAction = OutboundActionFactory(
        idempotency_key="n8n:proactive_message:lead:41", status=ActionStatus.DONE, attempts=1
    )
    return sent


def claim(
    client: Client,
    body: dict[str, Any] | str,
    *,
    at: datetime = T0,
    url: str = CLAIM_URL,
) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, str) else json.dumps(body)
    with time_machine.travel(at, tick=False):
        response = post(client, url, raw, content_type=JSON)
    answer: dict[str, Any] = response.json()
    return response.status_code, answer


def body(action: OutboundAction, execution_id: str = "501", **extra: Any) -> dict[str, Any]:
    return {
        "idempotency_key": action.idempotency_key,
        "action": action.action,
        "execution_id": execution_id,
        **extra,
    }


def the_claim() -> tuple[str, str, int, datetime]:
    row = N8nClaim.objects.get()
    return row.state, row.execution_id, row.attempts, row.claimed_at


def test_the_first_execution_to_claim_an_action_proceeds_and_the_claim_is_on_its_history(
    client: Client, action: OutboundAction
) -> None:
    assert claim(client, body(action)) == (200, {"proceed": True})

    assert the_claim() == (ClaimState.STARTED, "501", 1, T0)
    assert N8nClaim.objects.get().action == action
    action.refresh_from_db()
    assert action.result == {
        "claims": [
            {
                "at": "2026-11-25T13:00:00Z",
                "execution_id": "501",
                "proceed": True,
                "action": "proactive_message",
            }
        ]
    }
    assert action.status == ActionStatus.DONE  # the claim changes nothing else on the action


def test_a_duplicate_delivery_is_told_the_action_is_in_progress_and_changes_no_claim(
    client: Client, action: OutboundAction
) -> None:
    claim(client, body(action, "501"))

    assert claim(client, body(action, "502"), at=T0 + timedelta(seconds=3)) == (
        200,
        {"proceed": False, "reason": "in progress"},
    )
    assert the_claim() == (ClaimState.STARTED, "501", 1, T0)
    action.refresh_from_db()
    assert action.result["claims"][-1] == {
        "at": "2026-11-25T13:00:03Z",
        "execution_id": "502",
        "proceed": False,
        "action": "proactive_message",
        "reason": "in progress",
    }


def test_the_same_execution_asking_again_proceeds_its_answer_was_lost_on_the_way(
    client: Client, action: OutboundAction
) -> None:
    claim(client, body(action, "501"))

    assert claim(client, body(action, 501), at=T0 + timedelta(seconds=2)) == (
        200,
        {"proceed": True},
    )
    assert the_claim() == (ClaimState.STARTED, "501", 1, T0)


def test_a_claim_older_than_the_ttl_is_presumed_crashed_and_a_redelivery_takes_it_over(
    client: Client, action: OutboundAction, settings: Any
) -> None:
    settings.N8N_CLAIM_TTL_SECONDS = 600
    claim(client, body(action, "501"))

    assert claim(client, body(action, "502"), at=T0 + timedelta(seconds=599))[1] == {
        "proceed": False,
        "reason": "in progress",
    }
    later = T0 + timedelta(seconds=600)
    assert claim(client, body(action, "503"), at=later) == (200, {"proceed": True})
    assert the_claim() == (ClaimState.STARTED, "503", 2, later)


def test_the_ttl_defaults_to_fifteen_minutes(client: Client, action: OutboundAction) -> None:
    claim(client, body(action, "501"))

    assert claim(client, body(action, "502"), at=T0 + timedelta(seconds=899))[1]["proceed"] is False
    assert claim(client, body(action, "503"), at=T0 + timedelta(seconds=900))[1]["proceed"] is True


@pytest.mark.parametrize(
    ("status", "state"), [("done", ClaimState.DONE), ("handoff", ClaimState.HANDOFF)]
)
def test_once_n8n_reported_the_action_done_or_handed_off_every_later_claim_is_refused(
    client: Client, action: OutboundAction, settings: Any, status: str, state: str
) -> None:
    claim(client, body(action, "501"))
    claim_settle(action=action, status=status, execution_id="501", now=T0)

    far_later = T0 + timedelta(days=2)  # no TTL for a finished action
    assert claim(client, body(action, "502"), at=far_later) == (
        200,
        {"proceed": False, "reason": "already done"},
    )
    assert the_claim() == (state, "501", 1, T0)


def test_after_a_failed_execution_the_next_claim_proceeds(
    client: Client, action: OutboundAction
) -> None:
    claim(client, body(action, "501"))
    claim_settle(action=action, status="failed", execution_id="501", now=T0)
    assert the_claim()[0] == ClaimState.FAILED

    assert claim(client, body(action, "502"), at=T0 + timedelta(seconds=30)) == (
        200,
        {"proceed": True},
    )
    assert the_claim() == (ClaimState.STARTED, "502", 2, T0 + timedelta(seconds=30))


def test_an_action_reported_done_before_any_claim_is_refused_and_the_claim_says_so(
    client: Client,
) -> None:
    done = OutboundActionFactory(status=ActionStatus.DONE, callback_status="done")

    assert claim(client, body(done, "777")) == (200, {"proceed": False, "reason": "already done"})
    assert the_claim() == (ClaimState.DONE, "777", 0, T0)


def test_a_claim_for_a_key_no_n8n_action_has_is_404_and_writes_nothing(
    client: Client, action: OutboundAction
) -> None:
    kommo = OutboundActionFactory(target="kommo", action="note_add")
    for key in ("n8n:reply:999:999", kommo.idempotency_key):
        status, answer = claim(client, {"idempotency_key": key, "execution_id": "9"})
        assert (status, answer) == (
            404,
            {"detail": f"no n8n action has the idempotency key {key!r}"},
        )
    assert not N8nClaim.objects.exists()
    kommo.refresh_from_db()
    assert kommo.result == {}


@pytest.mark.parametrize(
    "url", ["/webhooks/n8n/wrong-secret/claim/", "/webhooks/n8n/n8n-callback-test-secre/claim/"]
)
def test_a_wrong_secret_is_403_and_writes_nothing(
    client: Client, action: OutboundAction, url: str
) -> None:
    assert claim(client, body(action), url=url) == (403, {"detail": "invalid secret"})
    assert not N8nClaim.objects.exists()
    action.refresh_from_db()
    assert action.result == {}


def test_with_no_callback_secret_configured_every_claim_is_403(
    client: Client, action: OutboundAction, settings: Any
) -> None:
    settings.N8N_CALLBACK_SECRET = ""
    assert claim(client, body(action), url="/webhooks/n8n/x/claim/")[0] == 403
    assert not N8nClaim.objects.exists()


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("{not json", "invalid JSON: Expecting property name enclosed in double quotes: "),
        ("[]", "expected a JSON object with idempotency_key, action and execution_id"),
        (
            '{"idempotency_key": "n8n:proactive_message:lead:41"}',
            "execution_id: Field required",
        ),
        (
            '{"idempotency_key": "", "execution_id": "1"}',
            "idempotency_key: String should have at least 1 character",
        ),
        (
            '{"idempotency_key": "n8n:proactive_message:lead:41", "execution_id": " "}',
            "execution_id: String should have at least 1 character",
        ),
        (
            '{"idempotency_key": "n8n:proactive_message:lead:41", "execution_id": "1", '
            '"action": "ping"}',
            "action: Input should be 'proactive_message', 'reply', 'schedule', 'reminder' or "
            "'handoff'",
        ),
        (
            '{"idempotency_key": 41, "execution_id": "1"}',
            "idempotency_key: Input should be a valid string",
        ),
    ],
)
def test_a_malformed_claim_is_400_naming_the_problem_and_writes_nothing(
    client: Client, action: OutboundAction, raw: str, detail: str
) -> None:
    status, answer = claim(client, raw)

    assert status == 400
    assert answer["detail"].startswith(detail)
    assert not N8nClaim.objects.exists()
    action.refresh_from_db()
    assert action.result == {}


def test_a_claim_must_be_a_post(client: Client, action: OutboundAction) -> None:
    assert client.get(CLAIM_URL).status_code == 405
    assert not N8nClaim.objects.exists()


def test_the_service_answers_like_the_endpoint(action: OutboundAction) -> None:
    key = action.idempotency_key
    first = n8n_action_claim(idempotency_key=key, execution_id="1", now=T0)
    second = n8n_action_claim(idempotency_key=key, execution_id="2", now=T0)

    assert (first, second) == (
        ClaimResult(proceed=True, attempts=1),
        ClaimResult(proceed=False, reason="in progress", attempts=1),
    )


def test_a_body_over_the_size_limit_is_413_and_writes_nothing(
    client: Client, action: OutboundAction, settings: Any
) -> None:
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    status, answer = claim(client, body(action, execution_id="1" * 40, padding="x" * 100))
    assert (status, answer) == (413, {"detail": "body too large"})
    assert not N8nClaim.objects.exists()


def test_a_database_outage_is_503_with_retry_after_never_a_500(
    client: Client, action: OutboundAction, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    from kommo_hub.intake import receivers

    def down(**kwargs: Any) -> ClaimResult:
        raise OperationalError("connection refused")

    monkeypatch.setattr(receivers, "n8n_action_claim", down)
    with time_machine.travel(T0, tick=False):
        response = post(client, CLAIM_URL, json.dumps(body(action)), content_type=JSON)
    assert (response.status_code, response.json(), response["Retry-After"]) == (
        503,
        {"detail": "temporarily unavailable, retry later"},
        "5",
    )


def test_the_action_page_in_the_admin_shows_the_claim_and_what_n8n_reported(
    admin_client: Client, action: OutboundAction
) -> None:
    claim(admin_client, body(action, execution_id="777"))
    OutboundAction.objects.filter(pk=action.pk).update(
        callback_status="failed",
        result={"callbacks": [{"status": "failed", "execution_id": "777", "retryable": True}]},
    )

    page = admin_client.get(f"/admin/kommo_hub/outboundaction/{action.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert "777" in html
    assert "em andamento" in html  # pt-BR by default
    assert "&quot;retryable&quot;: true" in html
