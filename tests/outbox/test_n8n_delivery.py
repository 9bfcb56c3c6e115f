"""Delivering actions to n8n: the envelope on the wire, retries with backoff, dead letters."""

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
import time_machine
from django.db import connection
from django.utils import timezone

from kommo_hub.models import ActionStatus, Alert, Contact, Lead, OutboundAction
from kommo_hub.ops.jobs import sweep_actions
from kommo_hub.outbox.delivery import action_deliver
from kommo_hub.outbox.envelope import envelope_build
from kommo_hub.outbox.services import action_enqueue
from tests.factories import OutboundActionFactory
from tests.outbox.support import (
    N8N_SECRET,
    N8N_URL,
    LocalHttpServer,
    Reply,
    closed_port,
    committed,
    enqueue_n8n,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("n8n_on")]


def make_due(action: OutboundAction) -> None:
    """Skip the backoff wait: the next attempt is due now."""
    OutboundAction.objects.filter(pk=action.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


FROZEN = datetime(2026, 3, 2, 15, 4, 5, 123456, tzinfo=UTC)


def retry_delay(action: OutboundAction) -> float:
    """Seconds from now (time is frozen in these tests) to the next attempt."""
    assert action.next_attempt_at is not None
    return (action.next_attempt_at - timezone.now()).total_seconds()


def test_the_post_carries_the_secret_header_and_the_envelope_of_architecture_4_2(
    settings: Any, http_mock: respx.MockRouter, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(FROZEN, tick=False)
    settings.HUB_PUBLIC_URL = "https://hub.example.com"
    contact = Contact.objects.create(
        kommo_contact_id=22334455, name="Maria Souza", phone="+5511987654321"
    )
    lead = Lead.objects.create(
        kommo_lead_id=18754321,
        contact=contact,
        name="Maria Souza",
        phone="+5511987654321",
        email="maria@example.com",
        source="rdstation",
        utm={"utm_source": "google", "utm_campaign": "verao"},
        fields={"cidade": "São Paulo"},
    )
    n8n = http_mock.post(N8N_URL).respond(200, json={"ok": True})
    key = f"lead:{lead.pk}:proactive_message"

    with committed():
        action_enqueue(
            target="n8n",
            action="proactive_message",
            idempotency_key=key,
            lead=lead,
            payload=envelope_build(
                action="proactive_message",
                idempotency_key=key,
                lead=lead,
                area={"slug": "vendas", "name": "Vendas"},
                conversation=None,
            ),
        )

    assert n8n.call_count == 1
    request = n8n.calls.last.request
    assert request.headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert request.headers["Content-Type"] == "application/json"
    assert sent_json(n8n) == {
        "action": "proactive_message",
        "idempotency_key": key,
        "sent_at": "2026-03-02T15:04:05.123456Z",
        "lead": {
            "id": lead.pk,
            "kommo_lead_id": 18754321,
            "kommo_contact_id": 22334455,
            "name": "Maria Souza",
            "phone": "+5511987654321",
            "email": "maria@example.com",
            "source": "rdstation",
            "utm": {"utm_source": "google", "utm_campaign": "verao"},
            "fields": {"cidade": "São Paulo"},
        },
        "area": {"slug": "vendas", "name": "Vendas"},
        "callback_url": "https://hub.example.com/webhooks/n8n/n8n-callback-test-secret/",
    }
    action = OutboundAction.objects.get()
    assert action.status == ActionStatus.DONE
    assert action.delivered_at == FROZEN


def test_a_lead_without_its_own_contact_data_is_sent_with_its_contacts_name_phone_and_email(
    http_mock: respx.MockRouter,
) -> None:
    contact = Contact.objects.create(name="João", phone="+5521999990000", email="joao@example.com")
    lead = Lead.objects.create(contact=contact, source="website")
    n8n = http_mock.post(N8N_URL).respond(200)

    with committed():
        action_enqueue(
            target="n8n",
            action="reply",
            idempotency_key="m:1:reply",
            payload=envelope_build(action="reply", idempotency_key="m:1:reply", lead=lead),
        )

    assert sent_json(n8n)["lead"] == {
        "id": lead.pk,
        "kommo_lead_id": None,
        "kommo_contact_id": None,
        "name": "João",
        "phone": "+5521999990000",
        "email": "joao@example.com",
        "source": "website",
        "utm": {},
        "fields": {},
    }


def test_without_a_callback_secret_the_envelope_has_no_callback_url(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.N8N_CALLBACK_SECRET = ""
    n8n = http_mock.post(N8N_URL).respond(200)

    enqueue_n8n("lead:1:handoff", action="handoff")

    body = sent_json(n8n)
    assert sorted(body) == ["action", "idempotency_key", "sent_at"]
    assert body["action"] == "handoff"


def test_n8n_answering_500_then_200_is_delivered_once_on_the_second_attempt(
    http_mock: respx.MockRouter,
) -> None:
    n8n = http_mock.post(N8N_URL)
    n8n.side_effect = [httpx.Response(500, text="upstream exploded"), httpx.Response(200)]

    action = enqueue_n8n()

    assert action.status == ActionStatus.FAILED
    assert action.attempts == 1
    assert action.last_status_code == 500
    assert action.last_response == "upstream exploded"
    assert action.next_attempt_at is not None
    assert action.next_attempt_at > timezone.now()
    assert sweep_actions() == 0  # not due yet: nothing is sent
    assert n8n.call_count == 1

    make_due(action)
    assert sweep_actions() == 1
    assert sweep_actions() == 0

    action.refresh_from_db()
    assert n8n.call_count == 2
    assert action.status == ActionStatus.DONE
    assert action.attempts == 2
    assert action.last_status_code == 200
    assert action.last_response == ""
    assert action.last_error == ""
    assert action.delivered_at is not None
    first, second = sent_json(n8n, 0), sent_json(n8n, 1)
    assert first["idempotency_key"] == second["idempotency_key"] == "lead:1:proactive_message"


def test_a_read_timeout_is_recorded_and_cleared_by_the_next_successful_attempt(
    http_mock: respx.MockRouter,
) -> None:
    n8n = http_mock.post(N8N_URL)
    n8n.side_effect = [httpx.ReadTimeout("timed out"), httpx.Response(202)]

    action = enqueue_n8n()
    assert action.status == ActionStatus.FAILED
    assert action.last_status_code is None
    assert action.last_error == "ReadTimeout: timed out"

    make_due(action)
    assert action_deliver(action_id=action.pk) == ActionStatus.DONE

    action.refresh_from_db()
    assert n8n.call_count == 2
    assert (action.status, action.attempts, action.last_status_code) == ("done", 2, 202)
    assert action.last_error == ""


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_a_client_error_from_n8n_dead_letters_at_once_and_keeps_the_response(
    code: int, http_mock: respx.MockRouter
) -> None:
    n8n = http_mock.post(N8N_URL).respond(code, text='{"message": "Workflow could not start"}')

    action = enqueue_n8n()

    assert n8n.call_count == 1
    assert action.status == ActionStatus.DEAD
    assert action.attempts == 1
    assert action.last_status_code == code
    assert action.last_response == '{"message": "Workflow could not start"}'
    alert = Alert.objects.get()
    assert alert.kind == Alert.Kind.DEAD_LETTER
    assert alert.active is True
    assert alert.message == (
        f"n8n action #{action.pk} (proactive_message) dead after 1 attempt(s): "
        f'HTTP {code} {{"message": "Workflow could not start"}}'
    )
    assert sweep_actions() == 0
    assert n8n.call_count == 1


def test_a_long_response_is_kept_as_a_2000_character_excerpt(http_mock: respx.MockRouter) -> None:
    http_mock.post(N8N_URL).respond(400, text="x" * 5000)

    action = enqueue_n8n()

    assert action.last_response == "x" * 2000


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504])
def test_timeouts_throttling_and_server_errors_are_retried_with_backoff(
    code: int, http_mock: respx.MockRouter, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(FROZEN, tick=False)
    http_mock.post(N8N_URL).respond(code)

    action = enqueue_n8n()

    assert action.status == ActionStatus.FAILED
    assert action.attempts == 1
    assert action.last_status_code == code
    # RETRY_BASE_SECONDS = 10: the first retry waits between 5 and 10 seconds.
    assert 5.0 <= retry_delay(action) <= 10.0
    assert Alert.objects.count() == 0


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("server disconnected"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_network_errors_are_retried_with_the_error_recorded(
    error: httpx.HTTPError, http_mock: respx.MockRouter
) -> None:
    http_mock.post(N8N_URL).side_effect = error

    action = enqueue_n8n()

    assert action.status == ActionStatus.FAILED
    assert action.last_status_code is None
    assert action.last_error == f"{type(error).__name__}: {error}"
    assert action.next_attempt_at is not None
    assert action.next_attempt_at > timezone.now()


def test_each_retry_waits_longer_within_the_jittered_bounds(
    http_mock: respx.MockRouter, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(FROZEN, tick=False)
    http_mock.post(N8N_URL).respond(503)
    action = OutboundActionFactory()
    delays = []

    for attempt, (floor, ceiling) in enumerate([(5, 10), (10, 20), (20, 40), (40, 80)], start=1):
        make_due(action)
        assert action_deliver(action_id=action.pk) == ActionStatus.FAILED
        action.refresh_from_db()
        assert action.attempts == attempt
        delay = retry_delay(action)
        assert floor <= delay <= ceiling
        delays.append(delay)

    assert delays == sorted(delays)
    assert len(set(delays)) == 4


def test_after_action_max_attempts_the_action_is_dead_and_never_sent_again(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.ACTION_MAX_ATTEMPTS = 3
    n8n = http_mock.post(N8N_URL).respond(503, text="busy")

    action = enqueue_n8n()
    for _ in range(2):
        make_due(action)
        sweep_actions()
    action.refresh_from_db()

    assert n8n.call_count == 3
    assert action.status == ActionStatus.DEAD
    assert action.attempts == 3
    assert action.last_status_code == 503
    assert Alert.objects.get().message == (
        f"n8n action #{action.pk} (proactive_message) dead after 3 attempt(s): HTTP 503 busy"
    )
    make_due(action)
    assert sweep_actions() == 0
    assert action_deliver(action_id=action.pk) == "not claimed"
    assert n8n.call_count == 3


def test_a_network_error_on_the_last_attempt_dead_letters_with_the_error(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.ACTION_MAX_ATTEMPTS = 1
    http_mock.post(N8N_URL).side_effect = httpx.ConnectError("connection refused")

    action = enqueue_n8n()

    assert action.status == ActionStatus.DEAD
    assert Alert.objects.get().message == (
        f"n8n action #{action.pk} (proactive_message) dead after 1 attempt(s): "
        "HTTP None ConnectError: connection refused"
    )


@pytest.mark.parametrize(("retry_after", "expected_delay"), [("120", 120.0), ("999999", 3600.0)])
def test_retry_after_on_429_is_respected_up_to_an_hour(
    retry_after: str,
    expected_delay: float,
    http_mock: respx.MockRouter,
    time_machine: time_machine.TimeMachineFixture,
) -> None:
    time_machine.move_to(FROZEN, tick=False)
    http_mock.post(N8N_URL).respond(429, headers={"Retry-After": retry_after})

    action = enqueue_n8n()

    assert action.status == ActionStatus.FAILED
    assert retry_delay(action) == expected_delay


def test_retry_after_as_an_http_date_is_respected(
    http_mock: respx.MockRouter, time_machine: time_machine.TimeMachineFixture
) -> None:
    time_machine.move_to(datetime(2026, 3, 2, 15, 4, 5, tzinfo=UTC), tick=False)
    http_mock.post(N8N_URL).respond(429, headers={"Retry-After": "Mon, 02 Mar 2026 15:09:05 GMT"})

    action = enqueue_n8n()

    assert action.next_attempt_at == datetime(2026, 3, 2, 15, 9, 5, tzinfo=UTC)


def test_a_refused_connection_to_a_real_port_is_retried(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.N8N_WEBHOOK_URL = f"http://127.0.0.1:{closed_port()}/webhook"
    http_mock.route(host="127.0.0.1").pass_through()

    action = enqueue_n8n()

    assert action.status == ActionStatus.FAILED
    assert action.last_error.startswith("ConnectError: ")


def test_a_real_server_slower_than_the_timeout_is_retried_then_delivered(
    settings: Any, local_server: LocalHttpServer
) -> None:
    settings.N8N_WEBHOOK_URL = f"{local_server.url}/webhook/kommo-hub"
    settings.N8N_TIMEOUT_SECONDS = 0.2
    local_server.replies = [Reply(delay=1.0), Reply(status=200, body="ok")]

    action = enqueue_n8n()
    assert action.status == ActionStatus.FAILED
    assert action.last_error.startswith("ReadTimeout")

    make_due(action)
    sweep_actions()
    action.refresh_from_db()

    assert action.status == ActionStatus.DONE
    assert action.last_response == "ok"
    assert [r.path for r in local_server.received] == ["/webhook/kommo-hub"] * 2
    assert local_server.received[1].headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert local_server.received[1].json()["idempotency_key"] == "lead:1:proactive_message"


@pytest.mark.django_db(transaction=True)
def test_workers_racing_for_one_action_deliver_it_exactly_once(
    settings: Any, local_server: LocalHttpServer
) -> None:
    settings.N8N_WEBHOOK_URL = f"{local_server.url}/webhook/kommo-hub"
    local_server.replies = [Reply(delay=0.3)]
    action = OutboundActionFactory()
    start = threading.Barrier(4)
    outcomes: list[str] = []

    def worker() -> None:
        try:
            start.wait()
            outcomes.append(action_deliver(action_id=action.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["done", "not claimed", "not claimed", "not claimed"]
    assert len(local_server.received) == 1
    action.refresh_from_db()
    assert (action.status, action.attempts) == (ActionStatus.DONE, 1)


def test_a_delivered_action_is_not_sent_again(http_mock: respx.MockRouter) -> None:
    n8n = http_mock.post(N8N_URL).respond(200)
    action = enqueue_n8n()

    assert action_deliver(action_id=action.pk) == "not claimed"
    assert sweep_actions() == 0
    assert n8n.call_count == 1


def test_an_unusable_webhook_url_is_recorded_and_retried_instead_of_stranding_the_action(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.N8N_WEBHOOK_URL = "http://[::1/webhook"  # a typo httpx refuses before any I/O

    action = enqueue_n8n()

    assert http_mock.calls.call_count == 0
    assert action.status == ActionStatus.FAILED
    assert action.locked_until is None
    assert action.last_status_code is None
    assert action.last_error.startswith("InvalidURL: ")
    assert action.next_attempt_at is not None
    assert action.next_attempt_at > timezone.now()


def test_an_unusable_webhook_url_dead_letters_after_the_last_attempt(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    settings.N8N_WEBHOOK_URL = "http://[::1/webhook"
    settings.ACTION_MAX_ATTEMPTS = 2

    action = enqueue_n8n()
    make_due(action)
    sweep_actions()
    action.refresh_from_db()

    assert (action.status, action.attempts) == (ActionStatus.DEAD, 2)
    assert Alert.objects.get().kind == Alert.Kind.DEAD_LETTER


def test_an_action_whose_worker_died_every_time_is_dead_lettered_instead_of_claimed_forever(
    settings: Any, http_mock: respx.MockRouter
) -> None:
    route = http_mock.post(N8N_URL).respond(200)
    action = OutboundActionFactory(
        status=ActionStatus.DELIVERING,
        attempts=settings.ACTION_MAX_ATTEMPTS,
        locked_until=timezone.now() - timedelta(seconds=1),
    )

    assert action_deliver(action_id=action.pk) == ActionStatus.DEAD

    action.refresh_from_db()
    assert action.status == ActionStatus.DEAD
    assert action.last_error == f"worker lost {settings.ACTION_MAX_ATTEMPTS} times while delivering"
    assert route.call_count == 0
    assert Alert.objects.filter(kind=Alert.Kind.DEAD_LETTER).count() == 1
