"""action_enqueue: one row and one delivery per idempotency key; held until n8n is configured."""

import json

import pytest
import respx
from django.db import transaction

from kommo_hub.models import ActionStatus, OutboundAction
from kommo_hub.ops.jobs import release_held_actions
from kommo_hub.outbox.services import action_enqueue
from tests.outbox.support import N8N_SECRET, N8N_URL, committed, enqueue_n8n

pytestmark = pytest.mark.django_db


@pytest.mark.usefixtures("n8n_on")
def test_the_same_idempotency_key_twice_makes_one_row_and_one_delivery(
    http_mock: respx.MockRouter,
) -> None:
    n8n = http_mock.post(N8N_URL).respond(200, json={"ok": True})
    payload = {"action": "reply", "idempotency_key": "msg:77:reply"}

    with committed():
        first, first_created = action_enqueue(
            target="n8n", action="reply", idempotency_key="msg:77:reply", payload=payload
        )
    with committed():
        second, second_created = action_enqueue(
            target="n8n", action="reply", idempotency_key="msg:77:reply", payload=payload
        )

    assert (first_created, second_created) == (True, False)
    assert first.pk == second.pk
    assert OutboundAction.objects.count() == 1
    assert n8n.call_count == 1
    assert OutboundAction.objects.get().status == ActionStatus.DONE


@pytest.mark.usefixtures("n8n_on")
def test_an_unknown_target_is_refused_and_nothing_is_recorded_or_sent(
    http_mock: respx.MockRouter,
) -> None:
    with pytest.raises(ValueError, match="unknown target 'whatsapp'"):
        action_enqueue(target="whatsapp", action="reply", idempotency_key="k1", payload={})

    assert OutboundAction.objects.count() == 0
    assert http_mock.calls.call_count == 0


@pytest.mark.usefixtures("n8n_on")
def test_an_unknown_n8n_action_is_refused_and_nothing_is_recorded_or_sent(
    http_mock: respx.MockRouter,
) -> None:
    with pytest.raises(ValueError, match="unknown n8n action 'send_sms'"):
        action_enqueue(target="n8n", action="send_sms", idempotency_key="k2", payload={})

    assert OutboundAction.objects.count() == 0
    assert http_mock.calls.call_count == 0


@pytest.mark.usefixtures("n8n_on")
def test_an_action_enqueued_in_a_rolled_back_transaction_is_never_sent(
    http_mock: respx.MockRouter,
) -> None:
    class Abort(Exception):
        pass

    def enqueue_then_fail() -> None:
        with transaction.atomic():
            action_enqueue(target="n8n", action="reply", idempotency_key="k3", payload={})
            raise Abort

    with committed(), pytest.raises(Abort):
        enqueue_then_fail()

    assert OutboundAction.objects.count() == 0
    assert http_mock.calls.call_count == 0


def test_without_n8n_configured_the_action_is_held_and_nothing_is_sent(
    http_mock: respx.MockRouter,
) -> None:
    action = enqueue_n8n("lead:1:proactive_message")

    assert action.status == ActionStatus.HELD
    assert action.held_reason == "n8n not configured"
    assert action.attempts == 0
    assert action.last_status_code is None
    assert http_mock.calls.call_count == 0


def test_release_held_actions_leaves_them_held_while_n8n_is_still_not_configured(
    http_mock: respx.MockRouter,
) -> None:
    action = enqueue_n8n("lead:1:proactive_message")

    with committed():
        assert release_held_actions() == 0

    action.refresh_from_db()
    assert action.status == ActionStatus.HELD
    assert http_mock.calls.call_count == 0


def test_once_n8n_is_configured_release_held_actions_sends_the_held_action_exactly_once(
    settings: object, http_mock: respx.MockRouter
) -> None:
    action = enqueue_n8n("lead:1:proactive_message")
    assert action.status == ActionStatus.HELD
    n8n = http_mock.post(N8N_URL).respond(200, json={"ok": True})

    settings.N8N_WEBHOOK_URL = N8N_URL  # type: ignore[attr-defined]
    settings.N8N_WEBHOOK_SECRET = N8N_SECRET  # type: ignore[attr-defined]
    with committed():
        released_first = release_held_actions()
    with committed():
        released_again = release_held_actions()

    assert (released_first, released_again) == (1, 0)
    assert n8n.call_count == 1
    request = n8n.calls.last.request
    assert request.headers["X-Kommo-Hub-Secret"] == N8N_SECRET
    assert json.loads(request.content)["idempotency_key"] == "lead:1:proactive_message"
    action.refresh_from_db()
    assert action.status == ActionStatus.DONE
    assert action.held_reason == ""
    assert action.attempts == 1
    assert action.last_status_code == 200
