"""Kommo writes through the outbox: bearer token, base URL, rate limit, 401/403 stop-the-world."""

import json
from typing import Any

import httpx
import pytest
import respx
from django.utils import timezone

from kommo_hub.clients.ratelimit import limiter_for
from kommo_hub.models import ActionStatus, Alert, OutboundAction
from kommo_hub.ops.jobs import release_held_actions, sweep_actions
from kommo_hub.outbox.services import kommo_write
from tests.outbox.support import KOMMO_API, KOMMO_TOKEN, N8N_URL, committed, enqueue_n8n

pytestmark = pytest.mark.django_db

LEAD_PATH = "/api/v4/leads/18754321"


def write_responsible_user(key: str = "lead:18754321:responsible", lead_id: int = 18754321) -> Any:
    with committed():
        action, _ = kommo_write(
            method="patch",
            path=f"/api/v4/leads/{lead_id}",
            body={"responsible_user_id": 9876543},
            idempotency_key=key,
            action="set_responsible_user",
        )
    action.refresh_from_db()
    return action


def release() -> int:
    with committed():
        return release_held_actions()


def resolve_kommo_alerts() -> None:
    Alert.objects.filter(active=True).update(active=False, resolved_at=timezone.now())


@pytest.mark.usefixtures("kommo_on")
def test_kommo_write_sends_the_body_with_the_bearer_token_to_the_subdomain_api(
    http_mock: respx.MockRouter,
) -> None:
    kommo = http_mock.patch(f"{KOMMO_API}{LEAD_PATH}").respond(200, json={"id": 18754321})

    action = write_responsible_user()

    assert kommo.call_count == 1
    request = kommo.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {KOMMO_TOKEN}"
    assert request.headers["Accept"] == "application/json"
    assert json.loads(request.content) == {"responsible_user_id": 9876543}
    assert action.target == "kommo"
    assert action.payload == {
        "method": "PATCH",
        "path": LEAD_PATH,
        "json": {"responsible_user_id": 9876543},
    }
    assert (action.status, action.attempts, action.last_status_code) == ("done", 1, 200)


@pytest.mark.usefixtures("kommo_on")
def test_kommo_base_url_overrides_the_subdomain(settings: Any, http_mock: respx.MockRouter) -> None:
    settings.KOMMO_BASE_URL = "https://kommo-proxy.example.test/acme/"
    proxied = http_mock.patch(f"https://kommo-proxy.example.test/acme{LEAD_PATH}").respond(200)

    action = write_responsible_user()

    assert proxied.call_count == 1
    assert action.status == ActionStatus.DONE


def test_without_kommo_configured_the_write_is_held_until_configured_then_sent_once(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    action = write_responsible_user()
    assert action.status == ActionStatus.HELD
    assert action.held_reason == "Kommo not configured"
    assert http_mock.calls.call_count == 0

    settings.KOMMO_ACCESS_TOKEN = KOMMO_TOKEN  # a token without a subdomain is not enough
    assert release() == 0
    assert http_mock.calls.call_count == 0

    settings.KOMMO_SUBDOMAIN = "acme"
    kommo = http_mock.patch(f"{KOMMO_API}{LEAD_PATH}").respond(200)
    assert release() == 1
    assert release() == 0

    action.refresh_from_db()
    assert kommo.call_count == 1
    assert (action.status, action.attempts) == (ActionStatus.DONE, 1)


@pytest.mark.usefixtures("kommo_on")
@pytest.mark.parametrize(
    ("code", "kind"),
    [(403, Alert.Kind.KOMMO_BLOCKED), (401, Alert.Kind.KOMMO_UNAUTHORIZED)],
)
def test_kommo_401_or_403_holds_every_kommo_write_until_the_alert_is_resolved(
    code: int, kind: str, http_mock: respx.MockRouter
) -> None:
    kommo = http_mock.route(host="acme.kommo.com")
    kommo.side_effect = [httpx.Response(code, text="<html>blocked</html>"), httpx.Response(200)]

    first = write_responsible_user("lead:1:responsible", lead_id=1)

    assert kommo.call_count == 1
    assert first.status == ActionStatus.HELD
    assert first.held_reason == f"Kommo answered {code}: writes stopped until the alert is resolved"
    assert first.attempts == 0
    assert first.last_status_code == code
    assert first.last_response == "<html>blocked</html>"
    alert = Alert.objects.get()
    assert (alert.kind, alert.active) == (kind, True)
    assert alert.message == f"Kommo answered {code} to action #{first.pk}: <html>blocked</html>"

    later = [write_responsible_user(f"lead:{n}:responsible", lead_id=n) for n in (2, 3)]
    assert [a.status for a in later] == [ActionStatus.HELD, ActionStatus.HELD]
    assert {a.held_reason for a in later} == {
        "Kommo writes stopped: resolve the Kommo alert to release"
    }
    assert release() == 0
    assert sweep_actions() == 0
    assert kommo.call_count == 1
    assert Alert.objects.count() == 1

    resolve_kommo_alerts()
    kommo.side_effect = None
    kommo.return_value = httpx.Response(200)
    assert release() == 3

    assert kommo.call_count == 4
    assert sorted(r.request.url.path for r in kommo.calls[1:]) == [
        "/api/v4/leads/1",
        "/api/v4/leads/2",
        "/api/v4/leads/3",
    ]
    assert set(OutboundAction.objects.values_list("status", "attempts")) == {("done", 1)}
    assert Alert.objects.filter(active=True).count() == 0


@pytest.mark.usefixtures("kommo_on", "n8n_on")
def test_a_kommo_block_does_not_hold_n8n_actions(http_mock: respx.MockRouter) -> None:
    Alert.objects.create(kind=Alert.Kind.KOMMO_BLOCKED, message="Kommo answered 403")
    n8n = http_mock.post(N8N_URL).respond(200)

    n8n_action = enqueue_n8n()
    kommo_action = write_responsible_user()

    assert n8n_action.status == ActionStatus.DONE
    assert n8n.call_count == 1
    assert kommo_action.status == ActionStatus.HELD
    assert http_mock.calls.call_count == 1


@pytest.mark.usefixtures("kommo_on")
def test_kommo_429_is_retried_with_backoff_and_raises_no_alert(
    http_mock: respx.MockRouter,
) -> None:
    kommo = http_mock.patch(f"{KOMMO_API}{LEAD_PATH}")
    kommo.side_effect = [httpx.Response(429, text="Too Many Requests"), httpx.Response(200)]

    action = write_responsible_user()
    assert action.status == ActionStatus.FAILED
    assert action.last_status_code == 429
    assert action.next_attempt_at is not None
    assert action.next_attempt_at > timezone.now()
    assert Alert.objects.count() == 0

    OutboundAction.objects.filter(pk=action.pk).update(next_attempt_at=timezone.now())
    assert sweep_actions() == 1
    action.refresh_from_db()
    assert (action.status, action.attempts, kommo.call_count) == ("done", 2, 2)


@pytest.mark.usefixtures("kommo_on")
def test_a_kommo_validation_error_dead_letters_with_the_problem_json_kept(
    http_mock: respx.MockRouter,
) -> None:
    problem = '{"title":"Bad Request","status":400,"detail":"Request validation failed"}'
    http_mock.patch(f"{KOMMO_API}{LEAD_PATH}").respond(400, text=problem)

    action = write_responsible_user()

    assert action.status == ActionStatus.DEAD
    assert action.last_response == problem
    assert Alert.objects.get().kind == Alert.Kind.DEAD_LETTER


@pytest.mark.usefixtures("kommo_on")
def test_when_the_shared_rate_limit_has_no_grant_nothing_is_sent_and_the_write_waits(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.KOMMO_MAX_REQUESTS_PER_SECOND = 2
    settings.KOMMO_TIMEOUT_SECONDS = 0.05
    kommo = http_mock.patch(f"{KOMMO_API}{LEAD_PATH}").respond(200)
    limiter = limiter_for("kommo", limit=2)
    while limiter.try_acquire() == 0:  # another worker just used this second's grants
        pass

    action = write_responsible_user()

    assert kommo.call_count == 0
    assert action.status == ActionStatus.FAILED
    assert action.last_status_code is None
    assert action.last_error == "local rate limit: no grant within 0.1s"
    assert action.next_attempt_at is not None
    assert action.next_attempt_at > timezone.now()


@pytest.mark.usefixtures("kommo_on")
def test_a_kommo_still_blocked_after_the_alert_is_resolved_costs_one_request_and_holds_the_rest(
    http_mock: respx.MockRouter,
) -> None:
    kommo = http_mock.route(host="acme.kommo.com").respond(403, text="<html>blocked</html>")
    for n in (1, 2, 3):
        write_responsible_user(f"lead:{n}:responsible", lead_id=n)
    assert kommo.call_count == 1

    resolve_kommo_alerts()
    assert release() == 3

    assert kommo.call_count == 2
    assert set(OutboundAction.objects.values_list("status", flat=True)) == {"held"}
    assert Alert.objects.filter(active=True, kind=Alert.Kind.KOMMO_BLOCKED).count() == 1
    assert Alert.objects.count() == 2
